import { ResourceSlice } from 'kubernetes-models-5/resource.k8s.io/v1/ResourceSlice';
import { ResourceClaim } from 'kubernetes-models-5/resource.k8s.io/v1/ResourceClaim';
import { DeviceClass } from 'kubernetes-models-5/resource.k8s.io/v1/DeviceClass';
import type { KubeObject, ResourceType } from './fake-apiserver.js';

/**
 * The API server's validation of resource.k8s.io/v1 objects, for the fake
 * API server: first the schema of the kind (kubernetes-models 5, generated
 * from Kubernetes' OpenAPI document: types, required fields, formats),
 * then the rules the schema cannot state, as pkg/apis/resource/validation
 * checks them for ResourceSlices (limits from k8s.io/api/resource/v1
 * types.go; the 1.35 rule that a slice holds counter sets or devices,
 * never both).
 */

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const C_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|m|k|n|u)?$/;

const label = (v: unknown): boolean => typeof v === 'string' && v.length <= 63 && DNS_LABEL.test(v);

function qualifiedName(name: string): boolean {
  const i = name.indexOf('/');
  if (i < 0) return name.length <= 32 && C_IDENTIFIER.test(name);
  const domain = name.slice(0, i);
  const id = name.slice(i + 1);
  return (
    domain.length <= 63 && DNS_SUBDOMAIN.test(domain) && id.length <= 32 && C_IDENTIFIER.test(id)
  );
}

type Rec = Record<string, unknown>;

export function resourceSliceProblems(obj: KubeObject): string[] {
  const out: string[] = [];
  const spec = (obj['spec'] ?? {}) as Rec;
  const driver = spec['driver'];
  if (typeof driver !== 'string' || driver.length > 63 || !DNS_SUBDOMAIN.test(driver))
    out.push(`spec.driver: Invalid value: ${JSON.stringify(driver)}`);
  const pool = (spec['pool'] ?? {}) as Rec;
  if (
    typeof pool['name'] !== 'string' ||
    pool['name'] === '' ||
    (pool['name'] as string).length > 253
  )
    out.push('spec.pool.name: Required value');
  if (typeof pool['generation'] !== 'number' || (pool['generation'] as number) < 0)
    out.push('spec.pool.generation: Invalid value');
  if (typeof pool['resourceSliceCount'] !== 'number' || (pool['resourceSliceCount'] as number) <= 0)
    out.push('spec.pool.resourceSliceCount: Invalid value: must be greater than zero');
  const selections = ['nodeName', 'nodeSelector', 'allNodes', 'perDeviceNodeSelection'].filter(
    (k) => spec[k] !== undefined && spec[k] !== false && spec[k] !== '',
  );
  if (selections.length !== 1)
    out.push(
      `spec: Invalid value: exactly one of nodeName, nodeSelector, allNodes, perDeviceNodeSelection is required (got ${selections.join(', ') || 'none'})`,
    );
  const devices = (spec['devices'] ?? []) as Rec[];
  const sets = (spec['sharedCounters'] ?? []) as Rec[];
  if (devices.length > 0 && sets.length > 0)
    out.push('spec: Invalid value: only one of `sharedCounters` or `devices` is allowed');
  if (sets.length > 8)
    out.push(`spec.sharedCounters: Too many: ${sets.length}: must have at most 8 items`);
  const setNames = new Set<string>();
  sets.forEach((s, i) => {
    if (!label(s['name'])) out.push(`spec.sharedCounters[${i}].name: Invalid value`);
    if (setNames.has(s['name'] as string))
      out.push(`spec.sharedCounters[${i}].name: Duplicate value`);
    setNames.add(s['name'] as string);
    const counters = Object.entries((s['counters'] ?? {}) as Record<string, Rec>);
    if (counters.length === 0) out.push(`spec.sharedCounters[${i}].counters: Required value`);
    if (counters.length > 32) out.push(`spec.sharedCounters[${i}].counters: Too many`);
    for (const [k, v] of counters) {
      if (!label(k))
        out.push(`spec.sharedCounters[${i}].counters[${k}]: Invalid value: not a DNS label`);
      if (typeof v['value'] !== 'string' || !QUANTITY.test(v['value'] as string))
        out.push(`spec.sharedCounters[${i}].counters[${k}].value: Invalid value`);
    }
  });
  const advanced = devices.some(
    (d) => d['consumesCounters'] !== undefined || d['taints'] !== undefined,
  );
  const max = advanced ? 64 : 128;
  if (devices.length > max)
    out.push(`spec.devices: Too many: ${devices.length}: must have at most ${max} items`);
  const names = new Set<string>();
  devices.forEach((d, i) => {
    const at = `spec.devices[${i}]`;
    if (!label(d['name'])) out.push(`${at}.name: Invalid value: ${JSON.stringify(d['name'])}`);
    if (names.has(d['name'] as string)) out.push(`${at}.name: Duplicate value`);
    names.add(d['name'] as string);
    const attrs = Object.entries((d['attributes'] ?? {}) as Record<string, Rec>);
    const caps = Object.keys((d['capacity'] ?? {}) as Rec);
    if (attrs.length + caps.length > 32)
      out.push(`${at}: Too many: attributes and capacities must have at most 32 entries`);
    for (const [k, v] of attrs) {
      if (!qualifiedName(k))
        out.push(`${at}.attributes[${k}]: Invalid value: not a qualified name`);
      const set = ['int', 'bool', 'string', 'version'].filter((f) => v[f] !== undefined);
      if (set.length !== 1)
        out.push(`${at}.attributes[${k}]: Invalid value: exactly one value must be set`);
      if (typeof v['string'] === 'string' && (v['string'] as string).length > 64)
        out.push(`${at}.attributes[${k}].string: Too long: must have at most 64 bytes`);
    }
    const cons = (d['consumesCounters'] ?? []) as Rec[];
    if (cons.length > 2) out.push(`${at}.consumesCounters: Too many: must have at most 2 items`);
    const used = new Set<string>();
    cons.forEach((c, j) => {
      if (!label(c['counterSet']))
        out.push(`${at}.consumesCounters[${j}].counterSet: Invalid value`);
      if (used.has(c['counterSet'] as string))
        out.push(`${at}.consumesCounters[${j}].counterSet: Duplicate value`);
      used.add(c['counterSet'] as string);
      const counters = Object.entries((c['counters'] ?? {}) as Record<string, Rec>);
      if (counters.length === 0 || counters.length > 32)
        out.push(`${at}.consumesCounters[${j}].counters: Invalid value: 1 to 32 counters`);
      for (const [k, v] of counters) {
        if (!label(k)) out.push(`${at}.consumesCounters[${j}].counters[${k}]: Invalid value`);
        if (typeof v['value'] !== 'string' || !QUANTITY.test(v['value'] as string))
          out.push(`${at}.consumesCounters[${j}].counters[${k}].value: Invalid value`);
      }
    });
  });
  return out;
}

const SCHEMAS: Record<string, new (data: never) => { validate(): void }> = {
  ResourceSlice: ResourceSlice as never,
  ResourceClaim: ResourceClaim as never,
  DeviceClass: DeviceClass as never,
};

/** The fake API server's `validate` for resource.k8s.io/v1 (other kinds pass). */
export function validateResourceObject(type: ResourceType, obj: KubeObject): string[] {
  if (type.group !== 'resource.k8s.io') return [];
  const Schema = SCHEMAS[type.kind];
  const out: string[] = [];
  if (Schema !== undefined) {
    try {
      new Schema({ ...obj, apiVersion: 'resource.k8s.io/v1', kind: type.kind } as never).validate();
    } catch (err) {
      out.push(`schema: ${(err as Error).message}`);
    }
  }
  if (type.kind === 'ResourceSlice') out.push(...resourceSliceProblems(obj));
  return out;
}
