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

/** The process's own streams, environment and directory. */
export function processIo(): CommandIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    readStdin: (maxBytes) =>
      maxBytes === undefined
        ? fs.readFileSync(0, 'utf8')
        : readFdLimited(0, '/dev/stdin', maxBytes),
  };
}
