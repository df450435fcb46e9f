import { isUuid } from '../common/uuid.js';
import type { SysfsPort } from '../port/sysfs-port.js';
import { MdevError, type ContextInput } from './errors.js';

/**
 * Where mdev things live in sysfs, and the guards that keep a name from a
 * config file, a command line or an HTTP request inside the directory it
 * belongs to. Every path the management side writes is built here.
 */

export const MDEV_BUS_DEVICES = '/sys/bus/mdev/devices';
export const MDEV_CLASS = '/sys/class/mdev_bus';

/** A name that is malformed or would lead outside its directory (code `invalid-name`). */
export class UnsafeNameError extends MdevError {
  override readonly name = 'UnsafeNameError';
  constructor(message: string, context?: ContextInput) {
    super('invalid-name', message, context === undefined ? {} : { context });
  }
}

/**
 * A single path component: not empty, not "." or "..", no "/", no NUL.
 * `what` names the thing in the error ("parent", "type").
 */
export function checkComponent(value: string, what: string): string {
  if (value === '' || value === '.' || value === '..' || /[/\0]/.test(value)) {
    throw new UnsafeNameError(`invalid ${what} name ${JSON.stringify(value)}`, { value });
  }
  return value;
}

/**
 * An attribute name relative to a device directory, which may name a
 * subdirectory ("vendor/resolution", "mdev/aggregation/value") but never
 * leave it: no absolute path, no "." or ".." component, no NUL, no empty
 * component.
 */
export function checkAttributeName(name: string): string {
  if (name === '' || name.startsWith('/') || name.includes('\0')) {
    throw new UnsafeNameError(`invalid attribute name ${JSON.stringify(name)}`, {
      attribute: name,
    });
  }
  for (const part of name.split('/')) {
    if (part === '' || part === '.' || part === '..') {
      throw new UnsafeNameError(`invalid attribute name ${JSON.stringify(name)}`, {
        attribute: name,
      });
    }
  }
  return name;
}

export function checkUuid(uuid: string): string {
  if (!isUuid(uuid))
    throw new UnsafeNameError(`invalid UUID ${JSON.stringify(uuid)}`, { value: uuid });
  return uuid.toLowerCase();
}

export function deviceDir(uuid: string): string {
  return `${MDEV_BUS_DEVICES}/${checkUuid(uuid)}`;
}

export function parentDir(parent: string): string {
  return `${MDEV_CLASS}/${checkComponent(parent, 'parent')}`;
}

export function typeDir(parent: string, type: string): string {
  return `${parentDir(parent)}/mdev_supported_types/${checkComponent(type, 'type')}`;
}

/**
 * The sysfs path of attribute `name` of device `uuid`, checked twice: by
 * name (above), then by where it really lands — a link inside the device
 * directory must not lead outside it (e.g. `driver/unbind`, `subsystem/...`,
 * `iommu_group/...`). Only attribute files are accepted.
 */
export function deviceAttributePath(port: SysfsPort, uuid: string, name: string): string {
  checkAttributeName(name);
  const dev = deviceDir(uuid);
  const path = `${dev}/${name}`;
  const devReal = port.realpath(dev);
  let real: string;
  try {
    real = port.realpath(path);
  } catch {
    return path; // absent: the write itself reports ENOENT
  }
  if (!real.startsWith(devReal + '/')) {
    throw new UnsafeNameError(`attribute ${JSON.stringify(name)} leads outside device ${uuid}`, {
      uuid,
      attribute: name,
    });
  }
  if (port.kind(real) !== 'file') {
    throw new UnsafeNameError(`attribute ${JSON.stringify(name)} of device ${uuid} is not a file`, {
      uuid,
      attribute: name,
    });
  }
  return path;
}
