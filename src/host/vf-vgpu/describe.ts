import { ErrnoError } from '../../common/errno.js';
import { VfVgpuError, errnoText } from './errors.js';

/** An error in one line: the library's message, or the errno in words. */
export function describeVfError(err: unknown): string {
  if (err instanceof VfVgpuError) return err.message;
  if (err instanceof ErrnoError) return errnoText(err.code);
  return err instanceof Error ? err.message : String(err);
}
