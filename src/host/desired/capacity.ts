/**
 * Vendor capacity models: how many more devices of a type a parent can
 * take, and why not, learned from what sysfs shows (type descriptions and
 * available_instances) — never from the emulator.
 *
 *  - nvidia-grid (Tesla M60 and its kind): the description says
 *    `framebuffer=2048M, ..., max_instance=4`; the GPU's framebuffer is the
 *    largest framebuffer × max_instance, and a GPU runs one type at a time.
 *  - gvt (Intel GVT-g): descriptions give `low_gm_size`, `high_gm_size` and
 *    `fence`; all types draw on one budget of aperture (low graphics
 *    memory), high graphics memory and fence registers. What is free is
 *    what available_instances implies (the largest available × size per
 *    resource: a lower bound the kernel's own min() guarantees).
 *  - queue-pool (SIOV, idxd): `work_queues: N`; one pool of queues.
 *  - vfio-ap (the matrix parent): matrix devices are counted as instances;
 *    their queues are checked against the host's masks and other devices.
 *  - nvidia-vf (NVIDIA's SR-IOV GPUs, src/host/vf-vgpu): one vGPU per VF;
 *    the framebuffer in 1 GB slots, a vGPU of S GB in a free run aligned
 *    to S; in the default equal-size mode one size per GPU while it has
 *    vGPUs (series of that size mix); the GPU's framebuffer from its board
 *    or its largest type. VFs not enabled: nothing fits, and it says why.
 *  - generic: anything else. Trusts available_instances and assumes the
 *    types share one pool in proportion to them (true of the kernel's
 *    samples and of core-counted parents; conservative where types are
 *    independent). Apply re-reads available_instances before each create,
 *    and the kernel's errno is the final word everywhere.
 *
 * Each model is a small mutable state a planner clones and plays changes
 * on (`check`, `add`, `remove`). `counters()` and `consumption()` express
 * it as shared counters, the shape Kubernetes DRA's partitionable devices
 * publish; rules counters cannot say (one type per GPU) stay in `check`.
 */
import { apqnKey, apqnName, hostOwns } from '../ap/model.js';
import type {
  ApView,
  Inventory,
  InventoryDevice,
  InventoryParent,
  InventoryType,
  VfGpuFacts,
} from './inventory.js';

export type ModelKind = 'nvidia-grid' | 'gvt' | 'queue-pool' | 'vfio-ap' | 'nvidia-vf' | 'generic';

export type RefusalCode =
  /** The parent runs another type and mixes none (M60). */
  | 'exclusive-type'
  /** A shared budget (framebuffer, aperture, queues, instances) is short. */
  | 'budget'
  /** The parent has no such type. */
  | 'no-type'
  /** The type does not aggregate, or not that far. */
  | 'aggregation'
  /** vfio-ap: a queue the host keeps (apmask/aqmask). */
  | 'queue-host'
  /** vfio-ap: a queue another matrix device holds. */
  | 'queue-in-use'
  /** vfio-ap: an id above the machine's maximum. */
  | 'id-range'
  /** NVIDIA SR-IOV GPU: its VFs are not enabled (sriov-manage -e). */
  | 'vfs-disabled';

export interface Refusal {
  readonly code: RefusalCode;
  /** In words, naming parent, type and numbers. */
  readonly reason: string;
}

export interface Counter {
  /** "framebuffer", "aperture", "high-gm", "fences", "queues", "instances". */
  readonly name: string;
  readonly capacity: number;
  /** Taken now (in the state's current view). */
  readonly used: number;
}

export interface MatrixShape {
  readonly adapters: readonly number[];
  readonly domains: readonly number[];
  readonly controlDomains: readonly number[];
}

/** One parent's capacity, as a planner plays changes on it. */
export interface CapacityState {
  readonly parent: string;
  readonly kind: ModelKind;
  /** Would one more device of `type` holding `aggregation` instances fit? undefined: it would. */
  check(type: string, aggregation?: number): Refusal | undefined;
  add(type: string, aggregation?: number): void;
  remove(type: string, aggregation?: number): void;
  /** How many more devices of `type` (aggregation 1) fit now. */
  headroom(type: string): number;
  /** Devices counted on the parent now. */
  readonly devices: number;
  clone(): CapacityState;
  counters(): readonly Counter[];
  /** What one device of `type` takes of each counter. */
  consumption(type: string): Readonly<Record<string, number>>;
  /** Types present now (the one an exclusive parent runs, for instance). */
  runningTypes(): readonly string[];
  /** vfio-ap only: would this matrix (replacing device `replacing`) fit? */
  checkMatrix?(shape: MatrixShape, replacing?: string): Refusal[];
  addMatrix?(uuid: string, shape: MatrixShape): void;
  removeMatrix?(uuid: string): void;
}

// ---------------------------------------------------------------- type traits

export interface TypeTraits {
  /** Framebuffer (MB) one device of the type has, when the description says. */
  readonly framebufferMb: number | undefined;
}

const FB_GRID = /\bframebuffer=(\d+)M\b/;
const MAX_INSTANCE = /\bmax_instance=(\d+)\b/;
const GVT_LOW = /low_gm_size:\s*(\d+)MB/;
const GVT_HIGH = /high_gm_size:\s*(\d+)MB/;
const GVT_FENCE = /fence:\s*(\d+)/;
const WORK_QUEUES = /work_queues:\s*(\d+)/;
const VIDEO_MB = /(\d+)\s*MB video memory/;

export function typeTraits(type: InventoryType): TypeTraits {
  const d = type.description ?? '';
  let fb: number | undefined;
  let m = FB_GRID.exec(d);
  if (m !== null) fb = Number(m[1]);
  else if ((m = GVT_LOW.exec(d)) !== null) {
    const high = GVT_HIGH.exec(d);
    fb = Number(m[1]) + (high === null ? 0 : Number(high[1]));
  } else if ((m = VIDEO_MB.exec(d)) !== null) fb = Number(m[1]);
  return { framebufferMb: fb };
}

// ---------------------------------------------------------------- models

const num = (re: RegExp, text: string | undefined): number | undefined => {
  const m = text === undefined ? null : re.exec(text);
  return m === null ? undefined : Number(m[1]);
};

function countByType(devices: readonly InventoryDevice[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const d of devices) m.set(d.type, (m.get(d.type) ?? 0) + 1);
  return m;
}

const noType = (parent: string, type: string): Refusal => ({
  code: 'no-type',
  reason: `${parent} has no type ${type}`,
});

const noAggregation = (parent: string, type: string): Refusal => ({
  code: 'aggregation',
  reason: `${type} on ${parent} does not aggregate`,
});

/** NVIDIA GRID (M60): one type per GPU, framebuffer carved per device. */
class GridState implements CapacityState {
  readonly kind = 'nvidia-grid';
  constructor(
    readonly parent: string,
    readonly fb: ReadonlyMap<string, number>,
    readonly totalMb: number,
    public freeMb: number,
    public running: Map<string, number>,
  ) {}
  get devices(): number {
    let n = 0;
    for (const c of this.running.values()) n += c;
    return n;
  }
  check(type: string, aggregation = 1): Refusal | undefined {
    const fb = this.fb.get(type);
    if (fb === undefined) return noType(this.parent, type);
    if (aggregation !== 1) return noAggregation(this.parent, type);
    for (const [t, n] of this.running) {
      if (t !== type && n > 0) {
        return {
          code: 'exclusive-type',
          reason: `${this.parent} runs ${t}; ${type} needs a GPU with no devices of another type`,
        };
      }
    }
    if (this.freeMb < fb) {
      return {
        code: 'budget',
        reason: `${this.parent} has ${this.freeMb}M of framebuffer left; ${type} needs ${fb}M`,
      };
    }
    return undefined;
  }
  add(type: string): void {
    this.freeMb -= this.fb.get(type) ?? 0;
    this.running.set(type, (this.running.get(type) ?? 0) + 1);
  }
  remove(type: string): void {
    this.freeMb = Math.min(this.totalMb, this.freeMb + (this.fb.get(type) ?? 0));
    const n = (this.running.get(type) ?? 1) - 1;
    if (n <= 0) this.running.delete(type);
    else this.running.set(type, n);
  }
  headroom(type: string): number {
    const fb = this.fb.get(type);
    if (fb === undefined || this.check(type)?.code === 'exclusive-type') return 0;
    return Math.floor(this.freeMb / fb);
  }
  clone(): GridState {
    return new GridState(this.parent, this.fb, this.totalMb, this.freeMb, new Map(this.running));
  }
  counters(): Counter[] {
    return [{ name: 'framebuffer', capacity: this.totalMb, used: this.totalMb - this.freeMb }];
  }
  consumption(type: string): Record<string, number> {
    return { framebuffer: this.fb.get(type) ?? 0 };
  }
  runningTypes(): string[] {
    return [...this.running.keys()].sort();
  }
}

interface BudgetResource {
  readonly name: string;
  /** How a shortage reads: "the aperture budget is spent". */
  readonly spent: string;
  readonly unit: string;
}

/** One budget of several resources all types draw on (GVT-g, SIOV queue pools). */
class BudgetState implements CapacityState {
  constructor(
    readonly kind: 'gvt' | 'queue-pool',
    readonly parent: string,
    readonly resources: readonly BudgetResource[],
    /** Per type, what one instance takes of each resource. */
    readonly cost: ReadonlyMap<string, readonly number[]>,
    readonly aggregates: ReadonlySet<string>,
    readonly total: readonly number[],
    public free: number[],
    public count: Map<string, number>,
    /**
     * Every type showed available_instances 0 when read: what is free is
     * then known only as "less than any type needs", not which resource
     * ran out first.
     */
    readonly exhaustedAtRead: boolean,
    /**
     * Per resource: its free amount explains every type's
     * available_instances, so it is what the driver counts by; the others
     * are only known to be at least that much.
     */
    readonly exact: readonly boolean[],
  ) {}
  get devices(): number {
    let n = 0;
    for (const c of this.count.values()) n += c;
    return n;
  }
  check(type: string, aggregation = 1): Refusal | undefined {
    const cost = this.cost.get(type);
    if (cost === undefined) return noType(this.parent, type);
    if (aggregation > 1 && !this.aggregates.has(type)) return noAggregation(this.parent, type);
    const what = aggregation > 1 ? `${type} x${aggregation}` : type;
    const shortOnes = cost.flatMap((c, i) => (this.free[i]! < c * aggregation ? [i] : []));
    if (shortOnes.length === 0) return undefined;
    // Name a resource whose free amount is known, not only bounded below.
    const short = shortOnes.find((i) => this.exact[i] === true) ?? shortOnes[0]!;
    const shared = this.resources.map((r) => r.name).join(', ');
    if (this.exhaustedAtRead && this.free.every((f) => f === 0)) {
      return {
        code: 'budget',
        reason: `${this.parent} is full: available_instances is 0 for every type (${shared} shared)`,
      };
    }
    if (this.exact[short] !== true) {
      return {
        code: 'budget',
        reason: `the shared budget (${shared}) of ${this.parent} is spent: ${what} does not fit after the devices planned there`,
      };
    }
    const r = this.resources[short]!;
    return {
      code: 'budget',
      reason: `${r.spent}: ${this.free[short]}${r.unit} left on ${this.parent}, ${what} needs ${cost[short]! * aggregation}${r.unit}`,
    };
  }
  add(type: string, aggregation = 1): void {
    const cost = this.cost.get(type);
    if (cost === undefined) return;
    for (let i = 0; i < cost.length; i++) this.free[i]! -= cost[i]! * aggregation;
    this.count.set(type, (this.count.get(type) ?? 0) + 1);
  }
  remove(type: string, aggregation = 1): void {
    const cost = this.cost.get(type);
    if (cost === undefined) return;
    for (let i = 0; i < cost.length; i++)
      this.free[i] = Math.min(this.total[i]!, this.free[i]! + cost[i]! * aggregation);
    const n = (this.count.get(type) ?? 1) - 1;
    if (n <= 0) this.count.delete(type);
    else this.count.set(type, n);
  }
  headroom(type: string): number {
    const cost = this.cost.get(type);
    if (cost === undefined) return 0;
    let n = Infinity;
    for (let i = 0; i < cost.length; i++)
      if (cost[i]! > 0) n = Math.min(n, Math.floor(this.free[i]! / cost[i]!));
    return n === Infinity ? 0 : n;
  }
  clone(): BudgetState {
    return new BudgetState(
      this.kind,
      this.parent,
      this.resources,
      this.cost,
      this.aggregates,
      this.total,
      [...this.free],
      new Map(this.count),
      this.exhaustedAtRead,
      this.exact,
    );
  }
  counters(): Counter[] {
    return this.resources.map((r, i) => ({
      name: r.name,
      capacity: this.total[i]!,
      used: this.total[i]! - this.free[i]!,
    }));
  }
  consumption(type: string): Record<string, number> {
    const cost = this.cost.get(type) ?? [];
    return Object.fromEntries(this.resources.map((r, i) => [r.name, cost[i] ?? 0]));
  }
  runningTypes(): string[] {
    return [...this.count.keys()].sort();
  }
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const LCM_LIMIT = 1_000_000;

/**
 * The generic model: one pool of `units`; a type with available_instances
 * a costs units / a of it. Where the least common multiple of the
 * available counts is too large to be a useful unit, every type counts on
 * its own instead.
 */
class GenericState implements CapacityState {
  readonly kind: 'generic' | 'vfio-ap' = 'generic';
  constructor(
    readonly parent: string,
    public cost: Map<string, number>,
    readonly types: ReadonlySet<string>,
    readonly aggregates: ReadonlySet<string>,
    public units: number,
    public free: number,
    public count: Map<string, number>,
    /** Independent per-type counters instead of one shared pool. */
    public perType: Map<string, number> | undefined,
  ) {}
  get devices(): number {
    let n = 0;
    for (const c of this.count.values()) n += c;
    return n;
  }
  check(type: string, aggregation = 1): Refusal | undefined {
    if (!this.types.has(type)) return noType(this.parent, type);
    if (aggregation > 1 && !this.aggregates.has(type)) return noAggregation(this.parent, type);
    if (this.headroomOf(type, aggregation) < 1) {
      return {
        code: 'budget',
        reason: `no instances left: ${this.parent} shows available_instances 0 for ${type} after the devices planned there`,
      };
    }
    return undefined;
  }
  private headroomOf(type: string, aggregation: number): number {
    if (this.perType !== undefined) return Math.floor((this.perType.get(type) ?? 0) / aggregation);
    const c = this.cost.get(type);
    if (c === undefined || c <= 0) return 0;
    return Math.floor(this.free / (c * aggregation));
  }
  add(type: string, aggregation = 1): void {
    if (this.perType !== undefined)
      this.perType.set(type, (this.perType.get(type) ?? 0) - aggregation);
    else this.free -= (this.cost.get(type) ?? 0) * aggregation;
    this.count.set(type, (this.count.get(type) ?? 0) + 1);
  }
  remove(type: string, aggregation = 1): void {
    if (this.perType !== undefined) {
      this.perType.set(type, (this.perType.get(type) ?? 0) + aggregation);
    } else {
      let c = this.cost.get(type);
      if (c === undefined) {
        // The pool was full when read, so the type's cost is unknown: count
        // devices one instance each, as the mdev core does for its parents.
        if (this.units === 0) {
          this.units = 1;
          for (const t of this.types) this.cost.set(t, 1);
        }
        c = this.cost.get(type) ?? 1;
      }
      this.free = Math.min(this.units, this.free + c * aggregation);
    }
    const n = (this.count.get(type) ?? 1) - 1;
    if (n <= 0) this.count.delete(type);
    else this.count.set(type, n);
  }
  headroom(type: string): number {
    return this.types.has(type) ? this.headroomOf(type, 1) : 0;
  }
  clone(): GenericState {
    const s = new GenericState(
      this.parent,
      new Map(this.cost),
      this.types,
      this.aggregates,
      this.units,
      this.free,
      new Map(this.count),
      this.perType === undefined ? undefined : new Map(this.perType),
    );
    (s as { kind: 'generic' | 'vfio-ap' }).kind = this.kind;
    return s;
  }
  counters(): Counter[] {
    if (this.perType !== undefined) {
      return [...this.perType].map(([t, free]) => ({
        name: `instances-${t}`,
        capacity: free + (this.count.get(t) ?? 0),
        used: this.count.get(t) ?? 0,
      }));
    }
    let used = 0;
    for (const [t, n] of this.count) used += n * (this.cost.get(t) ?? 0);
    return [{ name: 'instances', capacity: this.free + used, used }];
  }
  consumption(type: string): Record<string, number> {
    if (this.perType !== undefined) return { [`instances-${type}`]: 1 };
    return { instances: this.cost.get(type) ?? 0 };
  }
  runningTypes(): string[] {
    return [...this.count.keys()].sort();
  }
}

/** The matrix parent: instances as the generic model counts them, plus the AP queues. */
class MatrixState extends GenericState {
  override readonly kind = 'vfio-ap';
  constructor(
    base: GenericState,
    readonly ap: ApView,
    /** Owner (matrix device UUID) of each queue, by apqnKey. */
    public owners: Map<number, string>,
  ) {
    super(
      base.parent,
      base.cost,
      base.types,
      base.aggregates,
      base.units,
      base.free,
      base.count,
      base.perType,
    );
  }
  override clone(): MatrixState {
    return new MatrixState(super.clone(), this.ap, new Map(this.owners));
  }
  checkMatrix(shape: MatrixShape, replacing?: string): Refusal[] {
    const out: Refusal[] = [];
    for (const a of shape.adapters)
      if (a > this.ap.maxAdapterId)
        out.push({
          code: 'id-range',
          reason: `adapter ${a} is above the maximum ${this.ap.maxAdapterId}`,
        });
    for (const d of [...shape.domains, ...shape.controlDomains])
      if (d > this.ap.maxDomainId)
        out.push({
          code: 'id-range',
          reason: `domain ${d} is above the maximum ${this.ap.maxDomainId}`,
        });
    if (out.length > 0) return out;
    for (const a of shape.adapters) {
      for (const d of shape.domains) {
        const q = apqnName(a, d);
        if (hostOwns(this.ap, a, d)) {
          out.push({
            code: 'queue-host',
            reason: `queue ${q} belongs to the host (mdevkit ap reserve --adapters ${a} or --domains ${d} gives it to guests)`,
          });
          continue;
        }
        const owner = this.owners.get(apqnKey(a, d));
        if (owner !== undefined && owner !== replacing) {
          out.push({
            code: 'queue-in-use',
            reason: `queue ${q} is held by matrix device ${owner}`,
          });
        }
      }
    }
    return out;
  }
  addMatrix(uuid: string, shape: MatrixShape): void {
    for (const [k, o] of this.owners) if (o === uuid) this.owners.delete(k);
    for (const a of shape.adapters)
      for (const d of shape.domains) this.owners.set(apqnKey(a, d), uuid);
  }
  removeMatrix(uuid: string): void {
    for (const [k, o] of this.owners) if (o === uuid) this.owners.delete(k);
  }
}

function gridModel(p: InventoryParent, devs: readonly InventoryDevice[]): GridState | undefined {
  const fb = new Map<string, number>();
  let total = 0;
  for (const t of p.types) {
    const f = num(FB_GRID, t.description);
    const max = num(MAX_INSTANCE, t.description);
    if (f === undefined || max === undefined || f <= 0) return undefined;
    fb.set(t.id, f);
    total = Math.max(total, f * max);
  }
  const running = countByType(devs);
  let used = 0;
  for (const d of devs) used += fb.get(d.type) ?? 0;
  let free = total - used;
  // available_instances bounds what is free: floor(free / fb) of the running type.
  const runningIds = [...running.keys()];
  if (runningIds.length === 1) {
    const t = p.types.find((x) => x.id === runningIds[0]);
    const f = fb.get(runningIds[0]!);
    if (t !== undefined && f !== undefined) {
      free = Math.min(Math.max(free, t.available * f), t.available * f + f - 1);
    }
  }
  return new GridState(p.name, fb, total, Math.max(0, free), running);
}

function budgetModel(
  kind: 'gvt' | 'queue-pool',
  p: InventoryParent,
  devs: readonly InventoryDevice[],
  resources: readonly BudgetResource[],
  costOf: (t: InventoryType) => number[] | undefined,
): BudgetState | undefined {
  const cost = new Map<string, number[]>();
  for (const t of p.types) {
    const c = costOf(t);
    if (c === undefined) return undefined;
    cost.set(t.id, c);
  }
  const free = resources.map((_, i) => {
    let f = 0;
    for (const t of p.types) f = Math.max(f, t.available * cost.get(t.id)![i]!);
    return f;
  });
  const used = resources.map(() => 0);
  for (const d of devs) {
    const c = cost.get(d.type);
    if (c !== undefined) for (let i = 0; i < c.length; i++) used[i]! += c[i]! * d.aggregation;
  }
  const total = free.map((f, i) => f + used[i]!);
  const aggregates = new Set(p.types.filter((t) => t.aggregation !== undefined).map((t) => t.id));
  const exhausted = p.types.every((t) => t.available === 0);
  return new BudgetState(
    kind,
    p.name,
    resources,
    cost,
    aggregates,
    total,
    free,
    countByType(devs),
    exhausted,
    resources.map((_, i) =>
      p.types.every((t) => {
        const c = cost.get(t.id)![i]!;
        return c > 0 && Math.floor(free[i]! / c) === t.available;
      }),
    ),
  );
}

const GVT_RESOURCES: readonly BudgetResource[] = [
  { name: 'aperture', spent: 'the aperture budget is spent', unit: 'M' },
  { name: 'high-gm', spent: 'the high graphics memory budget is spent', unit: 'M' },
  { name: 'fences', spent: 'the fence registers are spent', unit: '' },
];

const QUEUE_RESOURCES: readonly BudgetResource[] = [
  { name: 'queues', spent: 'the queue pool is spent', unit: ' queues' },
];

function genericModel(p: InventoryParent, devs: readonly InventoryDevice[]): GenericState {
  const types = new Set(p.types.map((t) => t.id));
  const aggregates = new Set(p.types.filter((t) => t.aggregation !== undefined).map((t) => t.id));
  const positive = p.types.filter((t) => t.available > 0);
  let units = 0;
  for (const t of positive) {
    units = units === 0 ? t.available : (units / gcd(units, t.available)) * t.available;
    if (units > LCM_LIMIT) break;
  }
  const count = countByType(devs);
  if (units > LCM_LIMIT) {
    const perType = new Map(p.types.map((t) => [t.id, t.available]));
    return new GenericState(p.name, new Map(), types, aggregates, 0, 0, count, perType);
  }
  const cost = new Map(positive.map((t) => [t.id, units / t.available]));
  return new GenericState(p.name, cost, types, aggregates, units, units, count, undefined);
}

/** An NVIDIA SR-IOV GPU: VFs, framebuffer slots, one size at a time unless mixed. */
class VfGpuState implements CapacityState {
  readonly kind = 'nvidia-vf';
  constructor(
    readonly parent: string,
    readonly facts: VfGpuFacts,
    /** Type key ("nvidia-1153") -> framebuffer GB. */
    readonly sizeOf: ReadonlyMap<string, number>,
    /** Owner key per 1 GB slot, or '' (placements unknown: counted by size). */
    public slots: string[],
    public freeVfs: number,
    public count: Map<string, number>,
    private next = 0,
    /** Whether the plan has added or removed a vGPU here (the driver's list is then stale). */
    private changed = false,
  ) {}
  get devices(): number {
    let n = 0;
    for (const c of this.count.values()) n += c;
    return n;
  }
  get #total(): number {
    return this.slots.length;
  }
  #runningSize(): number | undefined {
    const sizes = new Set([...this.count.keys()].map((t) => this.sizeOf.get(t)));
    return sizes.size === 1 ? [...sizes][0] : undefined;
  }
  #freePlacement(size: number): number | undefined {
    for (let at = 0; at + size <= this.#total; at += size) {
      let free = true;
      for (let i = at; i < at + size && free; i++) free = this.slots[i] === '';
      if (free) return at;
    }
    return undefined;
  }
  check(type: string, aggregation = 1): Refusal | undefined {
    const size = this.sizeOf.get(type);
    if (size === undefined) return noType(this.parent, type);
    if (aggregation !== 1) return noAggregation(this.parent, type);
    if (this.facts.enabledVfs === 0) {
      return {
        code: 'vfs-disabled',
        reason: `VFs are not enabled on ${this.parent}: run sriov-manage -e`,
      };
    }
    const label = shortName(type, this.facts);
    if (this.freeVfs < 1) {
      return {
        code: 'budget',
        reason: `${label} does not fit: every VF of ${this.parent} holds a vGPU`,
      };
    }
    const running = this.#runningSize();
    if (this.facts.mode !== 'mixed-size' && running !== undefined && running !== size) {
      return {
        code: 'exclusive-type',
        reason: `${label} does not fit: this GPU runs ${running} GB types`,
      };
    }
    if (this.#freePlacement(size) === undefined) {
      const used = this.slots.filter((o) => o !== '').length;
      return {
        code: 'budget',
        reason: `${label} does not fit: ${this.parent} has ${this.#total - used} GB of ${this.#total} GB free and it needs ${size} GB`,
      };
    }
    // What the driver lists as creatable on a free VF wins while the plan
    // has not changed this GPU (placements the model cannot see).
    const listed = this.facts.creatableNow;
    if (!this.changed && listed !== undefined && !listed.includes(typeIdOf(type))) {
      return {
        code: 'budget',
        reason: `${label} does not fit: ${this.parent}'s VFs do not list it as creatable now`,
      };
    }
    return undefined;
  }
  add(type: string): void {
    const size = this.sizeOf.get(type) ?? 0;
    const at = this.#freePlacement(size);
    if (at !== undefined)
      for (let i = at; i < at + size; i++) this.slots[i] = `${type}#${this.next}`;
    this.next++;
    this.changed = true;
    this.freeVfs--;
    this.count.set(type, (this.count.get(type) ?? 0) + 1);
  }
  remove(type: string): void {
    // The last placement of this type goes (which one is the driver's business).
    let owner: string | undefined;
    for (let i = this.slots.length - 1; i >= 0 && owner === undefined; i--) {
      if (this.slots[i]!.startsWith(`${type}#`)) owner = this.slots[i];
    }
    if (owner !== undefined) this.slots = this.slots.map((o) => (o === owner ? '' : o));
    this.changed = true;
    this.freeVfs++;
    const n = (this.count.get(type) ?? 1) - 1;
    if (n <= 0) this.count.delete(type);
    else this.count.set(type, n);
  }
  headroom(type: string): number {
    const size = this.sizeOf.get(type);
    if (size === undefined || this.check(type) !== undefined) return 0;
    let n = 0;
    for (let at = 0; at + size <= this.#total; at += size) {
      let free = true;
      for (let i = at; i < at + size && free; i++) free = this.slots[i] === '';
      if (free) n++;
    }
    return Math.min(n, this.freeVfs);
  }
  clone(): VfGpuState {
    return new VfGpuState(
      this.parent,
      this.facts,
      this.sizeOf,
      [...this.slots],
      this.freeVfs,
      new Map(this.count),
      this.next,
      this.changed,
    );
  }
  counters(): Counter[] {
    const used = this.slots.filter((o) => o !== '').length;
    return [
      { name: 'framebuffer', capacity: this.#total * 1024, used: used * 1024 },
      { name: 'vfs', capacity: this.facts.enabledVfs, used: this.facts.enabledVfs - this.freeVfs },
    ];
  }
  consumption(type: string): Record<string, number> {
    return { framebuffer: (this.sizeOf.get(type) ?? 0) * 1024, vfs: 1 };
  }
  runningTypes(): string[] {
    return [...this.count.keys()].sort();
  }
}

/** 1155 for "nvidia-1155". */
function typeIdOf(type: string): number {
  return Number(type.slice('nvidia-'.length));
}

/** "L40S-24Q" for "nvidia-1155", as the GPU names it. */
function shortName(type: string, facts: VfGpuFacts): string {
  return facts.names.get(typeIdOf(type)) ?? type;
}

function vfModel(p: InventoryParent, facts: VfGpuFacts): VfGpuState {
  const sizeOf = new Map<string, number>();
  for (const [id, gb] of facts.sizes) sizeOf.set(`nvidia-${id}`, gb);
  const total = facts.framebufferGb ?? 0;
  const slots = new Array<string>(total).fill('');
  const count = new Map<string, number>();
  let k = 0;
  // The vGPUs the VFs hold now, defined or not: where placement_id says,
  // else packed from the start (with one size, counting is exact).
  const held = [...facts.held].sort((a, b) => (a.placement ?? 1e9) - (b.placement ?? 1e9));
  for (const h of held) {
    const type = `nvidia-${h.typeId}`;
    const size = facts.sizes.get(h.typeId) ?? 0;
    let at = h.placement;
    if (at === undefined) {
      for (let a = 0; a + size <= total && at === undefined; a += size) {
        let free = true;
        for (let i = a; i < a + size && free; i++) free = slots[i] === '';
        if (free) at = a;
      }
    }
    if (at !== undefined)
      for (let i = at; i < at + size && i < total; i++) slots[i] = `${type}#h${k}`;
    k++;
    count.set(type, (count.get(type) ?? 0) + 1);
  }
  return new VfGpuState(p.name, facts, sizeOf, slots, facts.freeVfs, count);
}

/** Which model a parent gets, from its types as sysfs shows them. */
export function capacityFor(
  p: InventoryParent,
  devices: readonly InventoryDevice[],
  ap?: ApView,
): CapacityState {
  if (p.kind === 'vf-gpu' && p.vf !== undefined) return vfModel(p, p.vf);
  const active = devices.filter((d) => d.active && d.parent === p.name);
  if (p.types.length > 0) {
    const grid = gridModel(p, active);
    if (grid !== undefined) return grid;
    const gvt = budgetModel('gvt', p, active, GVT_RESOURCES, (t) => {
      const low = num(GVT_LOW, t.description);
      const high = num(GVT_HIGH, t.description);
      const fence = num(GVT_FENCE, t.description);
      return low === undefined || high === undefined || fence === undefined
        ? undefined
        : [low, high, fence];
    });
    if (gvt !== undefined) return gvt;
    const pool = budgetModel('queue-pool', p, active, QUEUE_RESOURCES, (t) => {
      const q = num(WORK_QUEUES, t.description);
      return q === undefined ? undefined : [q];
    });
    if (pool !== undefined) return pool;
  }
  const generic = genericModel(p, active);
  if (ap !== undefined && p.types.some((t) => t.deviceApi === 'vfio-ap')) {
    const owners = new Map<number, string>();
    for (const d of ap.devices)
      for (const a of d.adapters) for (const q of d.domains) owners.set(apqnKey(a, q), d.uuid);
    return new MatrixState(generic, ap, owners);
  }
  return generic;
}

/** Every parent's model, by parent name. */
export function capacityOf(inv: Inventory): Map<string, CapacityState> {
  const byParent = new Map<string, InventoryDevice[]>();
  for (const d of inv.devices) {
    let l = byParent.get(d.parent);
    if (l === undefined) byParent.set(d.parent, (l = []));
    l.push(d);
  }
  const out = new Map<string, CapacityState>();
  for (const p of inv.parents) out.set(p.name, capacityFor(p, byParent.get(p.name) ?? [], inv.ap));
  return out;
}
