/**
 * The NVIDIA L40S (Ada Lovelace, 48 GB) as its vGPU host driver presents it
 * in SR-IOV mode ("vendor-specific VFIO", vGPU 17 and later on Linux 6.8+):
 * the PCI identity of the physical function and its virtual functions, and
 * the vGPU types with the ids and names the driver lists in
 * `creatable_vgpu_types` (as seen on hosts: 1145–1166 and 2164).
 *
 * A time-sliced type's framebuffer is the number in its name, in GB
 * (L40S-12Q = 12 GB); the GPU has 48. Series: B (virtual PC), Q (virtual
 * workstation), A (virtual applications).
 */

export type VgpuSeries = 'B' | 'Q' | 'A';

export interface VgpuTypeSpec {
  /** The driver's type id: what `current_vgpu_type` takes and shows. */
  readonly id: number;
  /** As `creatable_vgpu_types` names it: "NVIDIA L40S-12Q". */
  readonly name: string;
  readonly series: VgpuSeries;
  /** Framebuffer in GB (1024 MiB): the number in the name. */
  readonly framebufferGb: number;
}

/** Framebuffer of one L40S, in GB. */
export const L40S_FRAMEBUFFER_GB = 48;

/** VFs an L40S offers (sriov_totalvfs): one per vGPU, 32 at most. */
export const L40S_TOTAL_VFS = 32;

const SIZES = [1, 2, 3, 4, 6, 8, 12, 16, 24, 48] as const;

function table(): VgpuTypeSpec[] {
  const t: VgpuTypeSpec[] = [
    { id: 1145, name: 'NVIDIA L40S-1B', series: 'B', framebufferGb: 1 },
    { id: 1146, name: 'NVIDIA L40S-2B', series: 'B', framebufferGb: 2 },
  ];
  SIZES.forEach((gb, i) =>
    t.push({ id: 1147 + i, name: `NVIDIA L40S-${gb}Q`, series: 'Q', framebufferGb: gb }),
  );
  SIZES.forEach((gb, i) =>
    t.push({ id: 1157 + i, name: `NVIDIA L40S-${gb}A`, series: 'A', framebufferGb: gb }),
  );
  t.push({ id: 2164, name: 'NVIDIA L40S-3B', series: 'B', framebufferGb: 3 });
  return t;
}

/** The L40S's vGPU types, by ascending id (the order the driver lists them). */
export const L40S_TYPES: readonly VgpuTypeSpec[] = table();

/**
 * PCI identity of an L40S (AD102GL): a 3D controller on a Gen4 x16 link.
 * Its VFs carry the same vendor and device id as the PF, the first one at
 * function 4 (offset 4, stride 1), as on the Ada and Ampere boards seen in
 * the field.
 */
export const L40S_PCI = {
  vendor: 0x10de,
  device: 0x26b9,
  subsystemVendor: 0x10de,
  subsystemDevice: 0x1851,
  classCode: 0x030200,
  express: {
    type: 'endpoint',
    link: { maxSpeed: 4, maxWidth: 16, speed: 4, width: 16 },
  },
} as const;

export const L40S_VF_OFFSET = 4;
export const L40S_VF_STRIDE = 1;
