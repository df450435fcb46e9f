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
 * Never part of a name or an attribute value: C0 controls, DEL and C1
 * controls; the invisible formatting characters that make text display
 * other than it is (zero-width characters, bidirectional overrides and
 * isolates, the byte order mark); and lone surrogates, which no file name
 * or sysfs write can carry.
 */
const CONTROL_CHARACTER =
  /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * `value` as it may appear in a message: quoted, with every control and
 * invisible formatting character escaped (JSON.stringify leaves DEL, the C1
 * controls and the bidirectional overrides raw, and a terminal takes U+009B
 * for the start of an escape sequence).
 */
export function printable(value: string): string {
  return printableJson(value);
}

/** Any JSON value as compact JSON, escaped as `printable` escapes a string. */
export function printableJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Where the first control character of `value` is, for the error about it. */
function controlCharacterAt(value: string): { index: number; codePoint: string } | undefined {
  const m = CONTROL_CHARACTER.exec(value);
  if (m === null) return undefined;
  const codePoint = `U+${m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
  return { index: m.index, codePoint };
}

/**
 * Why `value` is refused for holding a control character, or undefined when
 * it holds none. Words only: the caller decides the error.
 */
export function controlCharacterProblem(value: string, what: string): string | undefined {
  const at = controlCharacterAt(value);
  return at === undefined
    ? undefined
    : `${what} holds a control character (${at.codePoint} at offset ${at.index})`;
}

/**
 * Refuse a name or value holding a control character (code
 * `control-character`). Names are file names in sysfs and the config
 * directory, values are written to sysfs and shown in listings, XML and
 * terminals: none of them has a use for one, and each place would take it
 * differently (libvirt's XML cannot carry most of them at all).
 */
export function checkNoControlCharacters(
  value: string,
  what: string,
  context: ContextInput = {},
): string {
  const problem = controlCharacterProblem(value, what);
  if (problem !== undefined) {
    throw new MdevError('control-character', `${problem}: ${printable(value)}`, { context });
  }
  return value;
}

/**
 * A single path component: not empty, not "." or "..", no "/", no NUL, no
 * control character. `what` names the thing in the error ("parent", "type").
 */
export function checkComponent(value: string, what: string): string {
  if (value === '' || value === '.' || value === '..' || /[/\0]/.test(value)) {
    throw new UnsafeNameError(`invalid ${what} name ${printable(value)}`, { value });
  }
  return checkNoControlCharacters(value, `${what} name`, { value });
}

/**
 * Files of every device directory that belong to the driver core and the
 * mdev core, not to the vendor driver: writing them is not configuring the
 * device but removing it (`remove`), replaying its events (`uevent`),
 * changing its power management (`power/...`) or reaching other objects
 * through the core's links (`driver`, `subsystem`, `iommu_group`,
 * `mdev_type`, `vfio-dev`). A definition's attributes are the vendor
 * driver's; names starting with one of these are refused.
 */
export const CORE_DEVICE_FILES: ReadonlySet<string> = new Set([
  'remove',
  'mdev_type',
  'driver',
  'driver_override',
  'subsystem',
  'iommu_group',
  'iommu',
  'uevent',
  'power',
  'vfio-dev',
  'firmware_node',
  'of_node',
  'waiting_for_supplier',
]);

/**
 * An attribute name relative to a device directory, which may name a
 * subdirectory ("vendor/resolution", "mdev/aggregation/value") but never
 * leave it: no absolute path, no "." or ".." component, no NUL, no empty
 * component, no control character — and none of the core's own files
 * (CORE_DEVICE_FILES; code `core-attribute`).
 */
export function checkAttributeName(name: string): string {
  const refuse = (): never => {
    throw new UnsafeNameError(`invalid attribute name ${printable(name)}`, { attribute: name });
  };
  if (name === '' || name.startsWith('/') || name.includes('\0')) refuse();
  const parts = name.split('/');
  for (const part of parts) {
    if (part === '' || part === '.' || part === '..') refuse();
  }
  checkNoControlCharacters(name, 'attribute name', { attribute: name });
  if (CORE_DEVICE_FILES.has(parts[0]!)) {
    throw new MdevError(
      'core-attribute',
      `Refusing attribute ${printable(name)}: ${parts[0]} belongs to the device core, not to the vendor driver`,
      { context: { attribute: name } },
    );
  }
  return name;
}

/** An attribute of a definition or request: its name as above, its value free of control characters. */
export function checkAttribute(
  attr: { readonly name: string; readonly value: string },
  context: ContextInput = {},
): void {
  checkAttributeName(attr.name);
  checkNoControlCharacters(attr.value, `the value of attribute ${printable(attr.name)}`, {
    ...context,
    attribute: attr.name,
  });
}

export function checkUuid(uuid: string): string {
  if (!isUuid(uuid)) throw new UnsafeNameError(`invalid UUID ${printable(uuid)}`, { value: uuid });
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
    throw new UnsafeNameError(`attribute ${printable(name)} leads outside device ${uuid}`, {
      uuid,
      attribute: name,
    });
  }
  if (port.kind(real) !== 'file') {
    throw new UnsafeNameError(`attribute ${printable(name)} of device ${uuid} is not a file`, {
      uuid,
      attribute: name,
    });
  }
  return path;
}
