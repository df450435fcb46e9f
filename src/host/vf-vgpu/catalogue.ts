/**
 * What the management side knows of NVIDIA's vGPU types without NVML: the
 * names of types by id, and a type's framebuffer from its name.
 *
 * sysfs names a type only in a VF's `creatable_vgpu_types`, and only while
 * it is creatable: a VF holding L40S-12Q on a full GPU shows "1153" and
 * nothing says what 1153 is. So names come from three places, in order:
 * what the host's VFs list now, the definitions (which keep the name they
 * were made with), and this catalogue of published type ids (NVIDIA's
 * vGPU documentation; the same ids appear on hosts).
 *
 * Framebuffer: a time-sliced type's name ends in "<GB><series>"
 * ("NVIDIA L40S-12Q" = 12 GB); a MIG-backed one is "<GPU>-<slices>-<GB><series>".
 * The GPU's own framebuffer is that of its largest type (the whole-GPU
 * profile, L40S-48Q), unless the board is known.
 */

export interface KnownBoard {
  /** PCI device id of the GPU (and of its VFs). */
  readonly device: number;
  readonly name: string;
  readonly framebufferGb: number;
  /** Type ids and names, ascending. */
  readonly types: ReadonlyMap<number, string>;
}

const SIZES = [1, 2, 3, 4, 6, 8, 12, 16, 24, 48];

function l40s(): Map<number, string> {
  const m = new Map<number, string>([
    [1145, 'NVIDIA L40S-1B'],
    [1146, 'NVIDIA L40S-2B'],
  ]);
  SIZES.forEach((gb, i) => m.set(1147 + i, `NVIDIA L40S-${gb}Q`));
  SIZES.forEach((gb, i) => m.set(1157 + i, `NVIDIA L40S-${gb}A`));
  m.set(2164, 'NVIDIA L40S-3B');
  return m;
}

export const KNOWN_BOARDS: readonly KnownBoard[] = [
  { device: 0x26b9, name: 'L40S', framebufferGb: 48, types: l40s() },
];

export function knownBoard(device: number | undefined): KnownBoard | undefined {
  return KNOWN_BOARDS.find((b) => b.device === device);
}

/** What a type is: its framebuffer and series, from its name. */
export interface TypeShape {
  readonly framebufferGb: number;
  /** "Q", "A", "B", "C". */
  readonly series: string;
  /** MIG-backed types name their slices: "DC-1-24Q". */
  readonly migSlices: number | undefined;
}

const TIME_SLICED = /-(\d+)([A-Z])$/;
const MIG_BACKED = /-(\d+)-(\d+)([A-Z])$/;

export function typeShape(name: string | undefined): TypeShape | undefined {
  if (name === undefined) return undefined;
  let m = MIG_BACKED.exec(name);
  if (m !== null) {
    return { framebufferGb: Number(m[2]), series: m[3]!, migSlices: Number(m[1]) };
  }
  m = TIME_SLICED.exec(name);
  if (m !== null) return { framebufferGb: Number(m[1]), series: m[2]!, migSlices: undefined };
  return undefined;
}

/** "NVIDIA L40S-12Q" -> "L40S-12Q": how people write a type. */
export function shortTypeName(name: string): string {
  return name.startsWith('NVIDIA ') ? name.slice('NVIDIA '.length) : name;
}

/** The id people and configurations may use for a type: "nvidia-1153" (as Proxmox and mdev hosts name it). */
export function typeKey(id: number): string {
  return `nvidia-${id}`;
}
