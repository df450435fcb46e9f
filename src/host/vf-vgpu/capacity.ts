import { knownBoard, shortTypeName, typeKey, typeShape } from './catalogue.js';
import type { VfGpu } from './sysfs.js';

/**
 * A GPU's vGPU capacity, learned from sysfs alone: the framebuffer its
 * vGPUs hold (their types' sizes, placed where `placement_id` says), the
 * free VFs (one vGPU each), and the rule of its mode:
 *
 *  - equal-size (NVIDIA's default time-sliced mode): one framebuffer size
 *    per GPU while it has vGPUs; series of that size mix (12Q beside 12A);
 *  - mixed-size (`nvidia-smi vgpu -shm 1`): sizes mix, each vGPU in a free
 *    placement aligned to its size.
 *
 * The mode is not a file: it shows in what the GPU does. vGPUs of several
 * sizes, or a free VF listing types of another size than the running one,
 * mean mixed-size; one size running and only that size listed means
 * equal-size; an idle GPU is "unknown" and takes any type. `headroom` is
 * how many more vGPUs of a type fit now; the driver's answer to the write
 * is the final word.
 */

export type VfGpuMode = 'equal-size' | 'mixed-size' | 'unknown';

export interface VfTypeCapacity {
  readonly id: number;
  /** "nvidia-1153". */
  readonly key: string;
  readonly name: string | undefined;
  /** "L40S-12Q". */
  readonly shortName: string | undefined;
  readonly framebufferGb: number | undefined;
  /** Listed in a free VF's creatable_vgpu_types now (undefined: no free VF to ask). */
  readonly creatableNow: boolean | undefined;
  /** How many more fit now. */
  readonly headroom: number;
}

export interface VfGpuCapacity {
  readonly gpu: string;
  readonly board: string | undefined;
  readonly framebufferGb: number | undefined;
  readonly usedGb: number;
  /** The size every vGPU has, when they all have one. */
  readonly runningSizeGb: number | undefined;
  readonly mode: VfGpuMode;
  readonly vfs: { readonly total: number; readonly enabled: number; readonly free: number };
  readonly vgpus: number;
  readonly types: readonly VfTypeCapacity[];
}

export function gpuFramebufferGb(gpu: VfGpu): number | undefined {
  const board = knownBoard(gpu.device);
  if (board !== undefined) return board.framebufferGb;
  let max: number | undefined;
  for (const name of gpu.typeNames.values()) {
    const fb = typeShape(name)?.framebufferGb;
    if (fb !== undefined && (max === undefined || fb > max)) max = fb;
  }
  return max;
}

export function typeSizeGb(gpu: VfGpu, id: number): number | undefined {
  return typeShape(gpu.typeNames.get(id))?.framebufferGb;
}

export function vfGpuCapacity(gpu: VfGpu): VfGpuCapacity {
  const total = gpuFramebufferGb(gpu);
  const active = gpu.vfs.filter((v) => v.typeId !== 0);
  const sizes = new Set<number>();
  let usedGb = 0;
  for (const v of active) {
    const s = typeSizeGb(gpu, v.typeId);
    if (s !== undefined) {
      sizes.add(s);
      usedGb += s;
    }
  }
  const running = sizes.size === 1 ? [...sizes][0] : undefined;
  let mode: VfGpuMode = 'unknown';
  if (sizes.size > 1) mode = 'mixed-size';
  else if (running !== undefined) {
    const listed = (gpu.creatableNow ?? []).map((id) => typeSizeGb(gpu, id));
    mode = listed.some((s) => s !== undefined && s !== running) ? 'mixed-size' : 'equal-size';
  }
  const freeVfs = gpu.vfs.length - active.length;
  // Slots of 1 GB, taken where placement_id says (when it was read).
  const slots =
    total === undefined
      ? undefined
      : placements(
          gpu,
          total,
          active.map((v) => v.index),
        );
  const ids = new Set<number>([...gpu.typeNames.keys(), ...(gpu.creatableNow ?? [])]);
  const types = [...ids]
    .sort((a, b) => a - b)
    .map((id): VfTypeCapacity => {
      const name = gpu.typeNames.get(id);
      const size = typeShape(name)?.framebufferGb;
      let headroom = 0;
      if (size !== undefined && total !== undefined && freeVfs > 0) {
        if (mode === 'equal-size' && running !== undefined && size !== running) headroom = 0;
        else if (slots !== undefined) headroom = Math.min(freeVfs, alignedFree(slots, size));
        else headroom = Math.min(freeVfs, Math.floor((total - usedGb) / size));
      }
      const creatableNow =
        gpu.creatableNow === undefined ? undefined : gpu.creatableNow.includes(id);
      // What the driver lists is the truth about "now": never claim room it denies.
      if (creatableNow === false) headroom = 0;
      if (creatableNow === true && headroom === 0) headroom = 1;
      return {
        id,
        key: typeKey(id),
        name,
        shortName: name === undefined ? undefined : shortTypeName(name),
        framebufferGb: size,
        creatableNow,
        headroom,
      };
    });
  return {
    gpu: gpu.address,
    board: knownBoard(gpu.device)?.name,
    framebufferGb: total,
    usedGb,
    runningSizeGb: running,
    mode,
    vfs: { total: gpu.totalVfs, enabled: gpu.numVfs, free: freeVfs },
    vgpus: active.length,
    types,
  };
}

/**
 * The framebuffer's 1 GB slots, true where a vGPU is; undefined when a
 * vGPU's placement is unknown (not read, or not readable).
 */
function placements(
  gpu: VfGpu,
  total: number,
  activeIndexes: readonly number[],
): boolean[] | undefined {
  const slots = new Array<boolean>(total).fill(false);
  for (const index of activeIndexes) {
    const vf = gpu.vfs.find((v) => v.index === index)!;
    const size = typeSizeGb(gpu, vf.typeId);
    if (vf.placement === undefined || size === undefined) return undefined;
    for (let i = vf.placement; i < vf.placement + size && i < total; i++) slots[i] = true;
  }
  return slots;
}

function alignedFree(slots: readonly boolean[], size: number): number {
  let n = 0;
  for (let at = 0; at + size <= slots.length; at += size) {
    let free = true;
    for (let i = at; i < at + size && free; i++) free = !slots[i];
    if (free) n++;
  }
  return n;
}

/** Why a type would not fit now, in words and as a code; undefined when it fits. */
export function whyNot(
  cap: VfGpuCapacity,
  typeId: number,
): { code: 'vgpu-size-mismatch' | 'vgpu-no-room' | 'no-free-vf'; message: string } | undefined {
  const t = cap.types.find((x) => x.id === typeId);
  const label = t?.shortName ?? typeKey(typeId);
  if (cap.vfs.free === 0) {
    return {
      code: 'no-free-vf',
      message: `${label} does not fit: every VF of ${cap.gpu} holds a vGPU`,
    };
  }
  if (t === undefined || t.headroom > 0) return undefined;
  if (
    cap.mode !== 'mixed-size' &&
    cap.runningSizeGb !== undefined &&
    t.framebufferGb !== undefined &&
    t.framebufferGb !== cap.runningSizeGb
  ) {
    return {
      code: 'vgpu-size-mismatch',
      message: `${label} does not fit: this GPU runs ${cap.runningSizeGb} GB types`,
    };
  }
  return {
    code: 'vgpu-no-room',
    message: `${label} does not fit: ${cap.gpu} has ${(cap.framebufferGb ?? 0) - cap.usedGb} GB of ${cap.framebufferGb ?? '?'} GB free${t.framebufferGb === undefined ? '' : ` and it needs ${t.framebufferGb} GB`}`,
  };
}
