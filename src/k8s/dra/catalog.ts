import { createHash } from 'node:crypto';
import { apqnName, hostOwns } from '../../host/ap/model.js';
import type { EngineCapacity, EngineParent, HostView, OwnerEntry } from './engine.js';
import { isClaimOwner } from './engine.js';

/**
 * What the driver offers on a node, computed from the engine's view of
 * the host (inventory and capacity models): the shared counters of every
 * parent and every device the scheduler may allocate. Pure: the same host
 * gives the same catalog, whatever order sysfs lists things in.
 *
 * **Partitionable devices** (KEP-4815). Each parent whose capacity model
 * has counters — a GPU's framebuffer, a GVT-g aperture, high graphics
 * memory and fences, a SIOV queue pool, a generic parent's instances — is
 * one counter set. Each type it can create is offered as as many devices
 * as could ever exist at once on an empty parent, each consuming what one
 * instance takes; the scheduler allocates a mix of them as long as the
 * counters allow. Device names are stable: parent, type, index.
 *
 * What others use is not offered: a counter's published value is the
 * parent's capacity less what devices that no claim of this driver made
 * (someone else's, a desired-state configuration's) take. The scheduler
 * accounts for the claims' own devices itself.
 *
 * **One type per GPU.** An NVIDIA GRID GPU runs one type at a time. No
 * set of additive counters can say "any number of one type, but no two
 * types" (a mix of one small and one large profile lies inside the hull
 * of the all-small and all-large allocations), so the API cannot express
 * it to the scheduler. What can be done is done: while a GPU runs a type,
 * only that type's devices are offered on it (`narrowed`), so the
 * scheduler stops offering the others as soon as the slices say so;
 * every device carries `oneTypeAtATime` and its framebuffer so claims can
 * constrain themselves; and Prepare checks the rule against the GPU as
 * sysfs shows it, refusing with the reason (the kernel would refuse too).
 *
 * **vfio-ap.** Matrix devices are built per claim from the queues
 * allocated to it, so the devices offered are the AP queues guests may
 * have: every adapter × domain of the AP configuration that the host's
 * masks give to vfio_ap and no other matrix device holds, with its
 * adapter, domain and queue as attributes. No counters. The others are
 * in `devices`, not offered, so that Prepare can say whose they are.
 */

export type CatalogKind = 'mdev' | 'ap-queue';

export interface DeviceAttribute {
  readonly int?: number;
  readonly bool?: boolean;
  readonly string?: string;
  readonly version?: string;
}

export interface CatalogDevice {
  /** DNS label, unique in the pool. */
  readonly name: string;
  readonly kind: CatalogKind;
  readonly parent: string;
  readonly type: string;
  readonly index: number;
  readonly attributes: Readonly<Record<string, DeviceAttribute>>;
  /** The counter set it draws on and what it takes of each counter (quantities). */
  readonly consumes:
    { readonly counterSet: string; readonly counters: Record<string, string> } | undefined;
  readonly adapter?: number;
  readonly domain?: number;
}

export interface CatalogCounterSet {
  readonly name: string;
  readonly parent: string;
  /** Counter name -> quantity. */
  readonly counters: Readonly<Record<string, string>>;
}

/** Why something is not offered, for Events. */
export interface CatalogNote {
  readonly parent: string;
  readonly reason: string;
}

export interface Catalog {
  readonly counterSets: readonly CatalogCounterSet[];
  /** Every device the host could have, narrowed or not (Prepare looks names up here). */
  readonly devices: readonly CatalogDevice[];
  /** The devices offered now. */
  readonly offered: readonly CatalogDevice[];
  readonly byName: ReadonlyMap<string, CatalogDevice>;
  readonly notes: readonly CatalogNote[];
}

/** Counters whose amounts are MiB; the others are plain counts. */
const MIB_COUNTERS = new Set(['framebuffer', 'aperture', 'high-gm']);

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A name as a DNS label fragment: lower case, [a-z0-9-], no leading/trailing '-'. */
export function slug(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

/** A DNS label from parts; too long or unsafe ones keep a readable head and a hash of the whole. */
export function labelOf(...parts: string[]): string {
  const whole = parts.join('/');
  const s = parts
    .map(slug)
    .filter((p) => p !== '')
    .join('-');
  if (s.length <= 63 && DNS_LABEL.test(s)) return s;
  const h = createHash('sha256').update(whole).digest('hex').slice(0, 10);
  return `${s.slice(0, 52).replace(/-+$/, '')}-${h}`;
}

function quantity(counter: string, n: number): string {
  return MIB_COUNTERS.has(counter) ? `${n}Mi` : String(n);
}

/** "1 GB", "512 MB": how people name a vGPU's framebuffer. */
export function sizeWords(mib: number): string {
  return mib >= 1024 && mib % 1024 === 0 ? `${mib / 1024} GB` : `${mib} MB`;
}

export interface CatalogOptions {
  readonly driver: string;
  /** The ownership record's entries (which devices the driver's claims made). */
  readonly owners: readonly OwnerEntry[];
}

/** Build the catalog from the engine's view of the host. */
export function buildCatalog(view: HostView, options: CatalogOptions): Catalog {
  const ours = new Set(
    options.owners.filter((e) => isClaimOwner(options.driver, e.owner)).map((e) => e.uuid),
  );
  const counterSets: CatalogCounterSet[] = [];
  const devices: CatalogDevice[] = [];
  const offered: CatalogDevice[] = [];
  const notes: CatalogNote[] = [];
  const used = new Set<string>();
  const unique = (name: string): string => {
    let n = name;
    for (let i = 2; used.has(n); i++) n = labelOf(name, String(i));
    used.add(n);
    return n;
  };

  const parents = [...view.parents].sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const p of parents) {
    const cap = view.capacity.get(p.name);
    if (cap === undefined) continue;
    if (cap.kind === 'vfio-ap' || p.types.some((t) => t.deviceApi === 'vfio-ap')) continue;
    const set = counterSetOf(p, cap, view, ours);
    if (set === undefined) continue;
    counterSets.push({ name: unique(labelOf(p.name)), parent: p.name, counters: set.published });
    const setName = counterSets[counterSets.length - 1]!.name;
    const running = cap.kind === 'nvidia-grid' ? cap.runningTypes() : [];
    const types = [...p.types].sort((a, b) => (a.id < b.id ? -1 : 1));
    for (const t of types) {
      const cons = cap.consumption(t.id);
      const n = devicesOf(set.capacity, cons);
      const consumes: Record<string, string> = {};
      for (const [c, v] of Object.entries(cons)) if (v > 0) consumes[slug(c)] = quantity(c, v);
      const attributes = mdevAttributes(p, t, cap);
      for (let i = 0; i < n; i++) {
        const d: CatalogDevice = {
          name: unique(labelOf(p.name, t.id, String(i))),
          kind: 'mdev',
          parent: p.name,
          type: t.id,
          index: i,
          attributes,
          consumes: { counterSet: setName, counters: consumes },
        };
        devices.push(d);
        if (running.length === 0 || running.includes(t.id)) offered.push(d);
      }
    }
    if (running.length > 0) {
      const names = running.map((id) => {
        const t = p.types.find((x) => x.id === id);
        return t?.name ?? id;
      });
      const fb = running
        .map((id) => p.types.find((x) => x.id === id)?.framebufferMb)
        .find((x) => x !== undefined);
      notes.push({
        parent: p.name,
        reason:
          `GPU ${p.name} runs ${fb === undefined ? '' : `${sizeWords(fb)} profiles `}(${names.join(', ')}): ` +
          `until it is empty, only ${names.join(', ')} devices are offered there`,
      });
    }
  }

  if (view.ap !== undefined) {
    const ap = view.ap;
    const matrixParent = view.parents.find((p) => p.types.some((t) => t.deviceApi === 'vfio-ap'));
    if (matrixParent !== undefined) {
      const type = matrixParent.types.find((t) => t.deviceApi === 'vfio-ap')!;
      const holder = new Map<string, string>();
      for (const d of ap.devices)
        for (const a of d.adapters) for (const q of d.domains) holder.set(`${a}.${q}`, d.uuid);
      const adapters = [...ap.adapters.map((a) => a.id)].sort((a, b) => a - b);
      const domains = [...ap.domains].sort((a, b) => a - b);
      for (const a of adapters) {
        for (const q of domains) {
          // The host's queues and those other matrix devices hold are not
          // offered, but stay known: a claim allocated one from older
          // slices is then refused with the reason (whose queue it is).
          const h = holder.get(`${a}.${q}`);
          const free = !hostOwns(ap, a, q) && (h === undefined || ours.has(h));
          const queue = apqnName(a, q);
          const d: CatalogDevice = {
            name: unique(labelOf('ap', queue)),
            kind: 'ap-queue',
            parent: matrixParent.name,
            type: type.id,
            index: 0,
            adapter: a,
            domain: q,
            attributes: {
              kind: { string: 'vfio-ap' },
              type: { string: type.id },
              ...(type.name !== undefined &&
                type.name.length <= 64 && { name: { string: type.name } }),
              deviceApi: { string: 'vfio-ap' },
              parent: { string: matrixParent.name },
              adapter: { int: a },
              domain: { int: q },
              queue: { string: queue },
            },
            consumes: undefined,
          };
          devices.push(d);
          if (free) offered.push(d);
        }
      }
    }
  }

  return {
    counterSets,
    devices,
    offered,
    byName: new Map(devices.map((d) => [d.name, d])),
    notes,
  };
}

function mdevAttributes(
  p: EngineParent,
  t: EngineParent['types'][number],
  cap: EngineCapacity,
): Record<string, DeviceAttribute> {
  const a: Record<string, DeviceAttribute> = {
    kind: { string: 'mdev' },
    type: { string: t.id },
    deviceApi: { string: t.deviceApi },
    parent: { string: p.name },
  };
  if (t.name !== undefined && t.name.length <= 64) a['name'] = { string: t.name };
  if (p.driver !== undefined) a['parentDriver'] = { string: p.driver };
  if (p.numaNode !== undefined) a['numaNode'] = { int: p.numaNode };
  if (t.framebufferMb !== undefined) a['framebufferMiB'] = { int: t.framebufferMb };
  a['oneTypeAtATime'] = { bool: cap.kind === 'nvidia-grid' };
  return a;
}

/**
 * A parent's counters: the capacity (to size the device list) and what
 * is published (capacity less what devices not made by the driver's
 * claims use). Undefined when the model has no counters.
 */
function counterSetOf(
  p: EngineParent,
  cap: EngineCapacity,
  view: HostView,
  ours: ReadonlySet<string>,
): { capacity: Record<string, number>; published: Record<string, string> } | undefined {
  const counters = cap.counters();
  if (counters.length === 0) return undefined;
  const oursUse: Record<string, number> = {};
  for (const d of view.devices) {
    if (d.parent !== p.name || !d.active || !ours.has(d.uuid)) continue;
    for (const [c, v] of Object.entries(cap.consumption(d.type)))
      oursUse[c] = (oursUse[c] ?? 0) + v * d.aggregation;
  }
  const capacity: Record<string, number> = {};
  const published: Record<string, string> = {};
  for (const c of counters) {
    capacity[c.name] = c.capacity;
    const foreign = Math.max(0, c.used - (oursUse[c.name] ?? 0));
    published[slug(c.name)] = quantity(c.name, Math.max(0, c.capacity - foreign));
  }
  return { capacity, published };
}

/** How many devices of a type could exist at once on the empty parent. */
function devicesOf(
  capacity: Record<string, number>,
  cons: Readonly<Record<string, number>>,
): number {
  let n = Infinity;
  for (const [c, v] of Object.entries(cons)) {
    if (v <= 0) continue;
    n = Math.min(n, Math.floor((capacity[c] ?? 0) / v));
  }
  return n === Infinity ? 0 : n;
}
