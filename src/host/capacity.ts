import { ErrnoError } from '../common/errno.js';
import type { SysfsPort } from '../port/sysfs-port.js';
import { TYPE_AGGREGATION } from './aggregation.js';
import { MDEV_CLASS, typeDir } from './paths.js';
import { listActiveDevices, listParentNames, readType, type MdevTypeInfo } from './sysfs-model.js';

/**
 * What a host can still give, read fresh through sysfs (capacity changes
 * with every create): each registered parent with its types, their free
 * instances, how many devices of each run, and how much one new device
 * could aggregate. The agent's parents API and metrics and `mdevkit lab
 * summary` all show this.
 */

export interface TypeCapacity extends MdevTypeInfo {
  /** Active devices of this type on this parent. */
  readonly activeDevices: number;
  /**
   * The type's `aggregation` attribute, when it aggregates: the most
   * instances one new device could aggregate now.
   */
  readonly aggregation: string | undefined;
}

export interface ParentCapacity {
  readonly name: string;
  readonly types: readonly TypeCapacity[];
}

/** Active devices per "parent\0type", counted from /sys/bus/mdev/devices. */
type ActiveCounts = ReadonlyMap<string, number>;

function activeCounts(port: SysfsPort): ActiveCounts {
  const counts = new Map<string, number>();
  for (const d of listActiveDevices(port)) {
    const key = `${d.parent}\0${d.type}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

function readTrimmed(port: SysfsPort, path: string): string | undefined {
  try {
    return port.read(path).trim();
  } catch (err) {
    if (err instanceof ErrnoError) return undefined;
    throw err;
  }
}

function typeCapacity(
  port: SysfsPort,
  parent: string,
  id: string,
  counts: ActiveCounts,
): TypeCapacity {
  return {
    ...readType(port, parent, id),
    activeDevices: counts.get(`${parent}\0${id}`) ?? 0,
    aggregation: readTrimmed(port, `${typeDir(parent, id)}/${TYPE_AGGREGATION}`),
  };
}

function parentCapacity(port: SysfsPort, parent: string, counts: ActiveCounts): ParentCapacity {
  const dir = `${MDEV_CLASS}/${parent}/mdev_supported_types`;
  const ids = port.kind(dir) === null ? [] : port.list(dir).sort();
  return { name: parent, types: ids.map((id) => typeCapacity(port, parent, id, counts)) };
}

/** Every registered parent, sorted, with its types sorted by id. */
export function readCapacity(port: SysfsPort): ParentCapacity[] {
  const counts = activeCounts(port);
  const out: ParentCapacity[] = [];
  for (const name of listParentNames(port)) {
    try {
      out.push(parentCapacity(port, name, counts));
    } catch (err) {
      // A parent unregistering while we read it is simply gone.
      if (err instanceof ErrnoError) continue;
      throw err;
    }
  }
  return out;
}

/** One parent; undefined when no parent of that name is registered. */
export function readParentCapacity(port: SysfsPort, parent: string): ParentCapacity | undefined {
  if (port.kind(`${MDEV_CLASS}/${parent}`) === null) return undefined;
  return parentCapacity(port, parent, activeCounts(port));
}

/** One type of a parent; undefined when the parent has no such type. */
export function readTypeCapacity(
  port: SysfsPort,
  parent: string,
  type: string,
): TypeCapacity | undefined {
  if (port.kind(typeDir(parent, type)) === null) return undefined;
  return typeCapacity(port, parent, type, activeCounts(port));
}
