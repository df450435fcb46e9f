/**
 * Placement: which parent (and which type, where the request leaves it
 * open) each requested device goes to. Pure: it reads nothing and writes
 * nothing but the capacity states it is handed, and the same input gives
 * the same assignment — candidates are ordered by name, never by the order
 * sysfs happened to list them.
 *
 * Policies:
 *  - pack (default): parents already in use first (most devices first),
 *    then empty ones by name — whole GPUs stay free for large types;
 *  - spread: each device goes to the candidate with the fewest devices,
 *    then the least loaded NUMA node (for this request), then by name.
 * Constraints (NUMA node, named parents) narrow the candidates before
 * this module sees them; anti-affinity labels keep devices that share one
 * on different parents.
 */
import type { CapacityState, Refusal } from './capacity.js';

export type Policy = 'pack' | 'spread';

export interface PlacementCandidate {
  readonly parent: string;
  readonly numaNode: number | undefined;
  /** Types acceptable on this parent, most preferred first. */
  readonly types: readonly string[];
  /** Devices of this request already there (kept ones): counts against `per: parent` counts. */
  readonly existing: number;
}

export interface PlacementRequest {
  /** Identifies the request in results (its configuration field). */
  readonly id: string;
  /** Devices still to place: a number, or as many as fit. For `per: parent` a number per parent. */
  readonly count: number | 'fill';
  readonly per: 'entry' | 'parent';
  readonly aggregation: number;
  readonly antiAffinity?: string;
  /** Sorted by parent name. */
  readonly candidates: readonly PlacementCandidate[];
}

export interface Assignment {
  readonly request: string;
  readonly parent: string;
  readonly type: string;
}

export interface Shortfall {
  readonly request: string;
  readonly wanted: number | 'fill';
  readonly placed: number;
  /** Why each candidate parent took no more, by parent name. */
  readonly reasons: readonly { readonly parent: string; readonly refusal: Refusal }[];
}

export interface PlacementResult {
  readonly assignments: Assignment[];
  readonly shortfalls: Shortfall[];
}

export interface PlacementContext {
  readonly states: ReadonlyMap<string, CapacityState>;
  readonly policy: Policy;
  /** Parents each anti-affinity label already occupies (grows as devices are placed). */
  readonly affinity: Map<string, Set<string>>;
}

const ANTI_AFFINITY = (label: string, parent: string): Refusal => ({
  code: 'budget',
  reason: `${parent} already has a device labelled ${label} (anti-affinity)`,
});

/** The first acceptable type that fits on `c`, or the refusal of the most preferred one. */
function fitOn(
  c: PlacementCandidate,
  state: CapacityState,
  aggregation: number,
): { type: string } | { refusal: Refusal } {
  let first: Refusal | undefined;
  for (const t of c.types) {
    const r = state.check(t, aggregation);
    if (r === undefined) return { type: t };
    first ??= r;
  }
  return {
    refusal: first ?? { code: 'no-type', reason: `${c.parent} has no type this request accepts` },
  };
}

/** Place one request; mutates the states and the affinity map. */
export function placeRequest(req: PlacementRequest, ctx: PlacementContext): PlacementResult {
  const assignments: Assignment[] = [];
  const reasons = new Map<string, Refusal>();
  const label = req.antiAffinity;
  const taken = label === undefined ? undefined : (ctx.affinity.get(label) ?? new Set<string>());
  if (label !== undefined && !ctx.affinity.has(label)) ctx.affinity.set(label, taken!);
  const placedOn = new Map<string, number>();

  /** May `c` take one more of this request? Records why not. */
  const tryOne = (c: PlacementCandidate): boolean => {
    const state = ctx.states.get(c.parent);
    if (state === undefined) return false;
    if (taken?.has(c.parent) === true) {
      reasons.set(c.parent, ANTI_AFFINITY(label!, c.parent));
      return false;
    }
    const fit = fitOn(c, state, req.aggregation);
    if ('refusal' in fit) {
      reasons.set(c.parent, fit.refusal);
      return false;
    }
    state.add(fit.type, req.aggregation);
    taken?.add(c.parent);
    placedOn.set(c.parent, (placedOn.get(c.parent) ?? 0) + 1);
    assignments.push({ request: req.id, parent: c.parent, type: fit.type });
    return true;
  };

  const perParentLimit = (c: PlacementCandidate): number =>
    req.per === 'parent' && req.count !== 'fill' ? Math.max(0, req.count - c.existing) : Infinity;

  if (req.count === 'fill' || req.per === 'parent') {
    // Every candidate gets what it can take (up to its own count).
    for (const c of req.candidates) {
      const limit = perParentLimit(c);
      let n = 0;
      while (n < limit && tryOne(c)) n++;
      if (n === limit) reasons.delete(c.parent);
    }
  } else if (ctx.policy === 'pack') {
    const order = [...req.candidates].sort((a, b) => {
      const da = ctx.states.get(a.parent)?.devices ?? 0;
      const db = ctx.states.get(b.parent)?.devices ?? 0;
      if (da > 0 !== db > 0) return da > 0 ? -1 : 1;
      if (da !== db) return db - da;
      return a.parent < b.parent ? -1 : a.parent > b.parent ? 1 : 0;
    });
    let left = req.count;
    for (const c of order) {
      while (left > 0 && tryOne(c)) left--;
      if (left === 0) break;
    }
  } else {
    // spread: one device at a time to the least loaded candidate that takes it.
    let left = req.count;
    const numaLoad = new Map<number, number>();
    const open = new Set(req.candidates.map((c) => c.parent));
    while (left > 0 && open.size > 0) {
      let best: PlacementCandidate | undefined;
      let bestKey: [number, number] = [Infinity, Infinity];
      for (const c of req.candidates) {
        if (!open.has(c.parent)) continue;
        const key: [number, number] = [
          ctx.states.get(c.parent)?.devices ?? 0,
          c.numaNode === undefined ? 0 : (numaLoad.get(c.numaNode) ?? 0),
        ];
        if (key[0] < bestKey[0] || (key[0] === bestKey[0] && key[1] < bestKey[1])) {
          best = c;
          bestKey = key;
        }
      }
      if (best === undefined) break;
      if (tryOne(best)) {
        left--;
        if (best.numaNode !== undefined)
          numaLoad.set(best.numaNode, (numaLoad.get(best.numaNode) ?? 0) + 1);
      } else open.delete(best.parent);
    }
  }

  const shortfalls: Shortfall[] = [];
  const wanted =
    req.count === 'fill'
      ? 'fill'
      : req.per === 'parent'
        ? req.candidates.reduce((n, c) => n + perParentLimit(c), 0)
        : req.count;
  const short =
    wanted === 'fill'
      ? assignments.length === 0 && reasons.size > 0 && !req.candidates.some((c) => c.existing > 0)
      : assignments.length < wanted;
  if (short) {
    shortfalls.push({
      request: req.id,
      wanted,
      placed: assignments.length,
      reasons: [...reasons]
        .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
        .map(([parent, refusal]) => ({ parent, refusal })),
    });
  }
  return { assignments, shortfalls };
}

/** Place requests in order (earlier ones win where they compete). */
export function place(
  requests: readonly PlacementRequest[],
  ctx: PlacementContext,
): PlacementResult {
  const assignments: Assignment[] = [];
  const shortfalls: Shortfall[] = [];
  for (const r of requests) {
    const out = placeRequest(r, ctx);
    assignments.push(...out.assignments);
    shortfalls.push(...out.shortfalls);
  }
  return { assignments, shortfalls };
}

/** "3 of 4 fit: the aperture budget is spent: ..." — one line for a shortfall. */
export function explainShortfall(s: Shortfall, limit = 3): string {
  const distinct = new Map<string, string[]>();
  for (const { parent, refusal } of s.reasons) {
    const key = refusal.reason;
    const list = distinct.get(key) ?? [];
    list.push(parent);
    distinct.set(key, list);
  }
  const parts = [...distinct.keys()].slice(0, limit);
  const more = distinct.size - parts.length;
  const why =
    parts.length === 0
      ? 'no parent selected by this entry can take it'
      : parts.join('; ') + (more > 0 ? `; and ${more} more` : '');
  const head =
    s.wanted === 'fill'
      ? 'none fit'
      : s.placed === 0
        ? `none of ${s.wanted} fit`
        : `${s.placed} of ${s.wanted} fit`;
  return `${head}: ${why}`;
}
