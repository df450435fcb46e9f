import * as fs from 'node:fs';
import { readFdLimited } from '../host/config-store.js';

/**
 * What a command may touch: its output streams, its environment variables,
 * its working directory and its standard input. Every command — mdevkit's
 * own (src/cli/command.ts) and the mdevctl drop-in (src/ctl/mdevctl) —
 * writes here, never to process.stdout, so tests run it in process and
 * capture what it says.
 */
export interface Writable {
  write(chunk: string): unknown;
}

export interface CommandIo {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  /**
   * Standard input as text (read lazily: --jsonfile /dev/stdin, hooks, FILE
   * "-"); with `maxBytes`, more than that fails (`file-too-large`) instead
   * of reading on.
   */
  readonly readStdin: (maxBytes?: number) => string;
}

/**
 * Characters that would act on a terminal or hide what a line says:
 * controls (newlines and tabs are layout) and the invisible formatting
 * characters (bidirectional overrides, zero-width characters).
 */
const TERMINAL_CONTROL =
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

/**
 * Text that quotes what a user, a file or a request said — an error, a
 * warning — made safe for a terminal: those characters are written as
 * `\u001b`, so a UUID argument or a file name cannot send escape sequences
 * (retitle the window, hide text, move the cursor) to whoever reads the
 * message.
 */
export function terminalSafe(text: string): string {
  return text.replace(
    TERMINAL_CONTROL,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** The process's own streams, environment and directory. */
export function processIo(): CommandIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    readStdin: readStandardInput,
  };
}

/** Standard input, to `maxBytes` when given (`file-too-large` beyond). */
function readStandardInput(maxBytes?: number): string {
  return maxBytes === undefined
    ? fs.readFileSync(0, 'utf8')
    : readFdLimited(0, '/dev/stdin', maxBytes);
}

/**
 * The process's I/O with output written straight to file descriptors 1 and
 * 2 by write(2), for a short-lived program (bin/mdevctl). process.stdout is
 * the largest module graph such a program would otherwise load (in Bun most
 * of a small command's time), and a synchronous write leaves nothing
 * buffered at exit, in either runtime, on a pipe, a file or a terminal. Not
 * for servers: a full pipe blocks the writer.
 */
export function processFdIo(): CommandIo {
  return {
    stdout: fdWriter(1),
    stderr: fdWriter(2),
    env: process.env,
    cwd: process.cwd(),
    readStdin: readStandardInput,
  };
}

function fdWriter(fd: number): Writable {
  let closed = false;
  return {
    write(s: string): void {
      if (closed || s === '') return;
      const buf = Buffer.from(s, 'utf8');
      let off = 0;
      while (off < buf.length) {
        try {
          off += fs.writeSync(fd, buf, off);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          // A non-blocking descriptor handed to us full: wait for the reader.
          if (code === 'EAGAIN') {
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
            continue;
          }
          // The reader went away (`mdevctl list | head -1`): nothing more to say.
          if (code === 'EPIPE') {
            closed = true;
            return;
          }
          throw err;
        }
      }
    },
  };
}
