import { ErrnoError } from '../common/errno.js';
import type { SysfsPort } from '../port/sysfs-port.js';
import { MDEV_BUS_DEVICES, MDEV_CLASS, deviceDir, typeDir } from './paths.js';

/**
 * Reading and changing mdev state through sysfs files only: what mdevctl
 * does on a host, here over the port so it runs on a real /sys, a FUSE
 * mount, a snapshot or the in-process lab alike.
 */

export interface MdevTypeInfo {
  /** Directory name, e.g. "nvidia-11". */
  readonly id: string;
  readonly name: string | undefined;
  readonly description: string | undefined;
  readonly deviceApi: string;
  readonly availableInstances: number;
}

export interface ParentInfo {
  readonly name: string;
  readonly types: readonly MdevTypeInfo[];
}

export interface ActiveDevice {
  readonly uuid: string;
  readonly parent: string;
  readonly type: string;
}

const basename = (p: string): string => p.slice(p.lastIndexOf('/') + 1);
const dirname = (p: string): string => p.slice(0, p.lastIndexOf('/'));
const chomp = (s: string): string => (s.endsWith('\n') ? s.slice(0, -1) : s);

function readOptional(port: SysfsPort, path: string): string | undefined {
  try {
    return chomp(port.read(path));
  } catch (err) {
    if (err instanceof ErrnoError && err.code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Names of the registered parents (/sys/class/mdev_bus), sorted. */
export function listParentNames(port: SysfsPort): string[] {
  if (port.kind(MDEV_CLASS) === null) return [];
  return port.list(MDEV_CLASS).sort();
}

export function readType(port: SysfsPort, parent: string, id: string): MdevTypeInfo {
  const dir = typeDir(parent, id);
  const avail = Number.parseInt(chomp(port.read(`${dir}/available_instances`)), 10);
  return {
    id,
    name: readOptional(port, `${dir}/name`),
    description: readOptional(port, `${dir}/description`),
    deviceApi: chomp(port.read(`${dir}/device_api`)),
    availableInstances: Number.isNaN(avail) ? 0 : avail,
  };
}

/** A parent and its types, types sorted by id. */
export function readParent(port: SysfsPort, parent: string): ParentInfo {
  const dir = `${MDEV_CLASS}/${parent}/mdev_supported_types`;
  const ids = port.kind(dir) === null ? [] : port.list(dir).sort();
  return { name: parent, types: ids.map((id) => readType(port, parent, id)) };
}

export function listParents(port: SysfsPort): ParentInfo[] {
  return listParentNames(port).map((p) => readParent(port, p));
}

/**
 * Active devices from /sys/bus/mdev/devices: the parent is the directory
 * holding the device, the type the target of its mdev_type link.
 */
export function listActiveDevices(port: SysfsPort): ActiveDevice[] {
  if (port.kind(MDEV_BUS_DEVICES) === null) return [];
  const out: ActiveDevice[] = [];
  for (const uuid of port.list(MDEV_BUS_DEVICES)) {
    const dev = readActiveDevice(port, uuid);
    if (dev !== undefined) out.push(dev);
  }
  return out;
}

export function readActiveDevice(port: SysfsPort, uuid: string): ActiveDevice | undefined {
  const link = `${MDEV_BUS_DEVICES}/${uuid}`;
  try {
    const real = port.realpath(link);
    const type = basename(port.readlink(`${link}/mdev_type`));
    return { uuid, parent: basename(dirname(real)), type };
  } catch (err) {
    if (err instanceof ErrnoError) return undefined; // vanished or not an mdev
    throw err;
  }
}

/** echo UUID > .../<type>/create */
export function createDevice(port: SysfsPort, parent: string, type: string, uuid: string): void {
  port.write(`${typeDir(parent, type)}/create`, `${uuid}\n`);
}

/** echo 1 > /sys/bus/mdev/devices/UUID/remove */
export function removeDevice(port: SysfsPort, uuid: string): void {
  port.write(`${deviceDir(uuid)}/remove`, '1\n');
}
