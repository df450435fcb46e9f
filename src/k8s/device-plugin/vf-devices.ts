import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { ErrnoError } from '../../common/errno.js';
import {
  PCI_DEVICES,
  canonicalPciAddress,
  listVfGpus,
  readVfGpu,
  typeKey,
  vfOf,
  type VfGpu,
  type VfSlot,
} from '../../host/vf-vgpu.js';
import type { SysfsPort } from '../../port/sysfs-port.js';
import {
  isIommuGroup,
  type DeviceSource,
  type MdevSourceOptions,
  type PluginDevice,
} from './devices.js';
import type { HostChanges } from './host-changes.js';

/**
 * NVIDIA's VF vGPUs as plugin devices (kind `vf`): every VF whose
 * `nvidia/current_vgpu_type` holds a type, read through the VF inventory
 * (src/host/vf-vgpu.ts). The ID is the VF's PCI address, which KubeVirt
 * takes from PCI_RESOURCE_<NAME>; the type is `nvidia-<id>` (the id the
 * driver takes, as Proxmox and mdev-era hosts name it: the default
 * resource is mdevkit.io/nvidia-1153) and its name the driver's
 * ("NVIDIA L40S-12Q"). A VF without a vGPU is not a device to give out:
 * KubeVirt would open it and the driver would refuse (ENODEV).
 */
export class VfDeviceSource implements DeviceSource {
  readonly kind = 'vf';

  constructor(
    readonly port: SysfsPort,
    readonly options: MdevSourceOptions = {},
  ) {}

  read(): PluginDevice[] {
    const out: PluginDevice[] = [];
    for (const gpu of listVfGpus(this.port, { details: false })) {
      for (const vf of gpu.vfs) if (vf.typeId !== 0) out.push(this.#device(gpu, vf));
    }
    return out;
  }

  reread(id: string): PluginDevice | undefined {
    const address = canonicalPciAddress(id);
    if (address === undefined || address !== id) return undefined;
    const where = vfOf(this.port, address);
    if (where === undefined) return undefined;
    const gpu = readVfGpu(this.port, where.gpu, {});
    const vf = gpu?.vfs.find((v) => v.address === address);
    return gpu === undefined || vf === undefined || vf.typeId === 0
      ? undefined
      : this.#device(gpu, vf);
  }

  #device(gpu: VfGpu, vf: VfSlot): PluginDevice {
    const dir = `${PCI_DEVICES}/${vf.address}`;
    let group: string | undefined;
    try {
      const g = this.port.readlink(`${dir}/iommu_group`);
      const name = g.slice(g.lastIndexOf('/') + 1);
      group = isIommuGroup(name) ? name : undefined;
    } catch (err) {
      if (!(err instanceof ErrnoError)) throw err;
    }
    let problem: string | undefined;
    if (group === undefined) problem = `VF ${vf.address} has no IOMMU group`;
    else if (
      this.options.vfioDir !== undefined &&
      !fs.existsSync(nodePath.join(this.options.vfioDir, group))
    ) {
      problem = `${nodePath.join(this.options.vfioDir, group)} does not exist`;
    }
    return {
      id: vf.address,
      kind: 'vf',
      parent: gpu.address,
      type: typeKey(vf.typeId),
      typeName: gpu.typeNames.get(vf.typeId),
      iommuGroup: group,
      numaNode: gpu.numaNode,
      problem,
    };
  }
}

/**
 * "Look again" for VF vGPUs: writing a VF's `current_vgpu_type` sends no
 * uevent and changes no listing, so this poll reads the types themselves
 * (one small file per VF, through the VF inventory) and signals when the
 * GPUs, their VFs or the types they hold differ. At most every 100 ms.
 */
export function vfHostChanges(port: SysfsPort, intervalMs: number): HostChanges {
  const signature = (): string => {
    try {
      return listVfGpus(port, { details: false })
        .map((g) => `${g.address}:${g.vfs.map((v) => v.typeId).join(',')}`)
        .join('|');
    } catch (err) {
      if (err instanceof ErrnoError) return '!';
      throw err;
    }
  };
  const listeners = new Set<() => void>();
  let timer: NodeJS.Timeout | undefined;
  let last = '';
  return (listener) => {
    listeners.add(listener);
    if (timer === undefined) {
      last = signature();
      timer = setInterval(
        () => {
          const now = signature();
          if (now === last) return;
          last = now;
          for (const l of listeners) l();
        },
        Math.max(100, intervalMs),
      );
      timer.unref();
    }
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0 && timer !== undefined) {
        clearInterval(timer);
        timer = undefined;
      }
    };
  };
}
