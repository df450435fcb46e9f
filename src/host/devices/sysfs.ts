/** Small sysfs helpers of the operations: existence as mdevctl tests it, numbers as Rust parses them. */
import type { SysfsPort } from '../../port/sysfs-port.js';
import { MdevError, type ContextInput } from '../errors.js';

/** Path::exists: present, following a final link. One lstat unless it is a link. */
export function existsInSysfs(port: SysfsPort, path: string): boolean {
  const kind = port.kind(path);
  if (kind === null) return false;
  if (kind !== 'link') return true;
  try {
    port.realpath(path);
    return true;
  } catch {
    return false;
  }
}

export function isSysfsDir(port: SysfsPort, path: string): boolean {
  const kind = port.kind(path);
  if (kind === 'dir') return true;
  if (kind !== 'link') return false;
  try {
    return port.kind(port.realpath(path)) === 'dir';
  } catch {
    return false;
  }
}

/** A sysfs access failed: the code is the kernel's errno. */
export function sysfsError(message: string, err: unknown, context?: ContextInput): MdevError {
  return MdevError.causedBy(err, message, context);
}

/** Parse an i32 as Rust's str::parse does (after trim). */
export function parseI32(text: string, file: string): number {
  const t = text.trim();
  const n = /^[+-]?\d+$/.test(t) ? Number(t) : Number.NaN;
  if (!Number.isSafeInteger(n) || n > 2147483647 || n < -2147483648) {
    throw new MdevError(
      'sysfs-malformed',
      `Unable to parse ${JSON.stringify(t)} in ${file} as a number`,
      { context: { file, value: t } },
    );
  }
  return n;
}
