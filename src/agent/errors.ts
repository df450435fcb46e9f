import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { ErrnoError, errnoNumber, isErrnoCode, strerror, type ErrnoCode } from '../common/errno.js';
import { ConfigError } from '../host/config-store.js';
import { AttributeWriteError, MdevError, type MdevErrorCode } from '../host/devices.js';
import { UnsafeNameError } from '../host/paths.js';

/**
 * Every error the API returns has one shape: the errno name the kernel (or
 * the agent, in the kernel's vocabulary) gave, its number and text, what
 * failed, and the objects involved — so a script can match on `errno` and a
 * person can read `message`.
 *
 *     { "error": { "errno": "EEXIST", "errnoNumber": 17, "strerror": "File exists",
 *                  "message": "...", "operation": "start",
 *                  "context": { "uuid": "...", "parent": "...", "type": "..." } } }
 */
export interface ApiErrorBody {
  error: {
    errno: ErrnoCode;
    errnoNumber: number;
    strerror: string;
    message: string;
    operation?: string;
    path?: string;
    detail?: string;
    context?: Record<string, string>;
    issues?: unknown;
  };
}

/** An error the agent raises itself, with the HTTP status it means. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly errno: ErrnoCode,
    message: string,
    readonly context?: Record<string, string>,
  ) {
    super(message);
  }
}

/**
 * An ErrnoError raised while doing `operation` on the objects in `context`.
 * Route handlers wrap library calls with `during()` so the answer names what
 * was being done and to what.
 */
export class OperationError extends Error {
  override readonly name = 'OperationError';
  constructor(
    override readonly cause: ErrnoError,
    readonly operation: string,
    readonly context: Record<string, string>,
  ) {
    super(cause.message);
  }
}

/** HTTP status for a kernel errno: the client's mistake, a conflict with state, or ours. */
export function statusOfErrno(code: ErrnoCode): number {
  switch (code) {
    case 'ENOENT':
    case 'ENODEV':
    case 'ENXIO':
      return 404;
    case 'EEXIST':
    case 'EBUSY':
    case 'EUSERS':
    case 'ENOSPC':
    case 'EADDRINUSE':
    case 'ENOTEMPTY':
      return 409;
    case 'EINVAL':
    case 'ERANGE':
    case 'E2BIG':
    case 'ENAMETOOLONG':
    case 'EISDIR':
    case 'ENOTDIR':
      return 400;
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return 403;
    case 'EOPNOTSUPP':
    case 'ENOSYS':
      return 501;
    default:
      return 500;
  }
}

function body(
  errno: ErrnoCode,
  message: string,
  extra: Record<string, unknown> = {},
): ApiErrorBody {
  const e: ApiErrorBody['error'] = {
    errno,
    errnoNumber: errnoNumber(errno),
    strerror: strerror(errno),
    message,
  };
  for (const [k, v] of Object.entries(extra))
    if (v !== undefined) (e as unknown as Record<string, unknown>)[k] = v;
  return { error: e };
}

/** The errno inside a cause chain, if any (e.g. the store's EBUSY behind "Error removing device"). */
function causeErrno(err: unknown): ErrnoCode | undefined {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (e instanceof ErrnoError) return e.code;
    const code = (e as { code?: unknown }).code;
    if (isErrnoCode(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The kernel's errno when the failure carries one, else the errno that means the same. */
// Partial: a code the host library adds later maps to EIO until listed here.
const MDEV_ERRNO: Partial<Record<MdevErrorCode, [ErrnoCode, number]>> = {
  INVALID_NAME: ['EINVAL', 400],
  ENVIRONMENT: ['EIO', 500],
  INVALID_CONFIG: ['EINVAL', 400],
  NOT_DEFINED: ['ENOENT', 404],
  ALREADY_DEFINED: ['EEXIST', 409],
  AMBIGUOUS: ['EINVAL', 409],
  UNDERSPECIFIED: ['EINVAL', 400],
  CONFLICT: ['EEXIST', 409],
  NO_PARENT: ['ENODEV', 404],
  NO_TYPE: ['ENOENT', 404],
  NO_INSTANCES: ['ENOSPC', 409],
  ALREADY_ACTIVE: ['EEXIST', 409],
  NOT_ACTIVE: ['ENODEV', 404],
  INVALID_INDEX: ['ERANGE', 400],
  INVALID_ATTRIBUTE: ['EINVAL', 400],
  SYSFS: ['EIO', 500],
  IO: ['EIO', 500],
  CALLOUT: ['ECANCELED', 409],
};

function mdevErrno(err: MdevError): { errno: ErrnoCode; status: number } {
  const inner = err instanceof AttributeWriteError ? undefined : causeErrno(err.cause);
  if (inner !== undefined) return { errno: inner, status: statusOfErrno(inner) };
  const [errno, status] = MDEV_ERRNO[err.code] ?? ['EIO', 500];
  return { errno, status };
}

/** The message with its causes, as mdevctl prints "Caused by:". */
function messageChain(err: Error): string {
  const parts = [err.message];
  for (
    let c: unknown = err.cause, depth = 0;
    c instanceof Error && depth < 8;
    depth++, c = c.cause
  ) {
    parts.push(c instanceof ErrnoError ? (c.detail ?? strerror(c.code)) : c.message);
  }
  return parts.join(': ');
}

/** The errno name an error carries, for the metrics ("unknown" for a bug). */
export function errnoOf(err: unknown): string {
  if (err instanceof OperationError) return err.cause.code;
  if (err instanceof ErrnoError) return err.code;
  if (err instanceof ApiError) return err.errno;
  if (err instanceof MdevError) return mdevErrno(err).errno;
  if (err instanceof UnsafeNameError) return 'EINVAL';
  if (err instanceof ConfigError) return 'EINVAL';
  const code = (err as { code?: unknown } | null)?.code;
  return isErrnoCode(code) ? code : 'unknown';
}

/** Map any error to a status and body; unknown errors are bugs and are logged. */
export function errorResponse(
  err: unknown,
  req: FastifyRequest,
): { status: number; body: ApiErrorBody } {
  if (err instanceof OperationError) {
    const e = err.cause;
    return {
      status: statusOfErrno(e.code),
      body: body(
        e.code,
        `${err.operation} failed: ${strerror(e.code)}${e.detail === undefined ? '' : ` (${e.detail})`}`,
        {
          operation: err.operation,
          path: e.path,
          detail: e.detail,
          context: err.context,
        },
      ),
    };
  }
  if (err instanceof ErrnoError) {
    return {
      status: statusOfErrno(err.code),
      body: body(err.code, err.detail ?? err.message, { path: err.path, detail: err.detail }),
    };
  }
  if (err instanceof ApiError) {
    return { status: err.status, body: body(err.errno, err.message, { context: err.context }) };
  }
  if (err instanceof MdevError) {
    const { errno, status } = mdevErrno(err);
    const extra: Record<string, string> = {};
    if (err instanceof AttributeWriteError) {
      Object.assign(extra, {
        uuid: err.uuid,
        parent: err.parent,
        type: err.type,
        attribute: err.attribute,
      });
    }
    return {
      status,
      body: body(errno, messageChain(err), {
        operation: (req.routeOptions.config as { operation?: string } | undefined)?.operation,
        context: Object.keys(extra).length > 0 ? extra : undefined,
      }),
    };
  }
  if (err instanceof UnsafeNameError || err instanceof ConfigError) {
    return { status: 400, body: body('EINVAL', err.message) };
  }
  if (hasZodFastifySchemaValidationErrors(err)) {
    const issues = err.validation.map((v) => ({
      path: `${err.validationContext ?? ''}${v.instancePath.replace(/\//g, '.')}`,
      message: v.message,
    }));
    const first = issues[0];
    return {
      status: 400,
      body: body(
        'EINVAL',
        first === undefined
          ? 'invalid request'
          : `invalid request: ${first.path}: ${first.message}`,
        { issues },
      ),
    };
  }
  const fe = err as Partial<FastifyError>;
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    // Fastify's own refusals: malformed JSON, wrong content type, body too large.
    const errno: ErrnoCode =
      fe.statusCode === 413 ? 'E2BIG' : fe.statusCode === 404 ? 'ENOENT' : 'EINVAL';
    return { status: fe.statusCode, body: body(errno, fe.message ?? 'bad request') };
  }
  req.log.error({ err }, 'internal error');
  return { status: 500, body: body('EIO', 'internal error in the agent (see its log)') };
}

/** The answer to a refusal made before any route (a malformed request, headers too large). */
export function apiErrorAnswer(err: ApiError): { status: number; body: ApiErrorBody } {
  return { status: err.status, body: body(err.errno, err.message, { context: err.context }) };
}

export function sendError(err: unknown, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { status, body: b } = errorResponse(err, req);
  return reply.code(status).type('application/json; charset=utf-8').send(b);
}

/** Run a library call, naming the operation and objects should it fail with an errno. */
export function during<T>(operation: string, context: Record<string, string>, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ErrnoError) throw new OperationError(err, operation, context);
    throw err;
  }
}
