import { z } from 'zod';
import { ErrnoError, fail } from '../../common/errno.js';
import type { MdevDriver, MdevTypeSpec } from '../core/driver.js';
import type { MdevDevice, MdevParent, MdevType } from '../core/mdev-core.js';
import { addPciFunction, isPciAddress, type PciFunction } from '../core/pci.js';
import { defineDriverModule } from './module.js';

/**
 * An NVIDIA Tesla M60 board with the GRID vGPU manager (seed 002). The board
 * carries two physical GPUs, each its own PCI function and mdev parent with
 * 8 GB of framebuffer. Types nvidia-11 .. nvidia-18 are the GRID M60 profiles
 * of seed 002's table; a vGPU's framebuffer is carved out of its GPU's.
 *
 * Rules the model keeps, as the GRID manager does:
 *  - one vGPU type per physical GPU at a time: once a vGPU exists on a GPU,
 *    every other type there shows available_instances 0 and refuses create
 *    (EBUSY: the GPU is busy with another profile); when its last vGPU
 *    goes, every type is available again;
 *  - a type's instances are bounded by the framebuffer (max_instance in the
 *    description = GPU framebuffer / vGPU framebuffer); a full GPU refuses
 *    create with ENOSPC;
 *  - per-device parameters are the device attribute `nvidia/vgpu_params`
 *    ("frame_rate_limiter=0"), the per-device answer to seed 000's racy
 *    type-wide `params` file: writable while the device is closed, EBUSY
 *    while a VM has it open (the parameters take effect at open).
 */

interface GridProfile extends MdevTypeSpec {
  readonly heads: number;
  /** Frame-rate limit (frl_config), frames per second. */
  readonly frl: number;
  readonly framebufferMb: number;
  readonly maxResolution: string;
}

/** Seed 002's table. */
const PROFILES: readonly GridProfile[] = [
  profile('11', 'GRID M60-0B', 2, 45, 512, '2560x1600'),
  profile('12', 'GRID M60-0Q', 2, 60, 512, '2560x1600'),
  profile('13', 'GRID M60-1B', 2, 45, 1024, '2560x1600'),
  profile('14', 'GRID M60-1Q', 2, 60, 1024, '2560x1600'),
  profile('15', 'GRID M60-2B', 2, 45, 2048, '2560x1600'),
  profile('16', 'GRID M60-2Q', 4, 60, 2048, '2560x1600'),
  profile('17', 'GRID M60-4Q', 4, 60, 4096, '3840x2160'),
  profile('18', 'GRID M60-8Q', 4, 60, 8192, '3840x2160'),
];

function profile(
  sysfsName: string,
  prettyName: string,
  heads: number,
  frl: number,
  framebufferMb: number,
  maxResolution: string,
): GridProfile {
  return { sysfsName, prettyName, heads, frl, framebufferMb, maxResolution };
}

/** Framebuffer of one M60 GPU. */
const GPU_FRAMEBUFFER_MB = 8192;

/** PCI identity of a Tesla M60 GPU (GM204GL). */
const M60_PCI = {
  vendor: 0x10de,
  device: 0x13f2,
  subsystemVendor: 0x10de,
  subsystemDevice: 0x115e,
  classCode: 0x030000,
  driver: 'nvidia',
  // Each GPU sits behind the board's PCIe switch on a Gen3 x16 link.
  express: { type: 'endpoint', link: { maxSpeed: 3, maxWidth: 16, speed: 3, width: 16 } },
} as const;

/** The GRID manager's state for one physical GPU. */
interface GpuState {
  freeMb: number;
  /** The type every vGPU on this GPU has, while there is one. */
  runningType: MdevType | undefined;
  vgpus: number;
}

/** Per-vGPU state. */
interface VgpuState {
  /** Contents of nvidia/vgpu_params; "" when none are set. */
  params: string;
}

const profileOf = (t: MdevType): GridProfile => t.spec as GridProfile;
const vgpuOf = (mdev: MdevDevice): VgpuState => mdev.driverData as VgpuState;

/**
 * vgpu_params syntax: comma-separated key=value pairs
 * ("frame_rate_limiter=0,disable_vnc=1"), or empty to clear.
 */
const PARAMS = /^[a-z][a-z0-9_]*=[A-Za-z0-9_.:-]+(,[a-z][a-z0-9_]*=[A-Za-z0-9_.:-]+)*$/;

const options = z.strictObject({
  /** PCI addresses of the board's GPUs (one M60 board = two). */
  gpus: z
    .array(z.string().refine(isPciAddress, 'a PCI address such as 0000:85:00.0'))
    .min(1)
    .max(16)
    .refine((a) => new Set(a).size === a.length, 'addresses must differ')
    .default(['0000:85:00.0', '0000:86:00.0']),
});

export const nvidiaM60Module = defineDriverModule({
  name: 'nvidia-m60',
  summary: 'NVIDIA Tesla M60 with GRID vGPU (nvidia-11..18): one type per GPU, 8 GB each',
  options,
  load({ kernel, core }, opts) {
    const gpus = new Map<MdevParent, GpuState>();
    const gpuOf = (p: MdevParent): GpuState =>
      gpus.get(p) ?? fail('ENODEV', `nvidia: ${p.name} is not a GPU of this board`);

    const driver: MdevDriver = {
      name: 'nvidia',
      deviceApi: 'vfio-pci',
      getAvailable(type) {
        const gpu = gpuOf(type.parent);
        if (gpu.runningType !== undefined && gpu.runningType !== type) return 0;
        return Math.floor(gpu.freeMb / profileOf(type).framebufferMb);
      },
      showDescription(type) {
        const p = profileOf(type);
        const maxInstance = Math.floor(GPU_FRAMEBUFFER_MB / p.framebufferMb);
        return (
          `num_heads=${p.heads}, frl_config=${p.frl}, framebuffer=${p.framebufferMb}M, ` +
          `max_resolution=${p.maxResolution}, max_instance=${maxInstance}\n`
        );
      },
      probe(mdev) {
        const gpu = gpuOf(mdev.parent);
        const p = profileOf(mdev.type);
        if (gpu.runningType !== undefined && gpu.runningType !== mdev.type) {
          throw new ErrnoError(
            'EBUSY',
            undefined,
            undefined,
            `nvidia: ${mdev.parent.name} runs ${gpu.runningType.prettyName} vGPUs; ` +
              `a physical GPU runs one vGPU type at a time`,
          );
        }
        if (gpu.freeMb < p.framebufferMb) {
          throw new ErrnoError(
            'ENOSPC',
            undefined,
            undefined,
            `nvidia: ${mdev.parent.name} has ${gpu.freeMb}M of framebuffer left, ` +
              `${p.prettyName} needs ${p.framebufferMb}M`,
          );
        }
        gpu.freeMb -= p.framebufferMb;
        gpu.runningType = mdev.type;
        gpu.vgpus++;
        mdev.driverData = { params: '' } satisfies VgpuState;
      },
      remove(mdev) {
        // Pairs with probe: framebuffer back; the last vGPU frees the GPU
        // for any type.
        const gpu = gpuOf(mdev.parent);
        gpu.freeMb += profileOf(mdev.type).framebufferMb;
        if (--gpu.vgpus === 0) gpu.runningType = undefined;
      },
      deviceGroups: (mdev) => [
        {
          name: 'nvidia',
          attrs: [
            {
              name: 'vgpu_params',
              mode: 0o644,
              show: () => `${vgpuOf(mdev).params}\n`,
              store: (buf) => storeParams(mdev, buf),
            },
          ],
        },
      ],
    };

    const functions: PciFunction[] = [];
    const parents: MdevParent[] = [];
    try {
      for (const address of opts.gpus) {
        const fn = addPciFunction(kernel, { address, ...M60_PCI });
        functions.push(fn);
        const parent = core.registerParent(fn.node, driver, PROFILES);
        gpus.set(parent, { freeMb: GPU_FRAMEBUFFER_MB, runningType: undefined, vgpus: 0 });
        parents.push(parent);
      }
    } catch (err) {
      unload();
      throw err;
    }

    function unload(): void {
      for (const p of parents.reverse()) core.unregisterParent(p);
      for (const fn of functions.reverse()) fn.remove();
      parents.length = 0;
      functions.length = 0;
      gpus.clear();
    }

    return { parents: parents.map((p) => p.name), unload };
  },
});

function storeParams(mdev: MdevDevice, buf: string): void {
  const text = (buf.endsWith('\n') ? buf.slice(0, -1) : buf).trim();
  if (text !== '' && !PARAMS.test(text)) {
    fail('EINVAL', `nvidia: vgpu_params takes key=value[,key=value...], got '${text}'`);
  }
  if (mdev.isOpen) {
    fail('EBUSY', `nvidia: ${mdev.uuid} is open; vgpu_params apply at open and cannot change now`);
  }
  vgpuOf(mdev).params = text;
}
