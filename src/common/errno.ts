/**
 * The one errno table of the project. Both sides of the sysfs port speak
 * errno: the emulator raises these codes exactly where the kernel returns
 * -Exxx from a store/show callback, and the node:fs side receives the same
 * codes from the real kernel (or from FUSE). Callers match on `code`.
 */

/** Linux errno numbers (asm-generic/errno-base.h, errno.h) and strerror texts (glibc). */
const ERRNO = {
  EPERM: [1, 'Operation not permitted'],
  ENOENT: [2, 'No such file or directory'],
  EIO: [5, 'Input/output error'],
  ENXIO: [6, 'No such device or address'],
  E2BIG: [7, 'Argument list too long'],
  EBADF: [9, 'Bad file descriptor'],
  EAGAIN: [11, 'Resource temporarily unavailable'],
  ENOMEM: [12, 'Cannot allocate memory'],
  EACCES: [13, 'Permission denied'],
  EFAULT: [14, 'Bad address'],
  EBUSY: [16, 'Device or resource busy'],
  EEXIST: [17, 'File exists'],
  EXDEV: [18, 'Invalid cross-device link'],
  ENODEV: [19, 'No such device'],
  ENOTDIR: [20, 'Not a directory'],
  EISDIR: [21, 'Is a directory'],
  EINVAL: [22, 'Invalid argument'],
  EFBIG: [27, 'File too large'],
  ENOSPC: [28, 'No space left on device'],
  EROFS: [30, 'Read-only file system'],
  ERANGE: [34, 'Numerical result out of range'],
  ENAMETOOLONG: [36, 'File name too long'],
  ENOSYS: [38, 'Function not implemented'],
  ENOTEMPTY: [39, 'Directory not empty'],
  ELOOP: [40, 'Too many levels of symbolic links'],
  ENODATA: [61, 'No data available'],
  EUSERS: [87, 'Too many users'],
  EOPNOTSUPP: [95, 'Operation not supported'],
  EADDRINUSE: [98, 'Address already in use'],
  EADDRNOTAVAIL: [99, 'Cannot assign requested address'],
  ETIMEDOUT: [110, 'Connection timed out'],
  ECANCELED: [125, 'Operation canceled'],
} as const satisfies Record<string, readonly [number, string]>;

export type ErrnoCode = keyof typeof ERRNO;

export function isErrnoCode(code: unknown): code is ErrnoCode {
  return typeof code === 'string' && Object.hasOwn(ERRNO, code);
}

/** Positive errno number for a code (EINVAL -> 22). */
export function errnoNumber(code: ErrnoCode): number {
  return ERRNO[code][0];
}

/** strerror(3) text for a code (EINVAL -> "Invalid argument"). */
export function strerror(code: ErrnoCode): string {
  return ERRNO[code][1];
}

/** Reverse lookup; undefined for numbers outside the table. */
export function errnoCodeOf(num: number): ErrnoCode | undefined {
  for (const [code, [n]] of Object.entries(ERRNO)) if (n === num) return code as ErrnoCode;
  return undefined;
}

/**
 * An operation failed with an errno. `message` says what failed in words.
 * `detail` is the emulator's own explanation, the equivalent of the
 * kernel's dmesg line: it stays inside the emulator (its control socket
 * reports it); the sysfs port never passes it on, since a real kernel
 * gives a writer nothing but the errno.
 */
export class ErrnoError extends Error {
  override readonly name = 'ErrnoError';
  readonly errno: number;
  constructor(
    readonly code: ErrnoCode,
    message?: string,
    readonly path?: string,
    readonly detail?: string,
  ) {
    super(message ?? `${code}: ${strerror(code)}${path === undefined ? '' : `, '${path}'`}`);
    this.errno = errnoNumber(code);
  }
}

/** Throw helper for expression positions: `x ?? fail('ENOENT')`. */
export function fail(code: ErrnoCode, detail?: string, path?: string): never {
  throw new ErrnoError(code, undefined, path, detail);
}

/**
 * The errno code an error carries: ours, or node:fs's SystemError (by name,
 * or by number for the errnos libuv does not name); undefined otherwise.
 */
export function errnoCodeIn(err: unknown): ErrnoCode | undefined {
  if (err instanceof ErrnoError) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  if (isErrnoCode(code)) return code;
  // libuv names only the errnos it knows; others (EUSERS, which the mdev
  // core returns when a parent is full) arrive as code "UNKNOWN" with the
  // number in `errno` (negative, as libuv reports it).
  const num = (err as { errno?: unknown } | null)?.errno;
  if (code === 'UNKNOWN' && typeof num === 'number') return errnoCodeOf(Math.abs(num));
  return undefined;
}

/**
 * Bring any error that carries an errno code (ours, or node:fs's SystemError)
 * to an ErrnoError naming `path`; anything else is rethrown unchanged, since
 * it is a bug.
 */
export function toErrnoError(err: unknown, path?: string): ErrnoError {
  if (err instanceof ErrnoError) return err;
  const code = errnoCodeIn(err);
  if (code === undefined) throw err;
  return new ErrnoError(code, undefined, path);
}
