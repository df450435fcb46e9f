import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { ErrnoError, errnoNumber, strerror, type ErrnoCode } from '../common/errno.js';
import { errorRecord, errnoOfCode, type ErrorRecord, type HostErrorCode } from '../host/errors.js';

/**
 * Every error the API returns has one shape: the stable `code` (the
 * kernel's errno name, a host-library code such as "queue-in-use", or one
 * of the agent's own below), the errno it means with its number and text,
 * what failed, and the objects involved — so a script can match on `code`
 * or `errno` and a person can read `message`.
 *
 *     { "error": { "code": "EEXIST", "errno": "EEXIST", "errnoNumber": 17,
 *                  "strerror": "File exists", "message": "...", "operation": "start",
 *                  "context": { "uuid": "...", "parent": "...", "type": "..." } } }
 *
 * The HTTP status of every code is in one table, HTTP_STATUS: a code the
 * library or the agent adds without a status there does not compile.
 */
export interface ApiErrorBody {
  error: ErrorRecord<ApiErrorCode> & {
    operation?: string;
    issues?: unknown;
  };
}

/** What the agent itself refuses, before or beside the host library. */
const AGENT_ERRORS = {
  'route-unknown': 'ENOENT',
  'not-aggregating': 'ENOENT',
  'invalid-request': 'EINVAL',
  'request-too-large': 'E2BIG',
  unauthorized: 'EACCES',
  'host-refused': 'EACCES',
  'origin-refused': 'EACCES',
  'uri-too-long': 'ENAMETOOLONG',
  'headers-too-large': 'E2BIG',
  'request-timeout': 'ETIMEDOUT',
  busy: 'EAGAIN',
  internal: 'EIO',
} as const satisfies Record<string, ErrnoCode>;

export type AgentErrorCode = keyof typeof AGENT_ERRORS;

/** Every code an API error can carry. */
export type ApiErrorCode = HostErrorCode | AgentErrorCode;

// The agent's codes must not reuse a library code's name: its errno would come from the wrong table.
const agentCodesAreOwn: [Extract<AgentErrorCode, HostErrorCode>] extends [never] ? true : never =
  true;
void agentCodesAreOwn;

/**
 * The HTTP status of each code: 400 the request is wrong, 401/403 not
 * allowed, 404 no such thing, 409 the host's state refuses it, 5xx the
 * host or the agent failed.
 */
export const HTTP_STATUS: Readonly<Record<ApiErrorCode, number>> = {
  // the kernel's errnos
  EPERM: 403,
  EACCES: 403,
  EROFS: 403,
  ENOENT: 404,
  ENODEV: 404,
  ENXIO: 404,
  ENODATA: 404,
  EEXIST: 409,
  EBUSY: 409,
  EUSERS: 409,
  ENOSPC: 409,
  EADDRINUSE: 409,
  EADDRNOTAVAIL: 409,
  ENOTEMPTY: 409,
  ECANCELED: 409,
  EAGAIN: 503,
  ETIMEDOUT: 504,
  EINVAL: 400,
  ERANGE: 400,
  E2BIG: 400,
  EFBIG: 413,
  ENAMETOOLONG: 400,
  EISDIR: 400,
  ENOTDIR: 400,
  ELOOP: 400,
  EOPNOTSUPP: 501,
  ENOSYS: 501,
  EIO: 500,
  EXDEV: 500,
  EBADF: 500,
  EFAULT: 500,
  ENOMEM: 500,
  // the host library's (src/host/errors.ts)
  'invalid-name': 400,
  'invalid-argument': 400,
  'invalid-config': 400,
  'invalid-index': 400,
  'invalid-id-list': 400,
  'invalid-xml': 400,
  'reserved-name': 400,
  'control-character': 400,
  'core-attribute': 400,
  'file-too-large': 413,
  'config-symlink': 409,
  'not-defined': 404,
  'already-defined': 409,
  ambiguous: 409,
  'type-mismatch': 409,
  'device-unknown': 404,
  'parent-missing': 404,
  'type-unsupported': 404,
  'already-active': 409,
  'no-instances': 409,
  'not-active': 404,
  'attribute-missing': 400,
  'hostdev-unsupported': 400,
  'callout-refused': 409,
  'callout-failed': 500,
  'callout-timeout': 504,
  'live-modify-unsupported': 501,
  environment: 500,
  'sysfs-malformed': 500,
  'not-ap-host': 404,
  'not-matrix-device': 400,
  'id-out-of-range': 400,
  'queue-in-use': 409,
  'queue-host-owned': 409,
  'queue-assigned': 409,
  'not-vgpu-gpu': 404,
  'vf-not-enabled': 409,
  'no-such-vf': 404,
  'unknown-vgpu-type': 404,
  'vgpu-size-mismatch': 409,
  'vgpu-no-room': 409,
  'no-free-vf': 409,
  'vf-taken': 409,
  'vf-pinned': 409,
  'vf-in-use': 409,
  'foreign-vgpu': 403,
  'vgpu-refused': 409,
  'config-unreadable': 400,
  'config-invalid': 400,
  'config-unknown': 400,
  'request-impossible': 400,
  locked: 409,
  'record-unusable': 500,
  'not-owner': 403,
  // the agent's
  'origin-refused': 403,
  'uri-too-long': 414,
  'headers-too-large': 431,
  'request-timeout': 408,
  busy: 503,
  'route-unknown': 404,
  'not-aggregating': 404,
  'invalid-request': 400,
  'request-too-large': 413,
  unauthorized: 401,
  'host-refused': 403,
  internal: 500,
};

function isAgentErrorCode(code: string): code is AgentErrorCode {
  return Object.hasOwn(AGENT_ERRORS, code);
}

/** The errno a code means. */
export function errnoOfApiCode(code: ApiErrorCode): ErrnoCode {
  return isAgentErrorCode(code) ? AGENT_ERRORS[code] : errnoOfCode(code);
}

/** All codes, for the documentation and its test. */
export const API_ERROR_CODES: readonly ApiErrorCode[] = Object.keys(HTTP_STATUS) as ApiErrorCode[];

/** An error the agent raises itself; status and errno come from its code. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly context?: Record<string, string>,
  ) {
    super(message);
  }
}

/**
 * An ErrnoError raised while doing `operation` on the objects in `context`.
 * Route handlers wrap their own sysfs writes with `during()` so the answer
 * names what was being done and to what.
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

function recordOf(code: ApiErrorCode, message: string): ErrorRecord<ApiErrorCode> {
  const errno = errnoOfApiCode(code);
  return { code, errno, errnoNumber: errnoNumber(errno), strerror: strerror(errno), message };
}

function answer(
  status: number,
  record: ErrorRecord<ApiErrorCode>,
  extra: { operation?: string | undefined; context?: object | undefined; issues?: unknown } = {},
): { status: number; body: ApiErrorBody } {
  const e: ApiErrorBody['error'] = { ...record };
  if (extra.operation !== undefined) e.operation = extra.operation;
  if (extra.context !== undefined && Object.keys(extra.context).length > 0)
    e.context = extra.context;
  if (extra.issues !== undefined) e.issues = extra.issues;
  return { status, body: { error: e } };
}

/** The errno name an error carries, for the metrics ("unknown" for a bug). */
export function errnoOf(err: unknown): string {
  return classify(err)?.body.error.errno ?? 'unknown';
}

/** Map any error to a status and body; unknown errors are bugs and are logged. */
export function errorResponse(
  err: unknown,
  req: FastifyRequest,
): { status: number; body: ApiErrorBody } {
  const known = classify(err);
  if (known !== undefined) {
    // A library failure names the route's operation ("create", "start").
    const operation = (req.routeOptions.config as { operation?: string } | undefined)?.operation;
    if (known.body.error.operation === undefined && operation !== undefined && known.fromLibrary)
      known.body.error.operation = operation;
    return { status: known.status, body: known.body };
  }
  req.log.error({ err }, 'internal error');
  return answer(500, recordOf('internal', 'internal error in the agent (see its log)'));
}

/** The host-library code a schema refinement put in its issue's params, if any. */
function libraryCodeOf(params: unknown): HostErrorCode | undefined {
  const code = (params as { params?: { code?: unknown } } | undefined)?.params?.code;
  return code === 'control-character' ? code : undefined;
}

/** Status and body for an error that carries a code; undefined for a bug. */
function classify(
  err: unknown,
): { status: number; body: ApiErrorBody; fromLibrary?: boolean } | undefined {
  if (err instanceof OperationError) {
    const code = err.cause.code;
    return answer(HTTP_STATUS[code], recordOf(code, `${err.operation} failed: ${strerror(code)}`), {
      operation: err.operation,
      context: {
        ...err.context,
        ...(err.cause.path === undefined ? {} : { file: err.cause.path }),
      },
    });
  }
  if (err instanceof ApiError) {
    return answer(HTTP_STATUS[err.code], recordOf(err.code, err.message), {
      context: err.context,
    });
  }
  if (hasZodFastifySchemaValidationErrors(err)) {
    const issues = err.validation.map((v) => ({
      path: `${err.validationContext ?? ''}${v.instancePath.replace(/\//g, '.')}`,
      message: v.message,
    }));
    // A refinement that applies a host-library rule names the library's code
    // (schemas.ts), so the API and the CLI refuse the same input alike; such
    // an issue is the one reported ("mtty\t" has whitespace too).
    const coded = err.validation.findIndex((v) => libraryCodeOf(v.params) !== undefined);
    const code = libraryCodeOf(err.validation[coded]?.params) ?? 'invalid-request';
    const first = issues[Math.max(coded, 0)];
    const message =
      first === undefined ? 'invalid request' : `invalid request: ${first.path}: ${first.message}`;
    return answer(HTTP_STATUS[code], recordOf(code, message), { issues });
  }
  // The host library's errors, and the port's errno errors, carry their code.
  const record = errorRecord(err);
  if (record !== undefined) {
    return { ...answer(HTTP_STATUS[record.code], record), fromLibrary: true };
  }
  const fe = err as Partial<FastifyError>;
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    // Fastify's own refusals: malformed JSON, wrong content type, body too large.
    const code: ApiErrorCode =
      fe.statusCode === 413
        ? 'request-too-large'
        : fe.statusCode === 404
          ? 'route-unknown'
          : 'invalid-request';
    return answer(fe.statusCode, recordOf(code, fe.message ?? 'bad request'));
  }
  return undefined;
}

/** The answer to a refusal made before any route (a malformed request, headers too large). */
export function apiErrorAnswer(err: ApiError): { status: number; body: ApiErrorBody } {
  return answer(HTTP_STATUS[err.code], recordOf(err.code, err.message), { context: err.context });
}

export function sendError(err: unknown, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { status, body: b } = errorResponse(err, req);
  return reply.code(status).type('application/json; charset=utf-8').send(b);
}

/** Run a sysfs write of the agent's own, naming the operation and objects should it fail with an errno. */
export function during<T>(operation: string, context: Record<string, string>, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ErrnoError) throw new OperationError(err, operation, context);
    throw err;
  }
}
