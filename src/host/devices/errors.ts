/**
 * The host library's errors: `MdevError` with a stable `code`, and
 * `AttributeWriteError` for an attribute the kernel refused during start.
 */
import { ErrnoError, isErrnoCode, strerror } from '../../common/errno.js';

export type MdevErrorCode =
  | 'ENVIRONMENT'
  | 'INVALID_CONFIG'
  | 'NOT_DEFINED'
  | 'ALREADY_DEFINED'
  | 'AMBIGUOUS'
  | 'UNDERSPECIFIED'
  | 'CONFLICT'
  | 'NO_PARENT'
  | 'NO_TYPE'
  | 'NO_INSTANCES'
  | 'ALREADY_ACTIVE'
  | 'NOT_ACTIVE'
  | 'INVALID_INDEX'
  | 'INVALID_ATTRIBUTE'
  | 'SYSFS'
  | 'IO'
  | 'CALLOUT'
  | 'INVALID_NAME';

/** A failure of a host operation, in words; `cause` carries the underlying error. */
export class MdevError extends Error {
  override readonly name: string = 'MdevError';
  constructor(
    readonly code: MdevErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Writing an attribute of a just-created device failed (mdevctl#115): which
 * device, parent, type, attribute file and why. The device has been removed
 * again — unless `removeError` says that failed too.
 */
export class AttributeWriteError extends MdevError {
  override readonly name = 'AttributeWriteError';
  constructor(
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
      'INVALID_ATTRIBUTE',
      `Failed to set attribute '${attribute}' of mdev ${uuid} (parent ${parent}, type ${type}): ` +
        `writing ${JSON.stringify(value)} to ${file}: ${reason}; ${removal}`,
    );
  }
}

/** "Invalid argument (EINVAL)" for errno errors, the message otherwise. */
export function describeError(err: unknown): string {
  if (err instanceof ErrnoError) return `${strerror(err.code)} (${err.code})`;
  const code = (err as { code?: unknown } | null)?.code;
  if (isErrnoCode(code)) return `${strerror(code)} (${code})`;
  return err instanceof Error ? err.message : String(err);
}
