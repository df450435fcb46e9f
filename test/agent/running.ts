import { spawn, type ChildProcess } from 'node:child_process';
import { MDEVKIT_BIN } from '../support/cli.js';

/** A running `mdevkit agent` and what it printed. */
export interface RunningAgent {
  readonly child: ChildProcess;
  readonly url: string;
  readonly stdout: () => string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** Start bin/mdevkit agent and wait for its "listening on" line. */
export function startAgent(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunningAgent> {
  const child = spawn(process.execPath, [MDEVKIT_BIN, 'agent', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`agent did not start in time:\n${out}\n${err}`));
    }, 15000);
    child.stderr!.on('data', (d: Buffer) => (err += d));
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      const m = /^listening on (\S+)$/m.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve({
          child,
          url: m[1]!.replace(/\/$/, ''),
          stdout: () => out,
          stop: () => {
            child.kill('SIGTERM');
            return exited;
          },
        });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`agent exited (${code}) before listening:\n${out}\n${err}`));
    });
  });
}
