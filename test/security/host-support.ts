/**
 * Shared by the host, CLI and FUSE parts of the security suite: an emulated
 * host with a config dir of its own, the command lines run in process as a
 * user runs them, and what every hostile input's outcome must satisfy.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runProgram } from '../../src/cli/command.js';
import { MDEVKIT } from '../../src/cli/main.js';
import type { CommandIo } from '../../src/ctl/io.js';
import { runMdevctl } from '../../src/ctl/mdevctl/run.js';
import type { Environment } from '../../src/host/environment.js';
import type { Lab } from '../../src/sim/lab.js';
import { labWith } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';

/**
 * What a file outside the config dir holds. No output, warning or error
 * may ever contain a piece of it (the markers below are searched for).
 */
export const SECRET = 'zq9:$y$j9T$S3CR3Tb1ts-not-for-your-eyes:19000:0:99999:7:::';
export const SECRET_MARKERS = ['zq9', 'S3CR3T', 'j9T'];

export function assertNoSecret(text: string, what: string): void {
  for (const m of SECRET_MARKERS) {
    assert.ok(!text.includes(m), `${what} quotes the file outside: ${JSON.stringify(text)}`);
  }
}

function shmDir(): string {
  const dir = fs.mkdtempSync('/dev/shm/mdevkit-sec-host-');
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A lab host (mdpy and mtty) whose config dir lives under a fresh root. */
export interface HostLab {
  readonly lab: Lab;
  readonly env: Environment;
  /** The temporary directory holding root/ and outside/. */
  readonly dir: string;
  readonly root: string;
  readonly configDir: string;
  /** A directory beside the root that nothing may write into or quote. */
  readonly outside: string;
}

/**
 * `inMemory`: under /dev/shm when there is one — the fsyncs of thousands of
 * definition writes cost nothing there.
 */
export function hostLab(
  devices: { driver: string; options?: Record<string, unknown> }[] = [
    { driver: 'mdpy' },
    { driver: 'mtty' },
  ],
  inMemory = false,
): HostLab {
  const lab = labWith(devices);
  const dir = inMemory && fs.existsSync('/dev/shm') ? shmDir() : tmpDir('mdevkit-sec-host-');
  const root = path.join(dir, 'root');
  const configDir = path.join(root, 'etc/mdevctl.d');
  const outside = path.join(dir, 'outside');
  // mdevctl 1.4.0's directories: it (and bin/mdevctl) refuse to run without them.
  for (const d of ['callouts', 'notifiers']) {
    fs.mkdirSync(path.join(configDir, 'scripts.d', d), { recursive: true });
    fs.mkdirSync(path.join(root, 'usr/lib/mdevctl/scripts.d', d), { recursive: true });
  }
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'shadow'), `${SECRET}\n`, { mode: 0o600 });
  const env: Environment = {
    port: lab.port,
    root,
    configDir,
    calloutDirs: [path.join(configDir, 'scripts.d/callouts')],
    notifierDirs: [path.join(configDir, 'scripts.d/notifiers')],
  };
  return { lab, env, dir, root, configDir, outside };
}

export interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function captureIo(
  cwd: string,
  env: Record<string, string> = {},
  stdin: (maxBytes?: number) => string = () => '',
): { io: CommandIo; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    io: {
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
      env,
      cwd,
      readStdin: stdin,
    },
    out: () => out,
    err: () => err,
  };
}

/** `mdevctl ARGS` in process on the lab (a bug surfaces as a thrown error, failing the test). */
export function mdevctl(h: HostLab, args: string[], env: Record<string, string> = {}): Ran {
  const c = captureIo(h.dir, env);
  const code = runMdevctl(c.io, args, 'mdevctl', h.env);
  return { code, stdout: c.out(), stderr: c.err() };
}

/** `mdevkit ARGS` in process on the lab. */
export async function mdevkit(
  h: HostLab,
  args: string[],
  env: Record<string, string> = {},
  stdin: (maxBytes?: number) => string = () => '',
): Promise<Ran> {
  const c = captureIo(h.dir, env, stdin);
  const code = await runProgram(MDEVKIT, c.io, args, { host: () => h.env });
  return { code, stdout: c.out(), stderr: c.err() };
}

/** What any refusal must look like: exit 1 or 2, words on stderr, no stack trace. */
export function assertCleanRefusal(r: Ran, what: string): void {
  assert.ok(r.code === 1 || r.code === 2, `${what}: exit ${r.code}\n${r.stderr}`);
  assert.notEqual(r.stderr.trim(), '', `${what}: nothing said on stderr`);
  assertNoStack(r.stderr, what);
}

export function assertNoStack(text: string, what: string): void {
  assert.ok(!/^\s+at .+[(:]\d+/m.test(text), `${what}: a stack trace\n${text}`);
  assert.ok(!/\b(TypeError|RangeError|ReferenceError)\b/.test(text), `${what}: a bug\n${text}`);
}

/** Every path under `dir` with what it holds, for "nothing else changed" checks. */
export function treeOf(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (p: string): void => {
    const st = fs.lstatSync(p);
    if (st.isSymbolicLink()) out.set(p, `-> ${fs.readlinkSync(p)}`);
    else if (st.isDirectory()) {
      out.set(p, '<dir>');
      for (const n of fs.readdirSync(p).sort()) walk(path.join(p, n));
    } else if (st.isFile()) out.set(p, fs.readFileSync(p, 'latin1'));
    else out.set(p, '<special>');
  };
  walk(dir);
  return out;
}
