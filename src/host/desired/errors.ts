/**
 * Failures of the desired-state engine. Each has a stable `code` that
 * callers (CLI exit codes, the agent's HTTP table) match on, and a
 * structured `context` (file, line, column, field, device, parent, ...);
 * the message is for people and nothing branches on it.
 */

export type DesiredErrorCode =
  /** The configuration file cannot be read. */
  | 'config-unreadable'
  /** Not YAML, or YAML whose shape or values the schema refuses. */
  | 'config-invalid'
  /** `--config NAME` names no configuration in the file. */
  | 'config-unknown'
  /** A request no parent of this host can ever satisfy (unknown type, aggregation above the type's maximum). */
  | 'request-impossible'
  /** Another apply holds the host's lock. */
  | 'locked'
  /** The ownership record cannot be read or written. */
  | 'record-unusable'
  /** A device is not this owner's, and no force was given. */
  | 'not-owner';

export interface DesiredErrorContext {
  readonly file?: string;
  readonly line?: number;
  readonly column?: number;
  /** Dotted path of the field in the configuration ("configs.default.entries[1].devices[0].type"). */
  readonly field?: string;
  readonly config?: string;
  readonly device?: string;
  readonly parent?: string;
  readonly type?: string;
  readonly owner?: string;
  readonly pid?: number;
  readonly path?: string;
}

export class DesiredError extends Error {
  override readonly name = 'DesiredError';
  constructor(
    readonly code: DesiredErrorCode,
    message: string,
    readonly context: DesiredErrorContext = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
