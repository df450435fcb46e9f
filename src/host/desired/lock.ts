/**
 * One apply at a time per host: a lock file in the host's mdevkit state
 * dir (<configDir>/../mdevkit/apply.lock), created with O_EXCL and naming
 * its holder by pid, the process's start time and the boot id. A holder
 * that died (kill -9, a crash, a reboot) leaves a stale file; the next
 * taker sees that the process is gone (or is another one with a reused
 * pid, or ran before a reboot) and breaks it — under a second, short-lived
 * lock, so that two takers cannot both break it and both win.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { DesiredError } from './errors.js';

export interface LockHolder {
  readonly pid: number;
  /** Field 22 of /proc/<pid>/stat: tells a reused pid from the holder. */
  readonly start: string;
  readonly boot: string;
  /** Who applies ("config:default"). */
  readonly owner: string;
  readonly since: string;
}

export interface HeldLock {
  readonly path: string;
  release(): void;
}

function readText(path: string): string | undefined {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

const bootId = (): string => readText('/proc/sys/kernel/random/boot_id')?.trim() ?? '';

function startTime(pid: number): string | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return rest[19];
}

/** Is the process that wrote `holder` still running? */
export function holderAlive(holder: LockHolder): boolean {
  if (holder.boot !== bootId()) return false;
  return startTime(holder.pid) === holder.start;
}

function readHolder(path: string): LockHolder | undefined {
  const text = readText(path);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as LockHolder;
  } catch {
    // A holder killed between create and write leaves an empty file: stale
    // once it is older than any write could take.
    return { pid: 0, start: '', boot: '', owner: '?', since: '' };
  }
}

function me(owner: string): LockHolder {
  return {
    pid: process.pid,
    start: startTime(process.pid) ?? '',
    boot: bootId(),
    owner,
    since: new Date().toISOString(),
  };
}

function tryCreate(path: string, holder: LockHolder): boolean {
  let fd: number;
  try {
    fd = fs.openSync(path, 'wx', 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    fs.writeSync(fd, JSON.stringify(holder));
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

const EMPTY_GRACE_MS = 5000;

function isStale(path: string, h: LockHolder): boolean {
  if (h.pid === 0) {
    const st = fs.statSync(path, { throwIfNoEntry: false });
    return st === undefined || Date.now() - st.mtimeMs > EMPTY_GRACE_MS;
  }
  return !holderAlive(h);
}

/** Remove a stale lock, unless someone else is doing so or it changed meanwhile. */
function breakStale(path: string, seen: string, owner: string): void {
  const breaker = `${path}.break`;
  if (!tryCreate(breaker, me(owner))) {
    const b = readHolder(breaker);
    if (b !== undefined && isStale(breaker, b)) fs.rmSync(breaker, { force: true });
    return;
  }
  try {
    if (readText(path) === seen) fs.rmSync(path, { force: true });
  } finally {
    fs.rmSync(breaker, { force: true });
  }
}

export interface LockOptions {
  /** Who takes it (shown to whoever waits). */
  readonly owner: string;
  /** Wait for the holder instead of failing. */
  readonly wait?: boolean;
  /** Told once when waiting starts. */
  readonly onWait?: (holder: LockHolder) => void;
  readonly pollMs?: number;
}

/**
 * Take the apply lock of the state dir `dir`. Without `wait`, a live
 * holder makes this throw DesiredError `locked` naming it.
 */
export async function acquireApplyLock(dir: string, options: LockOptions): Promise<HeldLock> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = nodePath.join(dir, 'apply.lock');
  const mine = me(options.owner);
  let told = false;
  for (;;) {
    if (tryCreate(path, mine)) {
      return {
        path,
        release: () => {
          if (readHolder(path)?.pid === mine.pid) fs.rmSync(path, { force: true });
        },
      };
    }
    const seen = readText(path);
    if (seen === undefined) continue; // released between our two looks
    const holder = readHolder(path)!;
    if (isStale(path, holder)) {
      breakStale(path, seen, options.owner);
      continue;
    }
    if (options.wait !== true) {
      throw new DesiredError(
        'locked',
        `another apply is running on this host (pid ${holder.pid}, ${holder.owner}, since ${holder.since}); ` +
          `try again when it ends, or pass --wait`,
        { pid: holder.pid, owner: holder.owner, path },
      );
    }
    if (!told) {
      options.onWait?.(holder);
      told = true;
    }
    await new Promise((r) => setTimeout(r, options.pollMs ?? 100));
  }
}
