import type { VgpuTypeSpec } from './l40s.js';

/**
 * How one physical GPU's framebuffer is shared by its time-sliced vGPUs.
 *
 * The framebuffer is a row of 1 GB slots. A vGPU of S GB occupies S slots
 * starting at a multiple of S — its placement, which `placement_id` shows
 * ("Placement Size: 2, Placement IDs: 0 2 4 ..." in nvidia-smi's terms).
 *
 *  - homogeneous (the default "equal size" mode): every vGPU on the GPU has
 *    the same framebuffer size; series of that size mix (L40S-12Q beside
 *    L40S-12A). With one size, aligned placements never overlap, so the
 *    rule is a count: 48 / S vGPUs.
 *  - heterogeneous ("mixed size" mode, `nvidia-smi vgpu -shm 1`): sizes
 *    mix, and a vGPU needs a free aligned run of its size, so the order of
 *    creation matters (fragmentation), as on the hardware.
 *
 * Pure bookkeeping: the driver model decides what to do when a type does
 * not fit; `why` says it in words for the kernel log.
 */
export type FramebufferMode = 'homogeneous' | 'heterogeneous';

interface Placed {
  readonly type: VgpuTypeSpec;
  placement: number;
}

export class Framebuffer {
  /** Owner (a VF index) of each slot, or -1. */
  readonly #slots: number[];
  readonly #placed = new Map<number, Placed>();

  constructor(
    readonly sizeGb: number,
    readonly mode: FramebufferMode,
  ) {
    this.#slots = new Array<number>(sizeGb).fill(-1);
  }

  /** The framebuffer size every vGPU shares in homogeneous mode, while there is one. */
  get runningSize(): number | undefined {
    for (const p of this.#placed.values()) return p.type.framebufferGb;
    return undefined;
  }

  get usedGb(): number {
    let n = 0;
    for (const p of this.#placed.values()) n += p.type.framebufferGb;
    return n;
  }

  get vgpus(): number {
    return this.#placed.size;
  }

  placementOf(owner: number): number | undefined {
    return this.#placed.get(owner)?.placement;
  }

  /** Why `type` cannot be placed now; undefined when it can. */
  why(type: VgpuTypeSpec): string | undefined {
    const size = type.framebufferGb;
    if (size > this.sizeGb || this.sizeGb % size !== 0) {
      return `${type.name} does not divide a ${this.sizeGb} GB framebuffer`;
    }
    const running = this.runningSize;
    if (this.mode === 'homogeneous' && running !== undefined && running !== size) {
      return `the GPU runs ${running} GB vGPUs and ${type.name} has ${size} GB (one framebuffer size per GPU)`;
    }
    if (this.#freePlacement(size, -1) === undefined) {
      return `no free ${size} GB placement is left (${this.usedGb} of ${this.sizeGb} GB in use)`;
    }
    return undefined;
  }

  /** Place `owner`'s vGPU of `type` at the lowest free aligned placement; returns it. */
  place(owner: number, type: VgpuTypeSpec): number {
    const why = this.why(type);
    if (why !== undefined) throw new Error(`framebuffer: ${why}`);
    const at = this.#freePlacement(type.framebufferGb, -1)!;
    this.#fill(at, type.framebufferGb, owner);
    this.#placed.set(owner, { type, placement: at });
    return at;
  }

  /**
   * Move `owner`'s vGPU to placement `to` (a multiple of its size whose
   * slots are free or its own). Returns why not, or undefined when moved.
   */
  move(owner: number, to: number): 'invalid' | 'occupied' | undefined {
    const p = this.#placed.get(owner);
    if (p === undefined) return 'invalid';
    const size = p.type.framebufferGb;
    if (!Number.isInteger(to) || to < 0 || to % size !== 0 || to + size > this.sizeGb) {
      return 'invalid';
    }
    for (let i = to; i < to + size; i++) {
      const o = this.#slots[i]!;
      if (o !== -1 && o !== owner) return 'occupied';
    }
    this.#fill(p.placement, size, -1);
    this.#fill(to, size, owner);
    p.placement = to;
    return undefined;
  }

  /** Give `owner`'s slots back. Pairs with place. */
  free(owner: number): void {
    const p = this.#placed.get(owner);
    if (p === undefined) return;
    this.#fill(p.placement, p.type.framebufferGb, -1);
    this.#placed.delete(owner);
  }

  #fill(at: number, size: number, owner: number): void {
    for (let i = at; i < at + size; i++) this.#slots[i] = owner;
  }

  #freePlacement(size: number, owner: number): number | undefined {
    for (let at = 0; at + size <= this.sizeGb; at += size) {
      let free = true;
      for (let i = at; i < at + size && free; i++) {
        const o = this.#slots[i]!;
        free = o === -1 || o === owner;
      }
      if (free) return at;
    }
    return undefined;
  }
}
