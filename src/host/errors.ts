import {
  ErrnoError,
  errnoCodeIn,
  errnoNumber,
  isErrnoCode,
  strerror,
  type ErrnoCode,
} from '../common/errno.js';

/**
 * The one error model of the management side (docs/errors.md).
 *
 * Every failure the host library (and src/libvirt on top of it) reports is
 * an `MdevError` with a stable `code`:
 *
 * - the kernel's errno name ("EBUSY", "EADDRINUSE") when a sysfs access
 *   failed, taken unchanged from the port's `ErrnoError` however deep in the
 *   cause chain it sits; or
 * - one of the library's own codes below ("not-defined", "queue-in-use"),
 *   for what the library finds before or instead of asking the kernel.
 *
 * Each code has an `errno` too: the kernel's own, or the one the table gives
 * (the errno the kernel uses for the same refusal where it has one). The
 * objects involved are in `context` (device uuid, parent, type, file...).
 * Messages are for people and keep mdevctl's wording; nothing may branch on
 * them. The agent maps codes to HTTP statuses in one exhaustive table
 * (src/agent/errors.ts); the CLI prints the message, or the same record as
 * the API with MDEVKIT_ERROR_FORMAT=json.
 */
export const LIBRARY_ERRORS = {
  // ---- requests
  'invalid-name': {
    errno: 'EINVAL',
    meaning:
      'a UUID, parent, type or attribute name is malformed, or would lead outside its directory',
  },
  'invalid-argument': {
    errno: 'EINVAL',
    meaning:
      'the request lacks something it needs or combines things that exclude each other (a type without a parent, a type beside a JSON document)',
  },
  'invalid-config': {
    errno: 'EINVAL',
    meaning: 'a definition (file or JSON document) is not valid',
  },
  'invalid-index': { errno: 'ERANGE', meaning: 'an attribute index is past the end of the list' },
  'invalid-id-list': {
    errno: 'EINVAL',
    meaning: 'an AP id list ("5,0x47,10-12") cannot be read',
  },
  'invalid-xml': {
    errno: 'EINVAL',
    meaning: 'XML input is malformed or not the document expected',
  },
  'reserved-name': {
    errno: 'EINVAL',
    meaning:
      "a parent name that is one of the config directory's own entries (scripts.d, the .# temp files): a definition there could never be listed or removed",
  },
  'control-character': {
    errno: 'EINVAL',
    meaning:
      'a name, type or attribute (name or value) holds a control character (U+0000-U+001F, U+007F-U+009F), an invisible formatting character or a lone surrogate',
  },
  'core-attribute': {
    errno: 'EINVAL',
    meaning:
      "an attribute name is one of the device core's files (remove, mdev_type, driver, subsystem, iommu_group, uevent, power, ...), not the vendor driver's",
  },
  'file-too-large': {
    errno: 'EFBIG',
    meaning: 'a JSON document (--jsonfile, a definition) is larger than 1 MiB',
  },
  // ---- definitions
  'config-symlink': {
    errno: 'ELOOP',
    meaning:
      'a definition or parent directory in the config directory is a symbolic link, which is never followed',
  },
  'not-defined': { errno: 'ENOENT', meaning: 'no definition matches the UUID (and parent)' },
  'already-defined': { errno: 'EEXIST', meaning: 'the device is defined already' },
  ambiguous: {
    errno: 'EINVAL',
    meaning: 'several definitions match the UUID; name the parent',
  },
  'type-mismatch': {
    errno: 'EINVAL',
    meaning:
      'the type asked for differs from the type the device is defined or running with, which cannot change here',
  },
  // ---- devices and parents
  'device-unknown': {
    errno: 'ENODEV',
    meaning: 'no mediated device with this UUID is running or defined',
  },
  'parent-missing': {
    errno: 'ENODEV',
    meaning: 'no such parent device is registered with the mdev core',
  },
  'type-unsupported': { errno: 'ENOENT', meaning: 'the parent does not offer this mdev type' },
  'already-active': { errno: 'EEXIST', meaning: 'a device with this UUID is running already' },
  'no-instances': {
    errno: 'EUSERS',
    meaning:
      "the type's available_instances reads 0, so the device is not even tried (as mdevctl); EUSERS is the mdev core's answer for a type with nothing left",
  },
  'not-active': { errno: 'ENODEV', meaning: 'the device is not running' },
  'attribute-missing': {
    errno: 'ENOENT',
    meaning: 'the running device has no such attribute file',
  },
  'hostdev-unsupported': {
    errno: 'EINVAL',
    meaning:
      'libvirt would refuse this <hostdev>: a device API it cannot assign, or display/ramfb on a model without them',
  },
  // ---- scripts and the host itself
  'callout-refused': {
    errno: 'ECANCELED',
    meaning: 'a callout script refused the operation (exit status not 0 in its pre event)',
  },
  'callout-failed': {
    errno: 'EIO',
    meaning: 'a callout script could not be run, failed, or printed something unreadable',
  },
  'callout-timeout': {
    errno: 'ETIMEDOUT',
    meaning: 'a callout script ran past its time limit and was killed',
  },
  'live-modify-unsupported': {
    errno: 'EOPNOTSUPP',
    meaning: 'no callout script can change this running device (modify --live)',
  },
  environment: {
    errno: 'ENOENT',
    meaning: 'a directory mdevctl requires is missing (an installation problem)',
  },
  'sysfs-malformed': {
    errno: 'EIO',
    meaning: 'sysfs shows something the library cannot read (a number, a mask, a missing link)',
  },
  // ---- s390 vfio-ap
  'not-ap-host': { errno: 'ENODEV', meaning: 'there is no AP bus: not an s390 host with crypto' },
  'not-matrix-device': {
    errno: 'EINVAL',
    meaning: 'the mediated device is not a vfio_ap matrix device',
  },
  'id-out-of-range': {
    errno: 'ENODEV',
    meaning: "an adapter or domain id is above the host's highest (ap_max_*_id)",
  },
  'queue-in-use': {
    errno: 'EADDRINUSE',
    meaning: 'another matrix device holds the queue (adapter.domain)',
  },
  'queue-host-owned': {
    errno: 'EADDRNOTAVAIL',
    meaning: "the host's drivers own the queue (apmask and aqmask); reserve it for guests first",
  },
  'queue-assigned': {
    errno: 'EBUSY',
    meaning: 'giving adapters or domains back to the host would take queues from matrix devices',
  },
  // ---- NVIDIA SR-IOV VF vGPUs (src/host/vf-vgpu)
  'not-vgpu-gpu': {
    errno: 'ENODEV',
    meaning:
      'the address is not an NVIDIA GPU with SR-IOV vGPUs (no such PCI device, no SR-IOV, or it uses the mdev bus)',
  },
  'vf-not-enabled': {
    errno: 'ENODEV',
    meaning: "the GPU's SR-IOV virtual functions are not enabled: run sriov-manage -e",
  },
  'no-such-vf': { errno: 'ENODEV', meaning: 'the GPU has no VF with that index or address' },
  'unknown-vgpu-type': {
    errno: 'ENOENT',
    meaning: 'the GPU offers no vGPU type of that id or name',
  },
  'vgpu-size-mismatch': {
    errno: 'EIO',
    meaning:
      'the GPU runs vGPUs of another framebuffer size and, in its default equal-size mode, takes one size at a time (EIO: what the driver answers)',
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
  'vf-pinned': { errno: 'EEXIST', meaning: 'another definition is pinned to the VF' },
  'vf-in-use': {
    errno: 'EBUSY',
    meaning: 'the VF is in use by a VM: its vGPU cannot change until the VM lets go',
  },
  'foreign-vgpu': {
    errno: 'EPERM',
    meaning:
      'the vGPU belongs to another owner, or was not made by mdevkit; removing it needs force',
  },
  'vgpu-refused': {
    errno: 'EIO',
    meaning: 'the driver refused the vGPU for a reason sysfs does not show (see the kernel log)',
  },
  // ---- desired state (src/host/desired)
  'config-unreadable': { errno: 'ENOENT', meaning: 'the host configuration file cannot be read' },
  'config-invalid': {
    errno: 'EINVAL',
    meaning:
      'the host configuration is not YAML, or a field is unknown, of the wrong type, or a hostile name',
  },
  'config-unknown': {
    errno: 'ENOENT',
    meaning: 'the file has no configuration of the name asked for',
  },
  'request-impossible': {
    errno: 'EINVAL',
    meaning:
      'a request no parent it selects could ever satisfy (a type none has, aggregation on a type that does not aggregate)',
  },
  locked: { errno: 'EBUSY', meaning: 'another apply holds the host (its pid and owner are named)' },
  'record-unusable': { errno: 'EIO', meaning: 'the ownership record cannot be read or written' },
  'not-owner': {
    errno: 'EPERM',
    meaning: 'the device was made by another owner (or by another tool); force to remove it anyway',
  },
} as const satisfies Record<string, { errno: ErrnoCode; meaning: string }>;

export type LibraryErrorCode = keyof typeof LIBRARY_ERRORS;

/** Every code an MdevError may carry: the kernel's errno names and the library's own. */
export type HostErrorCode = ErrnoCode | LibraryErrorCode;

export function isLibraryErrorCode(code: unknown): code is LibraryErrorCode {
  return typeof code === 'string' && Object.hasOwn(LIBRARY_ERRORS, code);
}

/** The errno a code means: itself for the kernel's, the table's for the library's. */
export function errnoOfCode(code: HostErrorCode): ErrnoCode {
  return isErrnoCode(code) ? code : LIBRARY_ERRORS[code].errno;
}

/** What the objects involved in a failure are called in `context`. */
export type ErrorContextKey =
  | 'uuid'
  | 'parent'
  | 'type'
  | 'attribute'
  | 'file'
  | 'value'
  | 'path'
  | 'script'
  | 'exitStatus'
  | 'timeout'
  | 'index'
  | 'queue'
  | 'owner'
  | 'adapter'
  | 'domain'
  | 'controlDomain'
  | 'max'
  | 'gpu'
  | 'vf'
  | 'holder'
  | 'line'
  | 'column'
  | 'field'
  | 'config'
  | 'pid';

export type ErrorContext = Readonly<Partial<Record<ErrorContextKey, string>>>;

/** Context as callers have it at hand: absent values are left out, numbers written in decimal. */
export type ContextInput = Partial<Record<ErrorContextKey, string | number | undefined>>;

function contextOf(input: ContextInput | undefined): ErrorContext {
  const out: Partial<Record<ErrorContextKey, string>> = {};
  if (input === undefined) return out;
  for (const [k, v] of Object.entries(input) as [ErrorContextKey, string | number | undefined][]) {
    if (v !== undefined) out[k] = String(v);
  }
  return out;
}

export interface MdevErrorOptions {
  readonly cause?: unknown;
  readonly context?: ContextInput;
}

/** A failure of a host operation: stable `code`, its `errno`, the objects in `context`, words in `message`. */
export class MdevError extends Error {
  override readonly name: string = 'MdevError';
  readonly code: HostErrorCode;
  readonly errno: ErrnoCode;
  readonly context: ErrorContext;
  constructor(code: HostErrorCode, message: string, options: MdevErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.errno = errnoOfCode(code);
    this.context = contextOf(options.context);
  }

  /**
   * A failure explained by `cause`: the code is the cause's own (so the
   * kernel's errno passes unchanged through any number of wrappers), or
   * `fallback` when the cause carries none.
   */
  static causedBy(
    cause: unknown,
    message: string,
    context?: ContextInput,
    fallback: HostErrorCode = 'EIO',
  ): MdevError {
    return new MdevError(codeOf(cause) ?? fallback, message, {
      cause,
      ...(context === undefined ? {} : { context }),
    });
  }
}

/** The code an error carries: an MdevError's, or an errno (ours or node:fs's); undefined for a bug. */
export function codeOf(err: unknown): HostErrorCode | undefined {
  if (err instanceof MdevError) return err.code;
  return errnoCodeIn(err);
}

/** The message with its causes, as one line ("Error removing device U: Device or resource busy"). */
export function messageChain(err: Error): string {
  const parts = [err.message];
  for (
    let c: unknown = err.cause, depth = 0;
    c instanceof Error && depth < 8;
    depth++, c = c.cause
  ) {
    const errno = c instanceof MdevError ? undefined : errnoCodeIn(c);
    parts.push(errno === undefined ? c.message : strerror(errno));
  }
  return parts.join(': ');
}

/**
 * A failure as clients see it, the same in the API's error body and the
 * CLI's MDEVKIT_ERROR_FORMAT=json line.
 */
export interface ErrorRecord<Code extends string = HostErrorCode> {
  code: Code;
  errno: ErrnoCode;
  errnoNumber: number;
  strerror: string;
  message: string;
  path?: string;
  context?: ErrorContext;
}

/** The record of an error that carries a code; undefined for anything else (a bug). */
export function errorRecord(err: unknown): ErrorRecord | undefined {
  const code = codeOf(err);
  if (code === undefined) return undefined;
  const errno = errnoOfCode(code);
  const record: ErrorRecord = {
    code,
    errno,
    errnoNumber: errnoNumber(errno),
    strerror: strerror(errno),
    message: err instanceof Error ? messageChain(err) : String(err),
  };
  if (err instanceof ErrnoError && err.path !== undefined) record.path = err.path;
  if (err instanceof MdevError && Object.keys(err.context).length > 0) record.context = err.context;
  return record;
}

/** The environment variable that asks the CLI for machine-readable errors. */
export const ERROR_FORMAT_VARIABLE = 'MDEVKIT_ERROR_FORMAT';

/**
 * The CLI's error line when the caller asked for JSON (MDEVKIT_ERROR_FORMAT=json):
 * `{"error":{...}}` with the same record the API answers, so scripts match
 * on `code` instead of parsing words. Undefined when not asked for, or for
 * an error without a code (a bug, which keeps its stack).
 */
export function jsonErrorLine(
  env: Readonly<Record<string, string | undefined>>,
  err: unknown,
): string | undefined {
  if (env[ERROR_FORMAT_VARIABLE] !== 'json') return undefined;
  const record = errorRecord(err);
  return record === undefined ? undefined : `${JSON.stringify({ error: record })}\n`;
}
