import type { ChildProcess, SpawnSyncReturns } from 'node:child_process';
import { createRequire } from 'node:module';

/**
 * How the host library runs callout scripts without deciding *how* to
 * wait for them.
 *
 * An operation that may run scripts (start, define, list with callouts...)
 * is written as a generator, `Steps<T>`: it yields a `ScriptRequest` for
 * each script it needs run and receives the `ScriptResult` back; all other
 * work (sysfs through the port, definition files) happens between yields,
 * synchronously as before. A runner drives the generator:
 *
 * - `runSync` (the CLI, libvirt's hooks) runs each script with spawnSync:
 *   the command stays a plain synchronous program, as mdevctl is;
 * - `runAsync` (the agent) runs each script with spawn and awaits it, so
 *   the event loop keeps serving requests while a script runs.
 *
 * Both apply the same limits: a time limit per script (killed with
 * SIGKILL when it runs out; the operation then fails with
 * `callout-timeout` naming the script), and a cap on what a script may
 * print. The async runner starts each script in a process group of its
 * own and kills the group, so a script's children go too; spawnSync can
 * only kill the script itself, but closes the pipes, so a child left
 * holding them cannot make the command wait.
 */

/** One script run an operation asks for. */
export interface ScriptRequest {
  readonly script: string;
  readonly args: readonly string[];
  /** Written to the script's stdin, which is then closed; undefined: closed at once. */
  readonly stdin: string | undefined;
  /** What the run is for ("pre start"), for logs. */
  readonly label: string;
}

/** What became of a script run. */
export interface ScriptResult {
  /** Exit status; undefined when it was killed (by a signal, a time limit or the output cap). */
  readonly status: number | undefined;
  readonly signal?: string | undefined;
  readonly stdout: Buffer;
  readonly stderr: string;
  /** It could not be started (ENOENT, EACCES: not a program). */
  readonly spawnError?: NodeJS.ErrnoException | undefined;
  /** Killed because it ran past `timeoutMs`. */
  readonly timedOut?: boolean | undefined;
  readonly timeoutMs?: number | undefined;
  /** Killed because it printed more than the cap. */
  readonly outputLimit?: boolean | undefined;
}

/** An operation that runs scripts: yields requests, receives results, returns T. */
export type Steps<T> = Generator<ScriptRequest, T, ScriptResult>;

export interface RunnerOptions {
  /** Time limit per script in ms (0: none). Default DEFAULT_CALLOUT_TIMEOUT_MS. */
  readonly timeoutMs?: number | undefined;
  /** Bytes a script may print on stdout or stderr before it is killed. */
  readonly maxOutputBytes?: number | undefined;
  /** Called with each request before it runs (tests, logs). */
  readonly onRun?: ((req: ScriptRequest) => void) | undefined;
}

/**
 * mdevctl waits for a callout as long as it takes; a hung script would hang
 * the command (and libvirt behind it) forever. A minute is far longer than
 * any vendor script needs to look at a device.
 */
export const DEFAULT_CALLOUT_TIMEOUT_MS = 60_000;
export const DEFAULT_MAX_OUTPUT_BYTES = 4 * 1024 * 1024;

const limits = (o: RunnerOptions): { timeoutMs: number; maxBytes: number } => ({
  timeoutMs: o.timeoutMs ?? DEFAULT_CALLOUT_TIMEOUT_MS,
  maxBytes: o.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
});

// child_process is loaded on the first script: most commands on most hosts
// run none, and its module graph is a noticeable part of start-up.
let childProcess: typeof import('node:child_process') | undefined;
const cp = (): typeof import('node:child_process') =>
  (childProcess ??= createRequire('/')(
    'node:child_process',
  ) as typeof import('node:child_process'));

function runOneSync(req: ScriptRequest, o: RunnerOptions): ScriptResult {
  const { timeoutMs, maxBytes } = limits(o);
  o.onRun?.(req);
  const r: SpawnSyncReturns<Buffer> = cp().spawnSync(req.script, [...req.args], {
    input: req.stdin ?? '',
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(timeoutMs > 0 ? { timeout: timeoutMs } : {}),
    killSignal: 'SIGKILL',
    maxBuffer: maxBytes,
  });
  const error = r.error as NodeJS.ErrnoException | undefined;
  const base = {
    stdout: r.stdout ?? Buffer.alloc(0),
    stderr: (r.stderr ?? Buffer.alloc(0)).toString('utf8'),
    signal: r.signal ?? undefined,
  };
  // A script that exits without reading its stdin makes our write fail
  // with EPIPE: it still ran to an exit status (mdevctl ≥ 1.3 ignores it).
  if (error !== undefined && error.code !== 'EPIPE') {
    if (error.code === 'ETIMEDOUT')
      return { ...base, status: undefined, timedOut: true, timeoutMs };
    if (error.code === 'ENOBUFS') return { ...base, status: undefined, outputLimit: true };
    if (r.pid === 0 || r.status === null) return { ...base, status: undefined, spawnError: error };
  }
  return { ...base, status: r.status ?? undefined };
}

/** Drive `steps`, running each script synchronously. */
export function runSync<T>(steps: Steps<T>, options: RunnerOptions = {}): T {
  let next = steps.next();
  while (next.done !== true) next = steps.next(runOneSync(next.value, options));
  return next.value;
}

function runOneAsync(req: ScriptRequest, o: RunnerOptions): Promise<ScriptResult> {
  const { timeoutMs, maxBytes } = limits(o);
  o.onRun?.(req);
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = cp().spawn(req.script, [...req.args], {
        stdio: ['pipe', 'pipe', 'pipe'],
        // Its own process group, so a time limit kills what it started too.
        detached: true,
      });
    } catch (err) {
      resolve({
        status: undefined,
        stdout: Buffer.alloc(0),
        stderr: '',
        spawnError: err as NodeJS.ErrnoException,
      });
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let timedOut = false;
    let outputLimit = false;
    const kill = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL'); // the group is gone already; the script itself, if not
      }
    };
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            kill();
          }, timeoutMs)
        : undefined;
    const take = (chunks: Buffer[], add: (n: number) => number) => (b: Buffer) => {
      if (add(b.length) > maxBytes) {
        if (!outputLimit) {
          outputLimit = true;
          kill();
        }
        return;
      }
      chunks.push(b);
    };
    child.stdout!.on(
      'data',
      take(out, (n) => (outBytes += n)),
    );
    child.stderr!.on(
      'data',
      take(err, (n) => (errBytes += n)),
    );
    child.stdin!.on('error', () => {}); // EPIPE: the script did not read its input
    let settled = false;
    const settle = (r: ScriptResult): void => {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      resolve(r);
    };
    child.once('error', (e: NodeJS.ErrnoException) => {
      // Not started at all (ENOENT, EACCES); other errors end in 'close'.
      if (child.pid === undefined) {
        settle({ status: undefined, stdout: Buffer.alloc(0), stderr: '', spawnError: e });
      }
    });
    child.once('close', (code, signal) => {
      const base = {
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err).toString('utf8'),
        signal: signal ?? undefined,
      };
      if (timedOut) settle({ ...base, status: undefined, timedOut: true, timeoutMs });
      else if (outputLimit) settle({ ...base, status: undefined, outputLimit: true });
      else settle({ ...base, status: code ?? undefined });
    });
    child.stdin!.end(req.stdin ?? '');
  });
}

/** Drive `steps`, awaiting each script: the event loop runs on meanwhile. */
export async function runAsync<T>(steps: Steps<T>, options: RunnerOptions = {}): Promise<T> {
  let next = steps.next();
  while (next.done !== true) next = steps.next(await runOneAsync(next.value, options));
  return next.value;
}
