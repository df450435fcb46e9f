/**
 * Failures of the desired-state engine: MdevErrors (src/host/errors.ts)
 * with the engine's own codes from the library's one table, so the CLI and
 * the agent report them as every other library failure — a stable `code`,
 * its errno, the objects in `context` (file, line, column, field, config,
 * uuid, owner, pid) — and nothing branches on the words.
 */
import { MdevError, type ContextInput } from '../errors.js';

export type DesiredErrorCode =
  | 'config-unreadable'
  | 'config-invalid'
  | 'config-unknown'
  | 'request-impossible'
  | 'locked'
  | 'record-unusable'
  | 'not-owner';

export class DesiredError extends MdevError {
  override readonly name = 'DesiredError';
  declare readonly code: DesiredErrorCode;
  constructor(
    code: DesiredErrorCode,
    message: string,
    context: ContextInput = {},
    options: { cause?: unknown } = {},
  ) {
    super(code, message, { context, ...(options.cause !== undefined && { cause: options.cause }) });
  }
}
