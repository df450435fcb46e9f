/**
 * Who holds a mediated device open. sysfs does not say: a VM holds it
 * through VFIO, by an open file of /dev/vfio/<iommu group> (or, with the
 * iommufd cdev, /dev/vfio/devices/vfioN). On a host this module finds
 * those files among the processes' descriptors, as lsof would; the group
 * comes from the device's `iommu_group` link in sysfs.
 *
 * Only meaningful where the sysfs port is the running kernel's (root "/"):
 * a lab's groups are not this machine's. Whatever this misses, the kernel
 * still refuses to remove an open device (EBUSY, or a remove that waits),
 * and apply reports that as blocked.
 */
import * as fs from 'node:fs';
import type { SysfsPort } from '../../port/sysfs-port.js';
import { MDEV_BUS_DEVICES } from '../paths.js';

export type InUseProbe = (uuid: string) => string | undefined;

/** Holders of /dev/vfio files on this machine, by device path ("/dev/vfio/12" -> "qemu-system-x86 (pid 4242)"). */
function vfioHolders(procDir: string): Map<string, string> {
  const out = new Map<string, string>();
  let pids: string[];
  try {
    pids = fs.readdirSync(procDir).filter((p) => /^\d+$/.test(p));
  } catch {
    return out;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`${procDir}/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to look at
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = fs.readlinkSync(`${procDir}/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (!target.startsWith('/dev/vfio/') || target === '/dev/vfio/vfio') continue;
      if (out.has(target)) continue;
      let comm = '?';
      try {
        comm = fs.readFileSync(`${procDir}/${pid}/comm`, 'utf8').trim();
      } catch {
        // keep "?"
      }
      out.set(target, `held by ${comm} (pid ${pid})`);
    }
  }
  return out;
}

/** A probe over this machine's processes; the scan runs once, on first use. */
export function procInUseProbe(port: SysfsPort, procDir = '/proc'): InUseProbe {
  let holders: Map<string, string> | undefined;
  return (uuid) => {
    holders ??= vfioHolders(procDir);
    if (holders.size === 0) return undefined;
    let group: string;
    try {
      const link = port.readlink(`${MDEV_BUS_DEVICES}/${uuid}/iommu_group`);
      group = link.slice(link.lastIndexOf('/') + 1);
    } catch {
      return undefined;
    }
    const direct = holders.get(`/dev/vfio/${group}`);
    if (direct !== undefined) return direct;
    try {
      for (const name of port.list(`${MDEV_BUS_DEVICES}/${uuid}/vfio-dev`)) {
        const h = holders.get(`/dev/vfio/devices/${name}`);
        if (h !== undefined) return h;
      }
    } catch {
      // no cdev interface
    }
    return undefined;
  };
}

/** The first probe that knows. */
export function combineProbes(...probes: (InUseProbe | undefined)[]): InUseProbe {
  const list = probes.filter((p): p is InUseProbe => p !== undefined);
  return (uuid) => {
    for (const p of list) {
      const h = p(uuid);
      if (h !== undefined) return h;
    }
    return undefined;
  };
}
