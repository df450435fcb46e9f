import * as fs from 'node:fs';
import * as net from 'node:net';
import * as nodePath from 'node:path';
import type { Environment } from '../host/environment.js';

/*
 * What the agent trusts on the local filesystem, and why it may.
 *
 * The agent often runs as root. Its state directory holds the token that
 * authorizes writes and, for the in-process lab, the lab's mdevctl.d; the
 * callout and notifier directories hold scripts it runs. Whoever can change
 * any of these can act as the agent: plant a callout that runs as root,
 * swap the token, or point a definition write elsewhere through a planted
 * symlink (issue 12). So the agent starts only when each of them can be
 * changed by nobody but its own user (or root):
 *
 * - the directory itself is not a symlink, is owned by the agent's user,
 *   and is not writable by group or others;
 * - every directory above it (of its real path) is owned by root or the
 *   agent's user and is not writable by group or others, unless sticky
 *   (/tmp: others may add entries but not replace ours) — the rule
 *   OpenSSH's StrictModes applies to ~/.ssh;
 * - for script directories (which may be the system's, owned by root),
 *   root or the agent's user may own them and every script in them.
 *
 * A refusal says what is wrong and the command that fixes it.
 */

/** A state or script directory, or the token, that the agent must not trust. */
export class UntrustedPathError extends Error {
  override readonly name = 'UntrustedPathError';
  readonly code = 'untrusted-path';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

const euid = (): number => process.geteuid?.() ?? 0;

function modeText(mode: number): string {
  return `0${(mode & 0o7777).toString(8)}`;
}

function writableByOthers(st: fs.Stats): boolean {
  return (st.mode & 0o022) !== 0;
}

/** Root and the agent's own user may own what the agent trusts. */
function trustedOwner(uid: number, allowRoot: boolean): boolean {
  return uid === euid() || (allowRoot && uid === 0);
}

/** Every directory above `real` (a resolved path) up to /, as the rule above says. */
function checkAncestors(real: string, what: string, fix: string): void {
  for (let dir = nodePath.dirname(real); ; dir = nodePath.dirname(dir)) {
    const st = fs.statSync(dir);
    if (!trustedOwner(st.uid, true)) {
      throw new UntrustedPathError(
        dir,
        `refusing ${what}: ${dir}, a directory above it, belongs to uid ${st.uid}, who could replace it; ${fix}`,
      );
    }
    if (writableByOthers(st) && (st.mode & 0o1000) === 0) {
      throw new UntrustedPathError(
        dir,
        `refusing ${what}: ${dir}, a directory above it, is writable by others (mode ${modeText(st.mode)}), who could replace it; ${fix}`,
      );
    }
    if (dir === nodePath.dirname(dir)) return;
  }
}

/**
 * The agent's state directory: created (0700) when missing, then refused
 * unless it is the agent's own. Returns its path.
 */
export function checkStateDir(stateDir: string): string {
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(stateDir);
  const what = `the state directory ${stateDir}`;
  if (st.isSymbolicLink()) {
    throw new UntrustedPathError(
      stateDir,
      `refusing ${what}: it is a symlink (to ${fs.readlinkSync(stateDir)}); pass the directory itself with --state-dir`,
    );
  }
  if (!st.isDirectory()) {
    throw new UntrustedPathError(stateDir, `refusing ${what}: it is not a directory`);
  }
  if (st.uid !== euid()) {
    throw new UntrustedPathError(
      stateDir,
      `refusing ${what}: it belongs to uid ${st.uid}, not to this agent's user (uid ${euid()}), so its owner could plant scripts the agent runs or replace its token; use a directory of your own (--state-dir), or chown ${euid()} ${stateDir} if you trust it`,
    );
  }
  if (writableByOthers(st)) {
    throw new UntrustedPathError(
      stateDir,
      `refusing ${what}: it is writable by group or others (mode ${modeText(st.mode)}), who could plant scripts the agent runs or replace its token; chmod go-w ${stateDir}`,
    );
  }
  checkAncestors(
    fs.realpathSync(stateDir),
    what,
    'use a state directory in a place only you and root can change (--state-dir)',
  );
  return stateDir;
}

/**
 * A directory the agent runs scripts from, or writes definitions to: when
 * it exists, it, every directory above it and every script in it can be
 * changed by root and the agent's user only. A missing one is fine (no
 * scripts); one that appears later was made by someone who could write
 * its parent, which this check has vouched for.
 */
export function checkScriptDir(dir: string, what: string): void {
  let real: string;
  try {
    real = fs.realpathSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new UntrustedPathError(dir, `refusing ${what} ${dir}: ${(err as Error).message}`);
  }
  const check = (path: string, st: fs.Stats, kind: string): void => {
    if (!trustedOwner(st.uid, true)) {
      throw new UntrustedPathError(
        path,
        `refusing ${what} ${dir}: ${kind} ${path} belongs to uid ${st.uid}, and the agent (uid ${euid()}) would run what its owner puts there; chown ${euid()} ${path}, or remove it`,
      );
    }
    if (writableByOthers(st)) {
      throw new UntrustedPathError(
        path,
        `refusing ${what} ${dir}: ${kind} ${path} is writable by group or others (mode ${modeText(st.mode)}), and the agent would run what they put there; chmod go-w ${path}`,
      );
    }
  };
  const st = fs.statSync(real);
  if (!st.isDirectory()) return; // not a directory: mdevctl (and the library) find no scripts there
  check(real, st, 'directory');
  checkAncestors(
    real,
    `${what} ${dir}`,
    'keep script directories where only root and you can write',
  );
  for (const name of fs.readdirSync(real)) {
    const path = nodePath.join(real, name);
    let target: fs.Stats;
    try {
      target = fs.statSync(path);
    } catch {
      continue; // a dangling link or a loop: never runnable
    }
    check(path, target, 'script');
  }
}

/** Every directory of `env` from which the agent runs scripts or writes definitions. */
export function checkEnvironmentDirs(env: Environment): void {
  checkScriptDir(env.configDir, 'the definitions directory');
  for (const d of env.calloutDirs) checkScriptDir(d, 'the callout directory');
  for (const d of env.notifierDirs) checkScriptDir(d, 'the notifier directory');
}

// ---- the unix socket ----------------------------------------------------------

/**
 * Make way for a unix socket at `path`: nothing there is fine; a socket
 * nobody answers on (an agent that died) is removed; anything else — a
 * file, a directory, a live agent's socket — is refused, never deleted.
 */
export async function claimSocketPath(path: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new UntrustedPathError(
      path,
      `refusing --socket ${path}: something that is not a socket is there; remove it yourself if it may go, or pick another path`,
    );
  }
  const live = await new Promise<boolean>((resolve) => {
    const c = net.connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', (err: NodeJS.ErrnoException) =>
      resolve(err.code !== 'ECONNREFUSED' && err.code !== 'ENOENT'),
    );
  });
  if (live) {
    throw new UntrustedPathError(
      path,
      `refusing --socket ${path}: another process is listening on it (another agent?); stop it or pick another path`,
    );
  }
  fs.rmSync(path, { force: true });
}
