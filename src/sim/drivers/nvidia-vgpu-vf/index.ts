import { z } from 'zod';
import { ErrnoError, fail } from '../../../common/errno.js';
import type { EmulatedKernel } from '../../core/kernel.js';
import { addPciFunction, isPciAddress, type PciFunction } from '../../core/pci.js';
import { registerVfioPci, unregisterVfioPci, vfioPciDevice } from '../../core/vfio.js';
import type { SysfsDir } from '../../sysfs/tree.js';
import { defineDriverModule } from '../module.js';
import { Framebuffer, type FramebufferMode } from './framebuffer.js';
import {
  L40S_FRAMEBUFFER_GB,
  L40S_PCI,
  L40S_TOTAL_VFS,
  L40S_TYPES,
  L40S_VF_OFFSET,
  L40S_VF_STRIDE,
  type VgpuTypeSpec,
} from './l40s.js';

/**
 * NVIDIA's vGPU host driver on an Ada GPU (L40S) in SR-IOV mode — the
 * "vendor-specific VFIO framework" of vGPU 17 and later on Linux 6.8+,
 * which does not use the mdev bus at all:
 *
 *  - the physical function (PF) is bound to `nvidia` and has the SR-IOV
 *    files, but no `nvidia/` directory and no mdev types; nvidia.ko has no
 *    `sriov_configure`, so a raw write to `sriov_numvfs` fails (ENOENT).
 *    VFs are enabled by NVIDIA's `sriov-manage -e`, a machine action
 *    (./sriov-manage.ts, the lab's control interface);
 *  - each VF is bound to `nvidia` too, registered with VFIO as a PCI device
 *    of its own ("nvidia-vfio-pci"), and has `nvidia/` with
 *    `creatable_vgpu_types`, `current_vgpu_type`, `vgpu_params`,
 *    `gpu_instance_id`, `placement_id` and `warm_update`;
 *  - a vGPU is made by writing a type id to a VF's `current_vgpu_type` and
 *    destroyed by writing 0; one vGPU per VF; the VF is then handed to QEMU
 *    as a PCI device (`vfio-pci,host=<VF>`).
 *
 * Errors of `current_vgpu_type` (see docs/ARCHITECTURE.md, "NVIDIA VF
 * vGPUs", for the sources): not a decimal number EINVAL (kstrtol, base 10;
 * ERANGE past 64 bits); the VF open by a VM EBUSY; 0 without a vGPU EPERM;
 * an id while a vGPU exists EPERM; an id that cannot be created now — not a
 * type of this GPU, another framebuffer size, no room — EIO, with the
 * reason in the kernel log: the shipping driver returns -EIO whenever the
 * resource manager refuses the create, and hosts report EIO for it.
 *
 * One GPU's framebuffer rule is ./framebuffer.ts: one size per GPU by
 * default (Q and A of that size mix), or mixed sizes with the
 * `heterogeneous` option (the profile's equivalent of running
 * `nvidia-smi vgpu -shm 1` after `sriov-manage -e`).
 */

const options = z.strictObject({
  /** PCI addresses of the GPUs (physical functions); each is one L40S. */
  gpus: z
    .array(
      z
        .string()
        .refine(isPciAddress, 'a PCI address such as 0000:41:00.0')
        .refine((a) => a.endsWith('.0'), 'a GPU is function 0 of its slot'),
    )
    .min(1)
    .max(16)
    .refine((a) => new Set(a).size === a.length, 'addresses must differ')
    .default(['0000:41:00.0']),
  /** sriov_totalvfs of each GPU (the L40S has 32). */
  vfs: z.number().int().min(1).max(L40S_TOTAL_VFS).default(L40S_TOTAL_VFS),
  /** Mixed framebuffer sizes on one GPU (nvidia-smi vgpu -shm 1). */
  heterogeneous: z.boolean().default(false),
  numaNode: z.number().int().min(-1).max(63).default(-1),
});

/** One VF's vGPU state (nvidia's per-VF vgpu_dev). */
interface VfState {
  readonly index: number;
  readonly fn: PciFunction;
  /** The vGPU's type; undefined while current_vgpu_type is 0. */
  type: VgpuTypeSpec | undefined;
  params: string;
  warmUpdate: boolean;
}

/** One physical GPU's vGPU state. */
interface Gpu {
  readonly framebuffer: Framebuffer;
  readonly vfs: Map<number, VfState>;
}

const TYPE_BY_ID = new Map(L40S_TYPES.map((t) => [t.id, t]));

/** vgpu_params syntax: comma-separated key=value pairs, or empty to clear. */
const PARAMS = /^[a-z][a-z0-9_]*=[A-Za-z0-9_.:-]+(,[a-z][a-z0-9_]*=[A-Za-z0-9_.:-]+)*$/;

const INT64_MAX = (1n << 63n) - 1n;

export const nvidiaL40sModule = defineDriverModule({
  name: 'nvidia-l40s',
  summary:
    'NVIDIA L40S with vGPU in SR-IOV mode: VFs with nvidia/current_vgpu_type, no mdev bus; 48 GB, one framebuffer size per GPU',
  options,
  load({ kernel }, opts) {
    const mode: FramebufferMode = opts.heterogeneous ? 'heterogeneous' : 'homogeneous';
    const pfs: PciFunction[] = [];

    function addGpu(address: string): void {
      const gpu: Gpu = { framebuffer: new Framebuffer(L40S_FRAMEBUFFER_GB, mode), vfs: new Map() };
      const pf = addPciFunction(kernel, {
        address,
        ...L40S_PCI,
        driver: 'nvidia',
        numaNode: opts.numaNode,
        sriov: {
          totalVfs: opts.vfs,
          offset: L40S_VF_OFFSET,
          stride: L40S_VF_STRIDE,
          vfDevice: L40S_PCI.device,
          // No `configure`: nvidia.ko has no sriov_configure.
          probeVf: (vf) => probeVf(kernel, gpu, vf),
          removeVf: (vf) => removeVf(kernel, gpu, vf),
        },
      });
      pfs.push(pf);
    }

    try {
      for (const address of opts.gpus) addGpu(address);
    } catch (err) {
      unload();
      throw err;
    }

    function unload(): void {
      // Module exit: VFs go with their PF (vGPUs destroyed, VMs let go).
      for (const pf of pfs.reverse()) pf.remove();
      pfs.length = 0;
    }

    return { parents: [], unload };
  },
});

/**
 * The `nvidia` driver binds a new VF: it registers the VF with VFIO and
 * adds its `nvidia/` attributes. Pairs with removeVf.
 */
function probeVf(kernel: EmulatedKernel, gpu: Gpu, fn: PciFunction): void {
  const vf: VfState = {
    index: fn.vfIndex!,
    fn,
    type: undefined,
    params: '',
    warmUpdate: false,
  };
  gpu.vfs.set(vf.index, vf);
  registerVfioPci(kernel, fn, {
    open() {
      if (vf.type === undefined) {
        kernel.log('err', `nvidia ${fn.address}: current_vgpu_type of VF not configured`);
        fail('ENODEV', `nvidia: ${fn.address} has no vGPU (current_vgpu_type is 0)`);
      }
      kernel.log('info', `nvidia ${fn.address}: ${vf.type.name} opened by a VM`);
    },
    release() {
      kernel.log('info', `nvidia ${fn.address}: released by its VM`);
    },
  });
  renderNvidiaGroup(kernel, gpu, vf, fn.node.dir.dir('nvidia'));
  // driver_bound: "bind" goes out once probe has made everything, as the kernel's does.
  fn.bind('nvidia');
}

function removeVf(kernel: EmulatedKernel, gpu: Gpu, fn: PciFunction): void {
  const vf = gpu.vfs.get(fn.vfIndex!);
  unregisterVfioPci(kernel, fn);
  if (vf !== undefined) {
    destroyVgpu(gpu, vf);
    gpu.vfs.delete(vf.index);
  }
  fn.node.dir.remove('nvidia');
  fn.unbind();
}

function destroyVgpu(gpu: Gpu, vf: VfState): void {
  gpu.framebuffer.free(vf.index);
  vf.type = undefined;
  vf.params = '';
}

const isOpen = (kernel: EmulatedKernel, vf: VfState): boolean =>
  (vfioPciDevice(kernel, vf.fn.address)?.openCount ?? 0) > 0;

/** The types a write to this VF's current_vgpu_type would create now, by id. */
function creatable(gpu: Gpu, vf: VfState): VgpuTypeSpec[] {
  if (vf.type !== undefined) return [];
  return L40S_TYPES.filter((t) => gpu.framebuffer.why(t) === undefined);
}

function renderNvidiaGroup(kernel: EmulatedKernel, gpu: Gpu, vf: VfState, d: SysfsDir): void {
  const where = vf.fn.address;
  const noVgpu = (file: string): never =>
    fail('ENXIO', `nvidia: ${where} has no vGPU, so ${file} has nothing to show`);
  const busy = (file: string): void => {
    if (isOpen(kernel, vf)) {
      fail('EBUSY', `nvidia: ${where} is open by a VM; ${file} cannot change now`);
    }
  };

  d.attr('creatable_vgpu_types', 0o444, {
    // "ID    : vGPU Name", then "%-5d : %s" per type creatable now.
    show: () =>
      'ID    : vGPU Name\n' +
      creatable(gpu, vf)
        .map((t) => `${String(t.id).padEnd(5)} : ${t.name}\n`)
        .join(''),
  });

  d.attr('current_vgpu_type', 0o644, {
    show: () => `${vf.type?.id ?? 0}\n`,
    store: (buf) => {
      const text = buf.endsWith('\n') ? buf.slice(0, -1) : buf;
      if (!/^[+-]?[0-9]+$/.test(text)) fail('EINVAL');
      const big = BigInt(text);
      if (big > INT64_MAX || big < -INT64_MAX - 1n) fail('ERANGE');
      busy('current_vgpu_type');
      const id = Number(big);
      if (id === 0) {
        if (vf.type === undefined) {
          kernel.log(
            'err',
            `nvidia ${where}: Failed to remove vGPU. No vGPU exists on current device`,
          );
          fail('EPERM', `nvidia: ${where} has no vGPU to destroy`);
        }
        kernel.log('info', `nvidia ${where}: ${vf.type.name} destroyed`);
        destroyVgpu(gpu, vf);
        return;
      }
      if (vf.type !== undefined) {
        kernel.log(
          'err',
          `nvidia ${where}: vGPU device already created with type ID: ${vf.type.id}`,
        );
        fail('EPERM', `nvidia: ${where} runs ${vf.type.name} (${vf.type.id}); write 0 first`);
      }
      const type = TYPE_BY_ID.get(id);
      const why =
        type === undefined
          ? `vGPU type ${id} is not a type of this GPU`
          : gpu.framebuffer.why(type);
      if (type === undefined || why !== undefined) {
        kernel.log('err', `NVRM: nvidia ${where}: failed to create vGPU type ${id}: ${why}`);
        throw new ErrnoError('EIO', undefined, undefined, `nvidia: ${where}: ${why}`);
      }
      const placement = gpu.framebuffer.place(vf.index, type);
      vf.type = type;
      kernel.log('info', `nvidia ${where}: ${type.name} created at placement ${placement}`);
    },
  });

  d.attr('vgpu_params', 0o644, {
    show: () => (vf.type === undefined ? noVgpu('vgpu_params') : `${vf.params}\n`),
    store: (buf) => {
      if (vf.type === undefined) noVgpu('vgpu_params');
      const text = (buf.endsWith('\n') ? buf.slice(0, -1) : buf).trim();
      if (text !== '' && !PARAMS.test(text)) {
        fail('EINVAL', `nvidia: vgpu_params takes key=value[,key=value...], got '${text}'`);
      }
      busy('vgpu_params');
      vf.params = text;
    },
  });

  // The L40S has no MIG: a time-sliced vGPU has no GPU instance to name.
  d.attr('gpu_instance_id', 0o644, {
    show: () =>
      vf.type === undefined
        ? noVgpu('gpu_instance_id')
        : fail('ENXIO', `nvidia: ${where}: a time-sliced vGPU has no GPU instance (no MIG)`),
    store: () => fail('ENXIO', `nvidia: ${where}: this GPU has no GPU instances (no MIG)`),
  });

  d.attr('placement_id', 0o644, {
    show: () =>
      vf.type === undefined
        ? noVgpu('placement_id')
        : `${gpu.framebuffer.placementOf(vf.index) ?? 0}\n`,
    store: (buf) => {
      const type = vf.type ?? noVgpu('placement_id');
      const text = buf.endsWith('\n') ? buf.slice(0, -1) : buf;
      if (!/^[0-9]+$/.test(text)) fail('EINVAL');
      busy('placement_id');
      const why = gpu.framebuffer.move(vf.index, Number(text));
      if (why === 'invalid') {
        fail('EINVAL', `nvidia: ${text} is not a placement of ${type.name}`);
      }
      if (why === 'occupied') fail('EBUSY', `nvidia: placement ${text} is taken`);
    },
  });

  d.attr('warm_update', 0o644, {
    show: () => `${vf.warmUpdate ? 1 : 0}\n`,
    store: (buf) => {
      const text = buf.endsWith('\n') ? buf.slice(0, -1) : buf;
      if (text !== '0' && text !== '1') fail('EINVAL');
      vf.warmUpdate = text === '1';
    },
  });
}
