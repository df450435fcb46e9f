import { assertAllDriversCovered, runConformance, type ConformanceCase } from './conformance.js';

/**
 * One case per driver model. A new driver adds its case here; the last test
 * fails until it does.
 */
const CASES: ConformanceCase[] = [
  { driver: 'mtty', exhaustedErrno: () => 'ENOSPC' },
  { driver: 'mdpy', exhaustedErrno: () => 'EUSERS' },
  { driver: 'mbochs', exhaustedErrno: () => 'ENOSPC' },
  // vfio-ap: matrix devices start empty; the core counts them (EUSERS). The
  // kernel allows 65536, so the case asks for a modest pool to fill.
  { driver: 'vfio-ap', options: { maxMatrixDevices: 16 }, exhaustedErrno: () => 'EUSERS' },
  // nvidia-m60: a full GPU (framebuffer gone) refuses with ENOSPC.
  { driver: 'nvidia-m60', exhaustedErrno: () => 'ENOSPC' },
  // gvt: graphics memory and fences run out: ENOSPC, as intel_vgpu_alloc_resource.
  { driver: 'gvt', exhaustedErrno: () => 'ENOSPC' },
  { driver: 'siov', exhaustedErrno: () => 'ENOSPC' },
  // vfio-ccw: one instance per subchannel, counted by the core.
  { driver: 'vfio-ccw', exhaustedErrno: () => 'EUSERS' },
  // nvidia-l40s: no mdev bus; VFs enabled by NVIDIA's sriov-manage (raw
  // sriov_numvfs writes: ENOENT, nvidia.ko has no sriov_configure); a type
  // the VF does not list fails with EIO, as the shipping driver's create does.
  {
    driver: 'nvidia-l40s',
    options: { gpus: ['0000:41:00.0', '0000:42:00.0'], vfs: 8 },
    sriovVgpu: {
      enable: (lab) => lab.sriovManage(true, 'ALL'),
      disable: (lab) => lab.sriovManage(false, 'ALL'),
      rawNumVfsErrno: 'ENOENT',
      notCreatableErrno: 'EIO',
      group: 'nvidia',
      current: 'current_vgpu_type',
      creatable: 'creatable_vgpu_types',
    },
  },
];

for (const c of CASES) runConformance(c);
assertAllDriversCovered(CASES.map((c) => c.driver));
