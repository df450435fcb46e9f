import * as nodePath from 'node:path';
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

/** One active device, or undefined when it is gone or not a usable mdev. */
export function readActiveDevice(port: SysfsPort, uuid: string): ActiveDevice | undefined {
  try {
    const found = probeActive(port, uuid);
    return found === undefined ? undefined : { uuid, ...found };
  } catch (err) {
    if (err instanceof ErrnoError) return undefined; // vanished or not an mdev
    throw err;
  }
}

// ---- where an active device is (shared with the host library) ----------

const basename = (p: string): string => p.slice(p.lastIndexOf('/') + 1);
const dirname = (p: string): string => p.slice(0, p.lastIndexOf('/')) || '/';

/**
 * Resolve a link target against the link's directory, lexically. sysfs
 * links are relative ("../../../devices/pci0000:00/..."): strip one
 * directory per leading "../", which is all the hot path needs; anything
 * else goes through path.posix.
 */
function resolveLink(linkPath: string, target: string): string {
  let dir = dirname(linkPath);
  let i = 0;
  while (target.startsWith('../', i)) {
    dir = dirname(dir);
    i += 3;
  }
  const rest = target.slice(i);
  if (target.startsWith('/') || rest.includes('./') || rest === '..' || rest === '.') {
    return target.startsWith('/')
      ? nodePath.posix.normalize(target)
      : nodePath.posix.join(dirname(linkPath), target);
  }
  return dir === '/' ? `/${rest}` : `${dir}/${rest}`;
}

export interface SysfsPresence {
  readonly parent: string;
  readonly type: string;
}

/**
 * Where the active device `uuid` is: undefined when /sys/bus/mdev/devices/<uuid>
 * does not resolve; its parent (the directory holding the device) and type
 * (the target of its mdev_type link) otherwise. Throws when the device
 * exists but those cannot be resolved — as mdevctl's canonicalize does.
 *
 * The fast path reads two links and checks the type directory; sysfs device
 * paths have no symlinked components, so lexical resolution gives the same
 * answer as realpath(3). Anything unusual takes the exact path.
 */
export function probeActive(
  port: SysfsPort,
  uuid: string,
  typeDirCache?: Map<string, boolean>,
  typeIndex?: TypeDevicesIndex,
): SysfsPresence | undefined {
  const link = `${MDEV_BUS_DEVICES}/${uuid}`;
  const hint = typeIndex?.get(uuid);
  if (hint !== undefined) {
    // One readlink instead of two: the type's devices/ listing named the
    // parent and type already; the device's own mdev_type link confirms it
    // (and that the device directory behind the bus link exists).
    try {
      if (port.readlink(`${link}/mdev_type`) === `../mdev_supported_types/${hint.type}`)
        return hint;
    } catch {
      // fall through to the full resolution
    }
  }
  let target: string | undefined;
  try {
    target = port.readlink(link);
  } catch (err) {
    // Nothing on the bus under that name (what a start expects to find):
    // realpath could only say the same, one lookup later.
    if (err instanceof ErrnoError && err.code === 'ENOENT') return undefined;
  }
  if (target !== undefined) {
    try {
      const dev = resolveLink(link, target);
      const typeLink = `${dev}/mdev_type`;
      const typeDir = resolveLink(typeLink, port.readlink(typeLink));
      // A listing meets the same few type directories over and over.
      let isDir = typeDirCache?.get(typeDir);
      if (isDir === undefined) {
        isDir = port.kind(typeDir) === 'dir';
        typeDirCache?.set(typeDir, isDir);
      }
      if (isDir) return { parent: basename(dirname(dev)), type: basename(typeDir) };
    } catch {
      // fall through to the exact path
    }
  }
  let dev: string;
  try {
    dev = port.realpath(link);
  } catch (err) {
    if (err instanceof ErrnoError && (err.code === 'ENOENT' || err.code === 'ENOTDIR'))
      return undefined;
    throw err;
  }
  const type = basename(port.realpath(`${dev}/mdev_type`));
  return { parent: basename(dirname(dev)), type };
}

/**
 * uuid -> where its type's devices/ directory lists it, from one readdir per
 * type: on a host with many devices this saves a readlink per device (a
 * listing of 10k devices is mostly syscalls). UUIDs listed under two types
 * (a broken tree) are left out, so they take the full resolution.
 */
export type TypeDevicesIndex = ReadonlyMap<string, SysfsPresence>;

export function indexTypeDevices(port: SysfsPort): TypeDevicesIndex {
  const index = new Map<string, SysfsPresence>();
  const ambiguous = new Set<string>();
  let parents: string[];
  try {
    parents = port.list(MDEV_CLASS);
  } catch {
    return index;
  }
  for (const parent of parents) {
    const typesDir = `${MDEV_CLASS}/${parent}/mdev_supported_types`;
    let types: string[];
    try {
      types = port.list(typesDir);
    } catch {
      continue;
    }
    for (const type of types) {
      let uuids: string[];
      try {
        uuids = port.list(`${typesDir}/${type}/devices`);
      } catch {
        continue;
      }
      for (const uuid of uuids) {
        if (index.has(uuid)) ambiguous.add(uuid);
        else index.set(uuid, { parent, type });
      }
    }
  }
  for (const uuid of ambiguous) index.delete(uuid);
  return index;
}

/** echo UUID > .../<type>/create */
export function createDevice(port: SysfsPort, parent: string, type: string, uuid: string): void {
  port.write(`${typeDir(parent, type)}/create`, `${uuid}\n`);
}

/** echo 1 > /sys/bus/mdev/devices/UUID/remove */
export function removeDevice(port: SysfsPort, uuid: string): void {
  port.write(`${deviceDir(uuid)}/remove`, '1\n');
}
