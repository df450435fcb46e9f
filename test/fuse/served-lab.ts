import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after } from 'node:test';
import { MDEVKIT_BIN } from '../support/cli.js';
import { hasFuse, isRoot } from '../support/capabilities.js';

/** What a FUSE test needs of the machine (CI has both, as root). */
export const FUSE_NEEDS = { root: isRoot, fuse: hasFuse };

export interface ServedLab {
  /** The lab directory: DIR/sys is the mount, DIR/etc/mdevctl.d the config dir. */
  readonly dir: string;
  readonly sys: string;
  readonly configDir: string;
  readonly child: ChildProcess;
  /** stdout after the ready line (with --monitor: uevents). */
  output(): string;
  /** stderr so far. */
  errors(): string;
  /** SIGTERM and wait; resolves with the exit status. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /**
   * Stop and clean up. Register it with the test's or suite's `after`
   * yourself: node:test's after() called inside a before hook runs as soon
   * as that hook ends.
   */
  close(): Promise<void>;
}

/**
 * Start `bin/mdevkit lab serve --mount DIR` in a child process and wait for
 * its "ready DIR" line. The server never runs in the test's own process:
 * the tests make synchronous fs calls on the mount, which would wait for a
 * server that cannot run until they return. Stopped when the file ends.
 */
export async function serveLab(extraArgs: string[] = []): Promise<ServedLab> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdevkit-fuse-'));
  const lab = await serveLabIn(dir, extraArgs);
  return {
    ...lab,
    async close() {
      // Unmount first, then remove: rm -r must not walk into a live mount.
      await lab.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The same in a given directory, which the caller removes. */
export async function serveLabIn(
  dir: string,
  extraArgs: string[] = [],
  timeoutMs = 15000,
): Promise<ServedLab> {
  const child = spawn(
    process.execPath,
    [MDEVKIT_BIN, 'lab', 'serve', '--mount', dir, ...extraArgs],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  let exited: Promise<number | null> | undefined;
  const exitPromise = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const readyLine = `ready ${path.resolve(dir)}\n`;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`lab serve not ready after ${timeoutMs} ms: ${err}`)),
      timeoutMs,
    );
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes(readyLine)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exitPromise.then((code) => {
      clearTimeout(timer);
      reject(new Error(`lab serve exited with ${code} before ready: ${err}`));
    });
  });
  const lab: ServedLab = {
    dir: path.resolve(dir),
    sys: path.join(path.resolve(dir), 'sys'),
    configDir: path.join(path.resolve(dir), 'etc', 'mdevctl.d'),
    child,
    output: () => out.slice(out.indexOf(readyLine) + readyLine.length),
    errors: () => err,
    stop(signal = 'SIGTERM') {
      if (exited === undefined) {
        child.kill(signal);
        exited = exitPromise;
      }
      return exited;
    },
    async close() {
      await lab.stop();
    },
  };
  return lab;
}

/** A profile file with the given devices (removed when the test file ends; call at file level). */
export function writeProfile(
  devices: { driver: string; options?: Record<string, unknown> }[],
): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdevkit-profile-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'profile.json');
  fs.writeFileSync(file, JSON.stringify({ name: 'fuse-test', devices }));
  return file;
}

/**
 * Wait until `condition` holds (output of a served lab arrives through a
 * pipe, after the synchronous calls that caused it have returned).
 */
export async function eventually(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) return; // let the caller's assertion say what is missing
    await new Promise((r) => setTimeout(r, 10));
  }
}
