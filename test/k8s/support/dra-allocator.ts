import type { FakeApiServer, KubeObject } from './fake-apiserver.js';

/**
 * A tiny allocator that plays the scheduler's part for the tests — it is
 * no scheduler of mdevkit's, and lives only here. It reads what the
 * drivers published (ResourceSlices) and what is allocated already (every
 * ResourceClaim's status) from the fake API server, and allocates a claim
 * as the scheduler's structured allocator would for the cases the tests
 * use:
 *
 * - a pool counts only at its highest generation and when all its slices
 *   (resourceSliceCount) are there;
 * - a device is free when no claim's allocation names it;
 * - a device that consumes counters fits only while the sum over all
 *   allocated devices of its counter set stays within the published values;
 * - requests `exactly` with a DeviceClass, CEL selectors of a small subset
 *   (`device.driver == "…"`, `device.attributes["domain"].name == …`,
 *   `!=`, `>=`, `<=`, joined by `&&`), `count`, and claim constraints
 *   `matchAttribute`;
 * - all devices of a claim come from one node; the claim gets
 *   `status.allocation` (results, node selector) and `reservedFor` the pod.
 *
 * When nothing fits it throws, saying what it tried.
 */

type Rec = Record<string, unknown>;

interface PoolDevice {
  readonly driver: string;
  readonly pool: string;
  readonly node: string;
  readonly name: string;
  readonly attributes: Record<string, Rec>;
  readonly consumes: { counterSet: string; counters: Record<string, number> }[];
}

interface Pool {
  readonly driver: string;
  readonly name: string;
  readonly node: string;
  readonly devices: PoolDevice[];
  /** counterSet -> counter -> value. */
  readonly counters: Map<string, Map<string, number>>;
}

export class AllocationError extends Error {
  override readonly name = 'AllocationError';
}

/** A Kubernetes quantity as a number (the suffixes the tests publish). */
export function quantityValue(q: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGTPE]i?|k|m)?$/.exec(q);
  if (m === null) throw new Error(`quantity ${q}`);
  const n = Number(m[1]);
  const mult: Record<string, number> = {
    '': 1,
    m: 1e-3,
    k: 1e3,
    K: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    Ti: 1024 ** 4,
  };
  return n * (mult[m[2] ?? ''] ?? NaN);
}

export class TestAllocator {
  constructor(readonly api: FakeApiServer) {}

  /** The complete pools at their highest generation. */
  pools(): Pool[] {
    const byPool = new Map<string, KubeObject[]>();
    for (const s of this.api.list('resourceslices', undefined, 'resource.k8s.io')) {
      const spec = s['spec'] as Rec;
      const pool = spec['pool'] as Rec;
      const key = `${spec['driver'] as string}|${pool['name'] as string}`;
      let l = byPool.get(key);
      if (l === undefined) byPool.set(key, (l = []));
      l.push(s);
    }
    const out: Pool[] = [];
    for (const slices of byPool.values()) {
      const gen = Math.max(
        ...slices.map((s) => ((s['spec'] as Rec)['pool'] as Rec)['generation'] as number),
      );
      const current = slices.filter(
        (s) => ((s['spec'] as Rec)['pool'] as Rec)['generation'] === gen,
      );
      const count = ((current[0]!['spec'] as Rec)['pool'] as Rec)['resourceSliceCount'] as number;
      if (current.length !== count) continue; // incomplete: not considered
      const first = current[0]!['spec'] as Rec;
      const pool: Pool = {
        driver: first['driver'] as string,
        name: (first['pool'] as Rec)['name'] as string,
        node: first['nodeName'] as string,
        devices: [],
        counters: new Map(),
      };
      for (const s of current) {
        const spec = s['spec'] as Rec;
        for (const set of (spec['sharedCounters'] ?? []) as Rec[]) {
          const m = new Map<string, number>();
          for (const [k, v] of Object.entries(set['counters'] as Record<string, Rec>))
            m.set(k, quantityValue(v['value'] as string));
          pool.counters.set(set['name'] as string, m);
        }
        for (const d of (spec['devices'] ?? []) as Rec[]) {
          pool.devices.push({
            driver: pool.driver,
            pool: pool.name,
            node: pool.node,
            name: d['name'] as string,
            attributes: (d['attributes'] ?? {}) as Record<string, Rec>,
            consumes: ((d['consumesCounters'] ?? []) as Rec[]).map((c) => ({
              counterSet: c['counterSet'] as string,
              counters: Object.fromEntries(
                Object.entries(c['counters'] as Record<string, Rec>).map(([k, v]) => [
                  k,
                  quantityValue(v['value'] as string),
                ]),
              ),
            })),
          });
        }
      }
      // A device naming a counter set the pool lacks makes the pool unusable (checked at allocation since 1.35).
      if (pool.devices.some((d) => d.consumes.some((c) => !pool.counters.has(c.counterSet))))
        continue;
      out.push(pool);
    }
    return out.sort((a, b) => (a.node < b.node ? -1 : 1));
  }

  /** Devices taken by any claim's allocation, and counters used, per pool. */
  #taken(
    pools: readonly Pool[],
    except?: string,
  ): { devices: Set<string>; used: Map<string, number> } {
    const devices = new Set<string>();
    const used = new Map<string, number>();
    const find = new Map<string, PoolDevice>();
    for (const p of pools)
      for (const d of p.devices) find.set(`${d.driver}|${d.pool}|${d.name}`, d);
    for (const c of this.api.list('resourceclaims', undefined, 'resource.k8s.io')) {
      if (c.metadata.uid === except) continue;
      const results = ((
        ((c['status'] as Rec | undefined)?.['allocation'] as Rec | undefined)?.['devices'] as
          Rec | undefined
      )?.['results'] ?? []) as Rec[];
      for (const r of results) {
        const key = `${r['driver'] as string}|${r['pool'] as string}|${r['device'] as string}`;
        devices.add(key);
        const d = find.get(key);
        for (const cons of d?.consumes ?? [])
          for (const [k, v] of Object.entries(cons.counters)) {
            const ck = `${d!.driver}|${d!.pool}|${cons.counterSet}|${k}`;
            used.set(ck, (used.get(ck) ?? 0) + v);
          }
      }
    }
    return { devices, used };
  }

  /**
   * Allocate claim `namespace/name` for `pod`, on `node` or the first node
   * where it fits; returns the node and the results.
   */
  allocate(
    namespace: string,
    name: string,
    pod: { name: string; uid: string },
    options: { node?: string } = {},
  ): {
    node: string;
    results: { request: string; driver: string; pool: string; device: string }[];
  } {
    const claim = this.api.get('resourceclaims', name, namespace, 'resource.k8s.io');
    if (claim === undefined) throw new AllocationError(`no ResourceClaim ${namespace}/${name}`);
    const spec = ((claim['spec'] as Rec)['devices'] ?? {}) as Rec;
    const requests = (spec['requests'] ?? []) as Rec[];
    const constraints = (spec['constraints'] ?? []) as Rec[];
    const pools = this.pools();
    const taken = this.#taken(pools, claim.metadata.uid);
    const nodes = [...new Set(pools.map((p) => p.node))].filter(
      (n) => options.node === undefined || n === options.node,
    );
    const why: string[] = [];
    for (const node of nodes) {
      const candidates = pools.filter((p) => p.node === node).flatMap((p) => p.devices);
      const wanted = requests.map((r) => {
        const ex = (r['exactly'] ?? {}) as Rec;
        const cls = this.api.get(
          'deviceclasses',
          ex['deviceClassName'] as string,
          undefined,
          'resource.k8s.io',
        );
        if (cls === undefined)
          throw new AllocationError(`no DeviceClass ${ex['deviceClassName'] as string}`);
        const exprs = [
          ...(((cls['spec'] as Rec)['selectors'] ?? []) as Rec[]),
          ...((ex['selectors'] ?? []) as Rec[]),
        ].map((s) => (s['cel'] as Rec)['expression'] as string);
        return {
          name: r['name'] as string,
          count: (ex['count'] as number | undefined) ?? 1,
          devices: candidates.filter(
            (d) =>
              !taken.devices.has(`${d.driver}|${d.pool}|${d.name}`) &&
              exprs.every((e) => cel(e, d)),
          ),
        };
      });
      const picked = this.#search(wanted, constraints, taken.used, pools);
      if (picked === undefined) {
        why.push(
          `${node}: ${wanted.map((w) => `${w.name}: ${w.devices.length} matching free devices`).join(', ')}, nothing fits the counters and constraints`,
        );
        continue;
      }
      const results = picked.map((p) => ({
        request: p.request,
        driver: p.device.driver,
        pool: p.device.pool,
        device: p.device.name,
      }));
      const next = structuredClone(claim);
      next['status'] = {
        allocation: {
          devices: { results },
          nodeSelector: {
            nodeSelectorTerms: [
              { matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] },
            ],
          },
        },
        reservedFor: [{ resource: 'pods', name: pod.name, uid: pod.uid }],
      };
      this.api.put('resourceclaims', next, 'resource.k8s.io');
      return { node, results };
    }
    throw new AllocationError(
      `cannot allocate ${namespace}/${name}: ${why.join('; ') || 'no node has the driver'}`,
    );
  }

  /** The claim's allocation is given back (what the scheduler does once no pod uses it). */
  deallocate(namespace: string, name: string): void {
    const claim = this.api.get('resourceclaims', name, namespace, 'resource.k8s.io');
    if (claim === undefined) return;
    delete claim['status'];
    this.api.put('resourceclaims', claim, 'resource.k8s.io');
  }

  #search(
    wanted: { name: string; count: number; devices: PoolDevice[] }[],
    constraints: Rec[],
    usedBase: Map<string, number>,
    pools: Pool[],
  ): { request: string; device: PoolDevice }[] | undefined {
    const slots: { request: string; devices: PoolDevice[] }[] = [];
    for (const w of wanted)
      for (let i = 0; i < w.count; i++) slots.push({ request: w.name, devices: w.devices });
    const chosen: { request: string; device: PoolDevice }[] = [];
    const used = new Map(usedBase);
    const capOf = (d: PoolDevice, set: string, counter: string): number =>
      pools
        .find((p) => p.driver === d.driver && p.name === d.pool)
        ?.counters.get(set)
        ?.get(counter) ?? 0;
    const fits = (d: PoolDevice): boolean =>
      d.consumes.every((c) =>
        Object.entries(c.counters).every(
          ([k, v]) =>
            (used.get(`${d.driver}|${d.pool}|${c.counterSet}|${k}`) ?? 0) + v <=
            capOf(d, c.counterSet, k),
        ),
      );
    const take = (d: PoolDevice, sign: 1 | -1): void => {
      for (const c of d.consumes)
        for (const [k, v] of Object.entries(c.counters)) {
          const key = `${d.driver}|${d.pool}|${c.counterSet}|${k}`;
          used.set(key, (used.get(key) ?? 0) + sign * v);
        }
    };
    const constraintsHold = (): boolean =>
      constraints.every((c) => {
        const attr = c['matchAttribute'] as string | undefined;
        if (attr === undefined) return true;
        const reqs = (c['requests'] as string[] | undefined) ?? wanted.map((w) => w.name);
        const values = chosen
          .filter((x) => reqs.includes(x.request))
          .map((x) => JSON.stringify(attribute(x.device, attr)));
        return new Set(values).size <= 1 && !values.includes(undefined as never);
      });
    const dfs = (i: number): boolean => {
      if (i === slots.length) return true;
      for (const d of slots[i]!.devices) {
        if (chosen.some((x) => x.device === d) || !fits(d)) continue;
        chosen.push({ request: slots[i]!.request, device: d });
        take(d, 1);
        if (constraintsHold() && dfs(i + 1)) return true;
        take(d, -1);
        chosen.pop();
      }
      return false;
    };
    return dfs(0) ? chosen : undefined;
  }
}

/** An attribute's value by qualified name ("domain/name"; an unqualified name is the driver's). */
function attribute(d: PoolDevice, qualified: string): unknown {
  const i = qualified.indexOf('/');
  const domain = i < 0 ? d.driver : qualified.slice(0, i);
  const name = i < 0 ? qualified : qualified.slice(i + 1);
  if (domain !== d.driver) return undefined;
  const v = d.attributes[name];
  return v === undefined ? undefined : (v['int'] ?? v['bool'] ?? v['string'] ?? v['version']);
}

/** The CEL subset the tests' DeviceClasses and claims use. */
export function cel(expression: string, d: PoolDevice): boolean {
  return expression.split('&&').every((term) => {
    const m = /^\s*(.+?)\s*(==|!=|>=|<=)\s*(.+?)\s*$/.exec(term);
    if (m === null) throw new Error(`CEL term the test allocator does not know: ${term}`);
    const lhs = m[1]!;
    let actual: unknown;
    if (lhs === 'device.driver') actual = d.driver;
    else {
      const a = /^device\.attributes\["([^"]+)"\]\.([A-Za-z_][A-Za-z0-9_]*)$/.exec(lhs);
      if (a === null) throw new Error(`CEL operand the test allocator does not know: ${lhs}`);
      actual = attribute(d, `${a[1]!}/${a[2]!}`);
    }
    const raw = m[3]!;
    const expected: unknown = raw.startsWith('"')
      ? JSON.parse(raw)
      : raw === 'true'
        ? true
        : raw === 'false'
          ? false
          : Number(raw);
    switch (m[2]) {
      case '==':
        return actual === expected;
      case '!=':
        return actual !== expected;
      case '>=':
        return typeof actual === 'number' && actual >= (expected as number);
      default:
        return typeof actual === 'number' && actual <= (expected as number);
    }
  });
}
