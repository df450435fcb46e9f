/**
 * What the DRA driver needs of the desired-state engine (src/host/desired),
 * named as the engine names it, so the driver can be read without it and
 * tested against it:
 *
 *  - the host's **inventory** (parents with their types and NUMA node,
 *    every device, the AP bus) and each parent's **capacity model**
 *    (counters, what a type consumes, whether one more device fits and why
 *    not) — the ResourceSlices are built from these;
 *  - the **ownership record**, where Prepare writes ahead ("creating")
 *    before it creates a device and marks it "owned" after, so that a
 *    device is never on the host unrecorded and Unprepare removes only
 *    what a claim made.
 *
 * `desiredEngine(env)` (./desired-engine.ts) is the implementation over
 * the engine; tests may wrap it (to count reads or fail on cue).
 *
 * The words of the capacity models (kinds, refusals, counters, matrix
 * shapes) and of the ownership record are the engine's own types, so a new
 * model kind or refusal reaches the driver without a second declaration.
 */
import type { Counter, MatrixShape, ModelKind, Refusal } from '../../host/desired/capacity.js';
import type { OwnershipState } from '../../host/desired/ownership.js';

export type { Counter, MatrixShape, ModelKind, OwnershipState, Refusal };

export interface EngineType {
  readonly id: string;
  readonly name: string | undefined;
  readonly description: string | undefined;
  readonly deviceApi: string;
  readonly available: number;
  /** Framebuffer (MiB) of one device, where the type's description says (GPUs). */
  readonly framebufferMb: number | undefined;
}

export interface EngineParent {
  readonly name: string;
  readonly driver: string | undefined;
  readonly numaNode: number | undefined;
  readonly types: readonly EngineType[];
  /**
   * Set for an NVIDIA SR-IOV GPU (src/host/vf-vgpu): its vGPUs are made by
   * writing a type to a free VF, not by mdev `create`. `mixedSizes`: the
   * GPU runs vGPUs of several framebuffer sizes at once (else one size).
   */
  readonly vf?: { readonly mixedSizes: boolean };
}

export interface EngineDevice {
  readonly uuid: string;
  readonly parent: string;
  readonly type: string;
  readonly active: boolean;
  /** Instances' worth the device holds. */
  readonly aggregation: number;
}

export interface EngineApView {
  readonly maxAdapterId: number;
  readonly maxDomainId: number;
  readonly apmask: readonly boolean[];
  readonly aqmask: readonly boolean[];
  readonly adapters: readonly { readonly id: number }[];
  readonly domains: readonly number[];
  readonly devices: readonly {
    readonly uuid: string;
    readonly adapters: readonly number[];
    readonly domains: readonly number[];
  }[];
}

/** One parent's capacity model. */
export interface EngineCapacity {
  readonly parent: string;
  readonly kind: ModelKind;
  check(type: string, aggregation?: number): Refusal | undefined;
  /** Play one more device of `type` on this state (a clone, when planning). */
  add(type: string, aggregation?: number): void;
  clone(): EngineCapacity;
  counters(): readonly Counter[];
  /** What one device of `type` takes of each counter. */
  consumption(type: string): Readonly<Record<string, number>>;
  /** Types with devices now (the one an exclusive parent runs). */
  runningTypes(): readonly string[];
  checkMatrix?(shape: MatrixShape, replacing?: string): readonly Refusal[];
}

/** The host as the engine reads it, at one moment. */
export interface HostView {
  readonly parents: readonly EngineParent[];
  readonly devices: readonly EngineDevice[];
  readonly ap: EngineApView | undefined;
  readonly capacity: ReadonlyMap<string, EngineCapacity>;
}

export interface OwnerEntry {
  readonly uuid: string;
  readonly parent: string;
  readonly type: string;
  readonly owner: string;
  readonly state: OwnershipState;
}

/** The ownership record while the driver holds it (one writer at a time). */
export interface OwnershipSession {
  get(uuid: string): OwnerEntry | undefined;
  entries(): readonly OwnerEntry[];
  /** Record entries durably (one append, one fsync). */
  set(entries: readonly OwnerEntry[]): void;
  /** Forget UUIDs durably. */
  forget(uuids: readonly string[]): void;
}

export interface DraEngine {
  /** Read the host now. */
  read(): HostView;
  /** Entries of the record, read now (no lock: a snapshot for slice building). */
  owners(): readonly OwnerEntry[];
  /** Hold the record (the host's apply lock) while `fn` runs. */
  withOwnership<T>(owner: string, fn: (record: OwnershipSession) => T | Promise<T>): Promise<T>;
}

/** The owner name of a claim's devices in the record: "dra:<driver>:<claim UID>". */
export function claimOwner(driver: string, claimUid: string): string {
  return `dra:${driver}:${claimUid}`;
}

/** Is `owner` a claim of `driver`'s? */
export function isClaimOwner(driver: string, owner: string): boolean {
  return owner.startsWith(`dra:${driver}:`);
}
