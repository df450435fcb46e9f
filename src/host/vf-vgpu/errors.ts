import { ErrnoError, isErrnoCode, strerror, type ErrnoCode } from '../../common/errno.js';

/**
 * Failures of the VF vGPU operations: a stable `code`, the errno it means
 * (the kernel's own when a sysfs write failed, which stays in the cause
 * chain unchanged), the objects involved in `context`, and a message in
 * words. Nothing branches on a message.
 */
export const VF_ERRORS = {
  'invalid-argument': {
    errno: 'EINVAL',
    meaning: 'a PCI address, type, VF index, owner or vgpu_params value is malformed',
  },
  'not-vgpu-gpu': {
    errno: 'ENODEV',
    meaning: 'the address is not an NVIDIA GPU with SR-IOV vGPUs (no nvidia/ directory on its VFs)',
  },
  'vf-not-enabled': {
    errno: 'ENODEV',
    meaning: "the GPU's SR-IOV virtual functions are not enabled (sriov-manage -e)",
  },
  'no-such-vf': { errno: 'ENODEV', meaning: 'the GPU has no VF with that index or address' },
  'unknown-vgpu-type': {
    errno: 'ENOENT',
    meaning: 'the GPU offers no vGPU type of that id or name',
  },
  'vgpu-size-mismatch': {
    errno: 'EIO',
    meaning:
      'the GPU runs vGPUs of another framebuffer size, and in its (default) equal-size mode it takes one size at a time',
  },
  'vgpu-no-room': {
    errno: 'EIO',
    meaning: "the GPU's framebuffer has no free placement of the type's size left",
  },
  'no-free-vf': {
    errno: 'EBUSY',
    meaning: 'every VF of the GPU holds a vGPU or is defined for one',
  },
  'vf-taken': {
    errno: 'EBUSY',
    meaning: 'the VF holds another vGPU (of another definition, or made outside mdevkit)',
  },
  'vf-pinned': {
    errno: 'EEXIST',
    meaning: 'another definition is pinned to the VF',
  },
  'vf-in-use': {
    errno: 'EBUSY',
    meaning: 'the VF is in use by a VM: its vGPU cannot change until the VM lets go',
  },
  'not-defined': { errno: 'ENOENT', meaning: 'no VF vGPU definition has this UUID' },
  'already-defined': { errno: 'EEXIST', meaning: 'a VF vGPU definition has this UUID already' },
  'already-active': { errno: 'EEXIST', meaning: "the definition's vGPU exists already" },
  'not-active': { errno: 'ENODEV', meaning: "the definition's vGPU does not exist now" },
  'foreign-vgpu': {
    errno: 'EPERM',
    meaning:
      'the vGPU was not made by mdevkit (or belongs to another owner); removing it needs --force',
  },
  'invalid-definition': { errno: 'EINVAL', meaning: 'a definition file cannot be read' },
  'vgpu-refused': {
    errno: 'EIO',
    meaning:
      'the driver refused the vGPU type for a reason sysfs does not show (see the kernel log)',
  },
} as const satisfies Record<string, { errno: ErrnoCode; meaning: string }>;

export type VfErrorCode = keyof typeof VF_ERRORS;

export type VfContextKey =
  | 'gpu'
  | 'vf'
  | 'vfIndex'
  | 'uuid'
  | 'type'
  | 'typeName'
  | 'runningSize'
  | 'holder'
  | 'owner'
  | 'file'
  | 'value';

export type VfErrorContext = Readonly<Partial<Record<VfContextKey, string>>>;

export class VfVgpuError extends Error {
  override readonly name = 'VfVgpuError';
  readonly errno: ErrnoCode;
  readonly context: VfErrorContext;
  constructor(
    readonly code: VfErrorCode,
    message: string,
    options: {
      cause?: unknown;
      context?: Partial<Record<VfContextKey, string | number | undefined>>;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    // The kernel's errno when one is in the cause chain, else the table's.
    this.errno = kernelErrno(options.cause) ?? VF_ERRORS[code].errno;
    const ctx: Partial<Record<VfContextKey, string>> = {};
    for (const [k, v] of Object.entries(options.context ?? {}) as [VfContextKey, unknown][]) {
      if (v !== undefined) ctx[k] = String(v);
    }
    this.context = ctx;
  }
}

/** The errno of the first ErrnoError in a cause chain. */
export function kernelErrno(err: unknown): ErrnoCode | undefined {
  for (let e = err, depth = 0; e !== undefined && depth < 8; depth++) {
    if (e instanceof ErrnoError) return e.code;
    const code = (e as { code?: unknown } | null)?.code;
    if (e instanceof VfVgpuError) return e.errno;
    if (isErrnoCode(code)) return code;
    e = e instanceof Error ? e.cause : undefined;
  }
  return undefined;
}

/** "Device or resource busy (EBUSY)". */
export function errnoText(code: ErrnoCode): string {
  return `${strerror(code)} (${code})`;
}
