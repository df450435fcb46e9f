import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { ErrnoError } from '../../common/errno.js';
import { isUuid } from '../../common/uuid.js';
import { MDEV_BUS_DEVICES, MDEV_CLASS } from '../../host/paths.js';
import type { SysfsPort } from '../../port/sysfs-port.js';

/**
 * The devices a node's plugins advertise, read from the host through the
 * sysfs port (and /dev/vfio where the host has it), never from the
 * emulator. One record per device, whatever kind it is:
 *
 * - `mdev`: an active mediated device; its ID is its UUID (stable across
 *   reboots when it is defined, unlike IOMMU group numbers, and what
 *   KubeVirt's virt-launcher wants in MDEV_PCI_RESOURCE_<NAME>);
 * - `vf`: an NVIDIA vendor-VFIO vGPU (an SR-IOV VF with a vGPU type set);
 *   its ID is the VF's PCI address, which goes into PCI_RESOURCE_<NAME>.
 *   Its reader comes with the VF inventory (the NVIDIA VF issue): a
 *   `DeviceSource` of kind 'vf' is all the plugins need.
 */

export type DeviceKind = 'mdev' | 'vf';

export interface PluginDevice {
  /** The ID advertised to kubelet: the mdev UUID or the VF's PCI address (at most 63 characters). */
  readonly id: string;
  readonly kind: DeviceKind;
  /** The parent: a GPU's PCI address, a subchannel, "matrix"... (the PF for a VF). */
  readonly parent: string;
  /** The type's directory name ("nvidia-16") or the vGPU type's name for a VF. */
  readonly type: string;
  /** The type's `name` attribute ("GRID M60-2Q"), when it has one. */
  readonly typeName: string | undefined;
  /** The IOMMU group's number (digits only), when the device has one. */
  readonly iommuGroup: string | undefined;
  /** The parent's NUMA node, when sysfs names one. */
  readonly numaNode: number | undefined;
  /** Why the device cannot be given to a container now; undefined when it can. */
  readonly problem: string | undefined;
}

/** Where a kind of device comes from. `read` is called after every host change. */
export interface DeviceSource {
  readonly kind: DeviceKind;
  read(): PluginDevice[];
  /** Read one device again, as Allocate does before it hands it out; undefined when gone. */
  reread(id: string): PluginDevice | undefined;
}

const basename = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

function readTrimmed(port: SysfsPort, path: string): string | undefined {
  try {
    return port.read(path).trim();
  } catch (err) {
    if (err instanceof ErrnoError) return undefined;
    throw err;
  }
}

/** A group number as sysfs names it: digits only, so it can become /dev/vfio/<group>. */
export function isIommuGroup(s: string): boolean {
  return /^\d{1,10}$/.test(s);
}

export interface MdevSourceOptions {
  /**
   * The host's /dev/vfio, when it has one (a real host, the DaemonSet's
   * mount). A device whose group has no node there is unhealthy, as
   * KubeVirt's plugin judges; the in-process and FUSE labs have no
   * /dev/vfio, and sysfs alone decides there.
   */
  readonly vfioDir?: string;
}

/**
 * The active mdevs, from sysfs as mdevctl reads them: each parent's types'
 * `devices/` listings (one readdir per type), then per device its IOMMU
 * group link and driver link. Type names and NUMA nodes are read once per
 * parent and type; a parent that goes away is forgotten.
 */
export class MdevDeviceSource implements DeviceSource {
  readonly kind = 'mdev';
  readonly #typeNames = new Map<string, string | undefined>();
  readonly #numa = new Map<string, number | undefined>();

  constructor(
    readonly port: SysfsPort,
    readonly options: MdevSourceOptions = {},
  ) {}

  read(): PluginDevice[] {
    const port = this.port;
    let parents: string[];
    try {
      parents = port.kind(MDEV_CLASS) === null ? [] : port.list(MDEV_CLASS).sort();
    } catch (err) {
      if (err instanceof ErrnoError) return [];
      throw err;
    }
    this.#forgetGone(parents);
    const out: PluginDevice[] = [];
    for (const parent of parents) {
      const typesDir = `${MDEV_CLASS}/${parent}/mdev_supported_types`;
      let types: string[];
      try {
        types = port.list(typesDir).sort();
      } catch {
        continue; // the parent went away meanwhile
      }
      for (const type of types) {
        let uuids: string[];
        try {
          uuids = port.list(`${typesDir}/${type}/devices`);
        } catch {
          continue;
        }
        for (const uuid of uuids.sort()) {
          if (!isUuid(uuid)) continue;
          out.push(this.#device(uuid.toLowerCase(), parent, type));
        }
      }
    }
    return out;
  }

  reread(id: string): PluginDevice | undefined {
    if (!isUuid(id)) return undefined;
    const uuid = id.toLowerCase();
    const dir = `${MDEV_BUS_DEVICES}/${uuid}`;
    try {
      if (this.port.kind(dir) === null) return undefined;
      const type = basename(this.port.readlink(`${dir}/mdev_type`));
      // The parent is the directory holding the device: .../<parent>/<uuid>.
      const real = this.port.realpath(dir);
      const parent = basename(real.slice(0, real.lastIndexOf('/')));
      return this.#device(uuid, parent, type);
    } catch (err) {
      if (err instanceof ErrnoError) return undefined;
      throw err;
    }
  }

  #device(uuid: string, parent: string, type: string): PluginDevice {
    const dir = `${MDEV_BUS_DEVICES}/${uuid}`;
    let group: string | undefined;
    let bound = false;
    try {
      const g = basename(this.port.readlink(`${dir}/iommu_group`));
      group = isIommuGroup(g) ? g : undefined;
    } catch {
      group = undefined;
    }
    try {
      bound = this.port.kind(`${dir}/driver`) === 'link';
    } catch {
      bound = false;
    }
    let problem: string | undefined;
    if (group === undefined) problem = `mdev ${uuid} has no IOMMU group`;
    else if (!bound) problem = `mdev ${uuid} is bound to no driver`;
    else if (this.options.vfioDir !== undefined) {
      if (!fs.existsSync(nodePath.join(this.options.vfioDir, group))) {
        problem = `${nodePath.join(this.options.vfioDir, group)} does not exist`;
      }
    }
    return {
      id: uuid,
      kind: 'mdev',
      parent,
      type,
      typeName: this.#typeName(parent, type),
      iommuGroup: group,
      numaNode: this.#numaNode(parent),
      problem,
    };
  }

  #typeName(parent: string, type: string): string | undefined {
    const key = `${parent}/${type}`;
    if (!this.#typeNames.has(key)) {
      this.#typeNames.set(
        key,
        readTrimmed(this.port, `${MDEV_CLASS}/${parent}/mdev_supported_types/${type}/name`),
      );
    }
    return this.#typeNames.get(key);
  }

  #numaNode(parent: string): number | undefined {
    if (!this.#numa.has(parent)) {
      const t = readTrimmed(this.port, `${MDEV_CLASS}/${parent}/numa_node`);
      const n = t !== undefined && /^-?\d+$/.test(t) ? Number(t) : -1;
      this.#numa.set(parent, n >= 0 ? n : undefined);
    }
    return this.#numa.get(parent);
  }

  #forgetGone(parents: readonly string[]): void {
    const live = new Set(parents);
    for (const p of [...this.#numa.keys()]) if (!live.has(p)) this.#numa.delete(p);
    for (const k of [...this.#typeNames.keys()]) {
      if (!live.has(k.slice(0, k.indexOf('/')))) this.#typeNames.delete(k);
    }
  }
}
