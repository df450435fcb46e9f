import * as client from '@kubernetes/client-node';

/**
 * Fields a Kubernetes object has that its kind does not, found by walking
 * it along the official client's models (@kubernetes/client-node, generated
 * from Kubernetes' OpenAPI document): each model lists its fields with
 * their wire names and types. This is what strict field validation
 * (`kubectl apply`'s default) refuses. The JSON schemas of
 * kubernetes-models allow unknown fields, so both checks are needed.
 *
 * The walk starts from the model named by `type` (the client's name:
 * "ResourceV1ResourceClaim", "V1DeviceClass"), so it does not depend on
 * the client mapping apiVersion and kind to a model (its loadYaml maps
 * resource.k8s.io/v1 ResourceClaim to none, and keeps every field).
 */

type AttributeMap = readonly { name: string; baseName: string; type: string }[];
type Model = { getAttributeTypeMap(): AttributeMap };

const models = client as unknown as Record<string, Model | undefined>;

/** Types the walk stops at (values, not objects with fields). */
const PRIMITIVE = new Set(['string', 'number', 'boolean', 'any', 'object', 'Date', 'IntOrString']);

export function unknownFields(value: unknown, type: string, at = ''): string[] {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array !== null) {
    if (!Array.isArray(value)) return [];
    return value.flatMap((v, i) => unknownFields(v, array[1]!, `${at}[${i}]`));
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map !== null) {
    return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) =>
      unknownFields(v, map[1]!, `${at}[${k}]`),
    );
  }
  if (PRIMITIVE.has(type)) return [];
  const model = models[type];
  if (model === undefined || typeof model.getAttributeTypeMap !== 'function')
    throw new Error(`the client has no model ${type} (at ${at || 'the top'})`);
  if (typeof value !== 'object' || Array.isArray(value)) return [];
  const fields = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  const out: string[] = [];
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const t = fields.get(k);
    if (t === undefined) out.push(`${at}.${k}`);
    else out.push(...unknownFields(v, t, `${at}.${k}`));
  }
  return out;
}
