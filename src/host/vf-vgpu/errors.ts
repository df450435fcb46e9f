import { strerror, type ErrnoCode } from '../../common/errno.js';
import { MdevError, type ContextInput, type LibraryErrorCode } from '../errors.js';

/**
 * Failures of the VF vGPU operations, in the library's one error model
 * (src/host/errors.ts, docs/errors.md): an `MdevError` with a stable code
 * from its table — the VF vGPU codes, or the shared ones for definitions
 * and requests — the objects involved in `context` (`gpu`, `vf`, `uuid`,
 * `type`, `holder`, `owner`), the kernel's `ErrnoError` in the cause chain
 * when a write was refused, and a message in words.
 */
export type VfErrorCode = Extract<
  LibraryErrorCode,
  | 'invalid-argument'
  | 'invalid-config'
  | 'not-defined'
  | 'already-defined'
  | 'already-active'
  | 'not-active'
  | 'not-vgpu-gpu'
  | 'vf-not-enabled'
  | 'no-such-vf'
  | 'unknown-vgpu-type'
  | 'vgpu-size-mismatch'
  | 'vgpu-no-room'
  | 'no-free-vf'
  | 'vf-taken'
  | 'vf-pinned'
  | 'vf-in-use'
  | 'foreign-vgpu'
  | 'vgpu-refused'
>;

export class VfVgpuError extends MdevError {
  override readonly name = 'VfVgpuError';
  declare readonly code: VfErrorCode;
  constructor(
    code: VfErrorCode,
    message: string,
    options: { readonly cause?: unknown; readonly context?: ContextInput } = {},
  ) {
    super(code, message, options);
  }
}

/** "Device or resource busy (EBUSY)". */
export function errnoText(code: ErrnoCode): string {
  return `${strerror(code)} (${code})`;
}
