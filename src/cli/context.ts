/**
 * What a command may touch: its output streams and environment. Commands
 * write here, never to process.stdout, so tests capture their output.
 */
export interface Writable {
  write(chunk: string): unknown;
}

export interface CommandContext {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  /** Standard input as text (read lazily; --jsonfile /dev/stdin, hooks). */
  readonly readStdin: () => string;
}

/** The user's mistake: printed as "error: message" plus usage, exit 2, no stack. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(message);
  }
}

/** A failure to report in words (exit 1), no stack; `cause` keeps a coded error's code for the JSON report. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    message: string,
    readonly exitCode = 1,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
