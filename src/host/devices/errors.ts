/**
 * The device operations' own error shape: `AttributeWriteError` for an
 * attribute the kernel (or the library's checks) refused during start. Its
 * code is the kernel's errno for the write ("EADDRINUSE" when vfio_ap says a
 * queue is taken), `attribute-missing` when the device has no such file, or
 * `invalid-name` when the name would lead outside the device. Everything
 * else is a plain `MdevError` (src/host/errors.ts).
 */
import { errnoCodeIn, errnoNumber, strerror } from '../../common/errno.js';
import { MdevError, codeOf, type HostErrorCode } from '../errors.js';

/**
 * Writing an attribute of a just-created device failed (mdevctl#115): which
 * device, parent, type, attribute file and why. The device has been removed
 * again — unless `removeError` says that failed too.
 */
export class AttributeWriteError extends MdevError {
  override readonly name = 'AttributeWriteError';
  constructor(
    code: HostErrorCode,
    readonly uuid: string,
    readonly parent: string,
    readonly type: string,
    readonly attribute: string,
    readonly value: string,
    readonly file: string,
    readonly reason: string,
    readonly removeError?: unknown,
  ) {
    const removal =
      removeError === undefined
        ? 'the device was removed again'
        : `removing the device again failed too (${describeError(removeError)})`;
    super(
      code,
      `Failed to set attribute '${attribute}' of mdev ${uuid} (parent ${parent}, type ${type}): ` +
        `writing ${JSON.stringify(value)} to ${file}: ${reason}; ${removal}`,
      { context: { uuid, parent, type, attribute, value, file } },
    );
  }

  /** The failure of one write (an errno, or a refused name) as this error. */
  static of(
    failure: unknown,
    fields: {
      uuid: string;
      parent: string;
      type: string;
      attribute: string;
      value: string;
      file: string;
    },
    removeError: unknown,
  ): AttributeWriteError {
    const code = codeOf(failure);
    if (code === undefined) throw failure; // a bug, not a refusal
    const f = fields;
    return new AttributeWriteError(
      code,
      f.uuid,
      f.parent,
      f.type,
      f.attribute,
      f.value,
      f.file,
      describeError(failure),
      removeError,
    );
  }
}

/** "Invalid argument (EINVAL)" for errno errors, the message otherwise. */
export function describeError(err: unknown): string {
  const errno = err instanceof MdevError ? undefined : errnoCodeIn(err);
  if (errno !== undefined) return `${strerror(errno)} (${errno})`;
  return err instanceof Error ? err.message : String(err);
}

/** An errno as Rust's io::Error shows it ("No such file or directory (os error 2)"), else the message. */
export function osErrorText(err: unknown): string {
  const errno = err instanceof MdevError ? undefined : errnoCodeIn(err);
  if (errno !== undefined) return `${strerror(errno)} (os error ${errnoNumber(errno)})`;
  return err instanceof Error ? err.message : String(err);
}

/**
 * A device sysfs cannot resolve (a link loop, no access): mdevctl says only
 * what the system said; the code is that errno, the context the device.
 */
export function sysfsLookupError(err: unknown, uuid: string): MdevError {
  return new MdevError(codeOf(err) ?? 'EIO', osErrorText(err), { context: { uuid } });
}
