import { isErrnoCode } from '../../../src/common/errno.js';
import type { SysfsPort } from '../../../src/port/sysfs-port.js';

/** The errno a sysfs operation fails with, or undefined when it succeeds. */
export function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return isErrnoCode(code) ? code : `not an errno: ${String(err)}`;
  }
}

/** A sysfs file holding one number. */
export function readNumber(port: SysfsPort, path: string): number {
  const text = port.read(path);
  if (!/^\d+\n$/.test(text)) throw new Error(`${path}: not a number: ${JSON.stringify(text)}`);
  return Number(text);
}

/** The type directory of `typeId` under parent `parent`, via /sys/class/mdev_bus. */
export const typeDir = (parent: string, typeId: string): string =>
  `/sys/class/mdev_bus/${parent}/mdev_supported_types/${typeId}`;

export const devDir = (uuid: string): string => `/sys/bus/mdev/devices/${uuid}`;

/** available_instances of every type of a parent, by type id. */
export function availability(port: SysfsPort, parent: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of port.list(`/sys/class/mdev_bus/${parent}/mdev_supported_types`).sort()) {
    out[t] = readNumber(port, `${typeDir(parent, t)}/available_instances`);
  }
  return out;
}
