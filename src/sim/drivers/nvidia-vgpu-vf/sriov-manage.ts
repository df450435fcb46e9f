import { ErrnoError, fail } from '../../../common/errno.js';
import type { EmulatedKernel } from '../../core/kernel.js';
import { isPciAddress, pciFunctions, type PciFunction } from '../../core/pci.js';
import { vfioPciDevice } from '../../core/vfio.js';

/**
 * NVIDIA's `/usr/lib/nvidia/sriov-manage -e|-d <ssss:bb:dd.f|ALL>`: the
 * machine action that enables or disables a GPU's virtual functions. It is
 * not a sysfs write a management tool makes — nvidia.ko refuses those — but
 * a script run as root, usually from a boot unit: it takes the GPU from
 * `nvidia` (under its unbind lock), lets `pci-pf-stub` (which has a
 * sriov_configure) set `sriov_numvfs` to `sriov_totalvfs`, gives the PF
 * back to `nvidia` and binds every VF to it. The emulator does the same
 * through the PCI core, without the round trip through pci-pf-stub.
 *
 * Enabling is all or nothing per GPU and idempotent ("GPU at X already has
 * VFs enabled."); disabling takes every VF away, with its vGPU, and is
 * refused (EBUSY) while a VM holds one of them. `ALL` means every NVIDIA
 * display or 3D controller at function 0 with SR-IOV.
 */

export interface SriovManageResult {
  /** What the script prints, a line each. */
  readonly messages: readonly string[];
  /** The GPUs it acted on, with their VFs afterwards. */
  readonly gpus: readonly { readonly address: string; readonly numVfs: number }[];
}

const NVIDIA = 0x10de;

/** An NVIDIA GPU (display or 3D controller) at function 0 with SR-IOV. */
function isSriovGpu(fn: PciFunction): boolean {
  return (
    fn.spec.vendor === NVIDIA &&
    fn.physfn === undefined &&
    fn.sriov !== undefined &&
    fn.spec.classCode >> 16 === 0x03 &&
    fn.address.endsWith('.0')
  );
}

export function sriovGpus(kernel: EmulatedKernel): PciFunction[] {
  return [...pciFunctions(kernel).values()]
    .filter(isSriovGpu)
    .sort((a, b) => (a.address < b.address ? -1 : 1));
}

function targets(kernel: EmulatedKernel, target: string): PciFunction[] {
  if (target.toLowerCase() === 'all') return sriovGpus(kernel);
  // The script formats what it is given with lspci -D: "41:00.0" is domain 0000.
  const address = /^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i.test(target)
    ? `0000:${target.toLowerCase()}`
    : target.toLowerCase();
  if (!isPciAddress(address)) {
    fail('EINVAL', `sriov-manage: '${target}' is not a PCI address (ssss:bb:dd.f) or ALL`);
  }
  const fn = pciFunctions(kernel).get(address);
  if (fn === undefined || fn.spec.vendor !== NVIDIA) {
    fail('ENODEV', `sriov-manage: no NVIDIA GPU at ${address}`);
  }
  if (!isSriovGpu(fn)) fail('ENODEV', `sriov-manage: ${address} is not a GPU with SR-IOV`);
  return [fn];
}

export function sriovManage(
  kernel: EmulatedKernel,
  enable: boolean,
  target: string,
): SriovManageResult {
  const gpus = targets(kernel, target);
  const messages: string[] = [];
  if (!enable) {
    // Refuse before anything changes: a VM holding a VF keeps the GPU as it is.
    for (const gpu of gpus) {
      for (const vf of gpu.sriov!.vfs) {
        if ((vfioPciDevice(kernel, vf.address)?.openCount ?? 0) > 0) {
          throw new ErrnoError(
            'EBUSY',
            `VF ${vf.address} of ${gpu.address} is in use by a VM`,
            undefined,
            `sriov-manage: VF ${vf.address} of ${gpu.address} is in use by a VM; stop the VM first`,
          );
        }
      }
    }
  }
  for (const gpu of gpus) {
    const sriov = gpu.sriov!;
    if (enable) {
      if (sriov.numVfs !== 0) {
        messages.push(`GPU at ${gpu.address} already has VFs enabled.`);
        continue;
      }
      messages.push(`Enabling VFs on ${gpu.address}`);
      sriov.setNumVfs(sriov.totalVfs);
    } else {
      if (sriov.numVfs === 0) {
        messages.push(`GPU at ${gpu.address} already has VFs disabled.`);
        continue;
      }
      messages.push(`Disabling VFs on ${gpu.address}`);
      sriov.setNumVfs(0);
    }
    kernel.log('info', `sriov-manage ${enable ? '-e' : '-d'} ${gpu.address}: ${sriov.numVfs} VFs`);
  }
  return {
    messages,
    gpus: gpus.map((g) => ({ address: g.address, numVfs: g.sriov!.numVfs })),
  };
}
