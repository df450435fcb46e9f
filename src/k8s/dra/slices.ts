import type { Catalog, CatalogDevice } from './catalog.js';

/**
 * The ResourceSlices of one node's pool (resource.k8s.io/v1), from its
 * catalog, within the API's limits (k8s.io/api/resource/v1 types.go and
 * the API server's validation):
 *
 * - a slice holds either `sharedCounters` or `devices`, never both: since
 *   Kubernetes 1.35 counter sets live in slices of their own and devices
 *   refer to them by name across the pool;
 * - at most 8 counter sets per slice, 32 counters per set;
 * - at most 128 devices per slice, 64 when a device consumes counters;
 *   each device consumes from at most 2 counter sets (ours: 1) and has at
 *   most 32 attributes and capacities, string values of at most 64
 *   characters; names are DNS labels;
 * - every slice of the pool has the same `generation` and
 *   `resourceSliceCount`, and a node-local pool names its node.
 *
 * The pool is named after the node. Slices are named
 * `<node>-<driver>-<n>`, so an update is a PUT of the same names and a
 * pool that shrank deletes the tail.
 */

export const MAX_COUNTER_SETS_PER_SLICE = 8;
export const MAX_COUNTERS_PER_SET = 32;
export const MAX_DEVICES_PER_SLICE = 128;
export const MAX_DEVICES_WITH_COUNTERS = 64;
export const MAX_ATTRIBUTES_PER_DEVICE = 32;
export const MAX_CONSUMPTIONS_PER_DEVICE = 2;
export const MAX_ATTRIBUTE_STRING = 64;

export interface SliceDevice {
  name: string;
  attributes?: Record<string, { int?: number; bool?: boolean; string?: string; version?: string }>;
  consumesCounters?: { counterSet: string; counters: Record<string, { value: string }> }[];
}

export interface SliceSpec {
  driver: string;
  pool: { name: string; generation: number; resourceSliceCount: number };
  nodeName: string;
  devices?: SliceDevice[];
  sharedCounters?: { name: string; counters: Record<string, { value: string }> }[];
}

export interface SliceContent {
  /** The slice's name. */
  readonly name: string;
  readonly spec: SliceSpec;
}

const chunk = <T>(xs: readonly T[], n: number): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
};

function sliceDevice(d: CatalogDevice): SliceDevice {
  const out: SliceDevice = { name: d.name };
  if (Object.keys(d.attributes).length > 0) out.attributes = { ...d.attributes };
  if (d.consumes !== undefined && Object.keys(d.consumes.counters).length > 0) {
    out.consumesCounters = [
      {
        counterSet: d.consumes.counterSet,
        counters: Object.fromEntries(
          Object.entries(d.consumes.counters).map(([k, v]) => [k, { value: v }]),
        ),
      },
    ];
  }
  return out;
}

/** A slice's name: `<node>-<driver>-<n>`. */
export function sliceName(node: string, driver: string, n: number): string {
  return `${node}-${driver}-${n}`;
}

/** The pool's slices for `generation`, counter sets first. */
export function buildSlices(
  catalog: Catalog,
  node: string,
  driver: string,
  generation: number,
): SliceContent[] {
  const specs: Omit<SliceSpec, 'pool'>[] = [];
  for (const group of chunk(catalog.counterSets, MAX_COUNTER_SETS_PER_SLICE)) {
    specs.push({
      driver,
      nodeName: node,
      sharedCounters: group.map((s) => ({
        name: s.name,
        counters: Object.fromEntries(Object.entries(s.counters).map(([k, v]) => [k, { value: v }])),
      })),
    });
  }
  const withCounters = catalog.offered.filter((d) => d.consumes !== undefined);
  const plain = catalog.offered.filter((d) => d.consumes === undefined);
  for (const group of chunk(withCounters, MAX_DEVICES_WITH_COUNTERS))
    specs.push({ driver, nodeName: node, devices: group.map(sliceDevice) });
  for (const group of chunk(plain, MAX_DEVICES_PER_SLICE))
    specs.push({ driver, nodeName: node, devices: group.map(sliceDevice) });
  // A node with nothing to offer still publishes its (empty) pool, so
  // that the scheduler sees the driver there and what it has: nothing.
  if (specs.length === 0) specs.push({ driver, nodeName: node, devices: [] });
  return specs.map((s, i) => ({
    name: sliceName(node, driver, i),
    spec: {
      ...s,
      pool: { name: node, generation, resourceSliceCount: specs.length },
    },
  }));
}
