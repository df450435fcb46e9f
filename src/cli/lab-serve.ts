import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { parseArgs } from 'node:util';
import type { Uevent } from '../sim/core/kernel.js';
import {
  detachMount,
  mountSysfs,
  mountpointState,
  type SysfsMount,
} from '../sim/fuse/sysfs-fuse.js';
import { environmentAt, type Environment } from '../host/environment.js';
import { Lab } from '../sim/lab.js';
import { DEFAULT_PROFILE } from '../sim/profiles/profile.js';
import { CommandError, UsageError, type CommandContext, type Writable } from './context.js';

/**
 * The live lab: `mdevkit lab serve` (the emulated host's sysfs as a FUSE
 * mount, plus its config dir), `lab shell` (a command in a private mount
 * namespace where /sys and /etc/mdevctl.d are the lab's) and `lab reboot`.
 *
 * Layout of a lab directory DIR:
 *   DIR/sys               the FUSE mount of the emulated /sys
 *   DIR/etc/mdevctl.d     persistent definitions (a plain directory, kept
 *                         across serves, as /etc is across reboots)
 *   DIR/lab.sock          the emulator's control socket (open/close/reboot)
 *
 * The serving process must never make synchronous file-system calls on its
 * own mount (its event loop is the server). Everything it does to the lab
 * itself — autostart above all — goes through the lab's in-process port;
 * the config dir is an ordinary directory, so node:fs is fine there.
 */

export const SERVE_USAGE = `usage: mdevkit lab serve [--profile P] --mount DIR [--monitor] [--cache SECONDS]

Serve the emulated host's sysfs at DIR/sys over FUSE, with the config dir
at DIR/etc/mdevctl.d. Prints "ready DIR" once the mount is usable; SIGINT
or SIGTERM unmounts and exits 0. A stale mount left by a crash is cleared.
  --monitor          print uevents as they happen, as 'udevadm monitor --kernel'
                     (read them: a full stdout pipe pauses the lab)
  --cache SECONDS    how long the kernel may cache entries and attributes (default 1)
`;

export const SHELL_USAGE = `usage: mdevkit lab shell [--profile P] [--mount DIR] [-- CMD ARGS...]

Run CMD (default: your shell) in a private mount namespace where /sys and
/etc/mdevctl.d are the lab's, so mdevctl, mdevkit and scripts see the lab as
the host. With --mount DIR of a lab already served, joins it; otherwise
serves one for the duration of CMD. Needs root. MDEVKIT_LAB=DIR is set.
`;

export const REBOOT_USAGE = `usage: mdevkit lab reboot [--mount DIR]

Power-cycle a served lab (DIR, or $MDEVKIT_LAB): active devices vanish,
parents register again and definitions with start=auto come back.
`;

// ---- the served lab ---------------------------------------------------------

export interface LiveLabOptions {
  profile: string;
  dir: string;
  cacheSeconds?: number;
  /** Where uevent lines go (--monitor), if anywhere. */
  monitor?: Writable;
  /** Notes for the operator (stale mount cleared, autostart results). */
  log: Writable;
}

/** A lab served at a directory: the FUSE mount, the config dir, autostart. */
export class LiveLab {
  readonly sysDir: string;
  readonly configDir: string;
  readonly socketPath: string;
  #mount: SysfsMount | undefined;
  #stopUevents: (() => void) | undefined;
  readonly autostart: AutostartQueue;

  private constructor(
    readonly lab: Lab,
    readonly dir: string,
    private readonly options: LiveLabOptions,
  ) {
    this.sysDir = nodePath.join(dir, 'sys');
    this.configDir = nodePath.join(dir, 'etc', 'mdevctl.d');
    this.socketPath = nodePath.join(dir, 'lab.sock');
    this.autostart = new AutostartQueue(this.configDir, lab, options.log);
  }

  static async start(options: LiveLabOptions): Promise<LiveLab> {
    const dir = nodePath.resolve(options.dir);
    const lab = Lab.fromProfile(options.profile);
    const live = new LiveLab(lab, dir, options);
    await live.#prepareDir();
    live.#stopUevents = lab.kernel.onUevent((e) => live.#onUevent(e));
    // The host boots: its parents registered before anyone listened, as at
    // boot before udev runs; coldplug them like `udevadm trigger` would.
    for (const parent of lab.parentNames) live.autostart.parentRegistered(parent);
    await live.autostart.flush();
    live.#mount = await mountSysfs(lab.kernel.tree, live.sysDir, {
      ...(options.cacheSeconds !== undefined ? { cacheSeconds: options.cacheSeconds } : {}),
    });
    return live;
  }

  async #prepareDir(): Promise<void> {
    for (const d of [
      this.sysDir,
      nodePath.join(this.configDir, 'scripts.d', 'callouts'),
      nodePath.join(this.configDir, 'scripts.d', 'notifiers'),
    ]) {
      await fs.promises.mkdir(d, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
        // mkdir on a stale FUSE mount fails with ENOTCONN; handled below.
        if (err.code !== 'ENOTCONN') throw err;
      });
    }
    const state = await mountpointState(this.sysDir);
    if (state === 'live') {
      throw new CommandError(
        `${this.sysDir} is already served by a running lab; stop that one (SIGTERM) or choose another --mount`,
      );
    }
    if (state === 'stale') {
      await detachMount(this.sysDir);
      this.options.log.write(
        `mdevkit lab: cleared a stale mount at ${this.sysDir} (left by a lab that did not exit cleanly)\n`,
      );
    }
  }

  #onUevent(e: Uevent): void {
    this.options.monitor?.write(formatUevent(e));
    // mdevctl's udev rule: a parent that registers (change, MDEV_STATE=
    // registered) or, on older kernels, a device that is added, gets
    // `mdevctl start-parent-mdevs <kernel name>` when /etc/mdevctl.d/<name>
    // exists. The queue checks for the directory and coalesces the burst.
    if (e.action === 'change' && e.env['MDEV_STATE'] === 'registered') {
      this.autostart.parentRegistered(basename(e.devpath));
    } else if (e.action === 'add' && e.subsystem !== 'mdev') {
      this.autostart.parentRegistered(basename(e.devpath));
    }
  }

  async stop(): Promise<void> {
    this.#stopUevents?.();
    await this.autostart.flush();
    await this.#mount?.unmount();
  }
}

const basename = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

let monitorStart: bigint | undefined;

/** One line as `udevadm monitor --kernel` prints it, plus the event's environment. */
export function formatUevent(e: Uevent): string {
  monitorStart ??= process.hrtime.bigint();
  const us = Number((process.hrtime.bigint() - monitorStart) / 1000n);
  const stamp = `${Math.floor(us / 1e6)}.${String(us % 1e6).padStart(6, '0')}`;
  const env = Object.entries(e.env)
    .map(([k, v]) => ` ${k}=${v}`)
    .join('');
  return `KERNEL[${stamp}] ${e.action.padEnd(8)} ${e.devpath} (${e.subsystem})${env}\n`;
}

// ---- autostart ----------------------------------------------------------------

/**
 * Runs "start the start=auto definitions of a parent" for parents that
 * (re)registered, as mdevctl's udev rule does — coalesced: a burst of
 * uevents (a reboot registers every parent, and the rule fires on both the
 * parent's add and its change) becomes one run per parent after the burst,
 * never one per event, and a device that is active already is not
 * created again (mdevctl#53: repeated, failing start attempts at boot).
 */
export class AutostartQueue {
  readonly #pending = new Set<string>();
  #scheduled: Promise<void> | undefined;
  /** Parents started so far, with how many devices each run started (for tests and logs). */
  readonly runs: { parent: string; started: number; failed: number }[] = [];

  constructor(
    readonly configDir: string,
    readonly lab: Lab,
    readonly log: Writable,
  ) {}

  parentRegistered(parent: string): void {
    this.#pending.add(parent);
    // After the current synchronous burst, once.
    this.#scheduled ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() =>
      this.#drain(),
    );
  }

  /** Wait until queued parents have been handled. */
  async flush(): Promise<void> {
    while (this.#scheduled !== undefined) await this.#scheduled;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending.size > 0) {
        const parents = [...this.#pending];
        this.#pending.clear();
        for (const parent of parents) await this.#startParent(parent);
      }
    } finally {
      this.#scheduled = undefined;
    }
  }

  async #startParent(parent: string): Promise<void> {
    // TEST=="/etc/mdevctl.d/$kernel" in the udev rule.
    if (!fs.existsSync(nodePath.join(this.configDir, parent))) return;
    const result = await startParentMdevs(this.configDir, this.lab, parent);
    this.runs.push({ parent, started: result.started, failed: result.failed });
    for (const line of result.messages) this.log.write(`mdevkit lab: autostart: ${line}\n`);
    this.log.write(
      `mdevkit lab: autostart ${parent}: ${result.started} started, ${result.failed} failed\n`,
    );
  }
}

interface AutostartResult {
  started: number;
  failed: number;
  messages: string[];
}

/**
 * `mdevctl start-parent-mdevs <parent>`: start every start=auto definition
 * of `parent`, through the management library (src/host/devices.ts) on the
 * lab's in-process port — never through this process's own FUSE mount,
 * which would wait for itself. The config dir is DIR/etc/mdevctl.d, a plain
 * directory. A device that is active already counts as such, not as a
 * failure (mdevctl#53).
 */
async function startParentMdevs(
  configDir: string,
  lab: Lab,
  parent: string,
): Promise<AutostartResult> {
  const { startParentDevices, describeError, MdevError } = await import('../host/devices.js');
  const root = nodePath.dirname(nodePath.dirname(configDir));
  const warnings: string[] = [];
  const outcomes = startParentDevices(withScriptDirsFixed(environmentAt(root, lab.port)), parent, {
    warn: (m) => warnings.push(m),
  });
  const result: AutostartResult = { started: 0, failed: 0, messages: warnings };
  for (const o of outcomes) {
    if (o.error === undefined) {
      result.started++;
    } else if (o.error instanceof MdevError && o.error.code === 'already-active') {
      continue;
    } else {
      result.failed++;
      result.messages.push(`${parent}/${o.device.uuid}: ${describeError(o.error)}`);
    }
  }
  return result;
}

/**
 * The environment with its callout and notifier directories narrowed, once
 * per autostart run, to those that hold at least one entry. The library
 * looks for scripts before and after every device; on a lab with none
 * (the usual case) that was most of the time of starting 1000 devices,
 * mostly spent failing to open directories that do not exist. Scripts
 * added while a run is under way take part from the next run on.
 */
function withScriptDirsFixed(env: Environment): Environment {
  const populated = (dirs: readonly string[]): string[] =>
    dirs.filter((d) => {
      try {
        return fs.readdirSync(d).length > 0;
      } catch {
        return false;
      }
    });
  return {
    ...env,
    calloutDirs: populated(env.calloutDirs),
    notifierDirs: populated(env.notifierDirs),
  };
}

// ---- commands -------------------------------------------------------------------

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals): void => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(sig);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

function parseCache(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0 || n > 3600) {
    throw new UsageError(`--cache takes seconds between 0 and 3600, not '${text}'`);
  }
  return n;
}

function requireFuse(): void {
  if (!fs.existsSync('/dev/fuse')) {
    throw new CommandError('FUSE is not available here (/dev/fuse is missing)');
  }
}

export async function serveCommand(ctx: CommandContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      profile: { type: 'string' },
      mount: { type: 'string' },
      monitor: { type: 'boolean' },
      cache: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    ctx.stdout.write(SERVE_USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError('lab serve takes no arguments', SERVE_USAGE);
  if (values.mount === undefined) throw new UsageError('lab serve needs --mount DIR', SERVE_USAGE);
  requireFuse();
  const dir = nodePath.resolve(ctx.cwd, values.mount);
  const cacheSeconds = parseCache(values.cache);
  const signal = waitForSignal(); // listen from the start: a signal while mounting still unmounts
  const live = await LiveLab.start({
    profile: values.profile ?? DEFAULT_PROFILE,
    dir,
    log: ctx.stderr,
    ...(values.monitor ? { monitor: ctx.stdout } : {}),
    ...(cacheSeconds !== undefined ? { cacheSeconds } : {}),
  });
  try {
    const control = await startControl(live);
    ctx.stdout.write(`ready ${dir}\n`);
    await signal;
    await control.close();
  } finally {
    await live.stop();
  }
  return 0;
}

/**
 * The emulator's control socket at DIR/lab.sock (open/close/status/reboot,
 * src/sim/control.ts). A reboot answers once the autostart that the
 * parents' re-registration set off has run, so `lab reboot` returning
 * means the start=auto devices are back.
 */
async function startControl(live: LiveLab): Promise<{ close(): Promise<void> }> {
  const { startControlServer } = await import('../sim/control.js');
  return startControlServer(live.lab, live.socketPath, {
    afterReboot: () => live.autostart.flush(),
  });
}

export async function shellCommand(ctx: CommandContext, args: string[]): Promise<number> {
  const dash = args.indexOf('--');
  const own = dash < 0 ? args : args.slice(0, dash);
  const command = dash < 0 ? [] : args.slice(dash + 1);
  const { values, positionals } = parseArgs({
    args: own,
    options: {
      profile: { type: 'string' },
      mount: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    ctx.stdout.write(SHELL_USAGE);
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError('put the command after "--": lab shell -- CMD ARGS...', SHELL_USAGE);
  }
  if (process.getuid?.() !== 0) {
    throw new CommandError(
      'lab shell needs root (it makes a private mount namespace); without root, ' +
        'serve the lab with `mdevkit lab serve --mount DIR` and point tools at DIR',
    );
  }
  requireFuse();

  let dir: string;
  let live: LiveLab | undefined;
  let tempDir: string | undefined;
  if (values.mount !== undefined) {
    dir = nodePath.resolve(ctx.cwd, values.mount);
    const state = await mountpointState(nodePath.join(dir, 'sys'));
    if (state === 'live' && values.profile !== undefined) {
      throw new UsageError(`${dir} is served already; --profile applies only to a new lab`);
    }
    if (state !== 'live') {
      live = await LiveLab.start({
        profile: values.profile ?? DEFAULT_PROFILE,
        dir,
        log: ctx.stderr,
      });
    }
  } else {
    tempDir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'mdevkit-lab-'));
    dir = tempDir;
    live = await LiveLab.start({
      profile: values.profile ?? DEFAULT_PROFILE,
      dir,
      log: ctx.stderr,
    });
  }
  const control = live === undefined ? undefined : await startControl(live);
  try {
    const argv = command.length > 0 ? command : [ctx.env['SHELL'] || '/bin/sh'];
    return await runInLabNamespace(dir, argv, ctx.env);
  } finally {
    await control?.close();
    await live?.stop();
    if (tempDir !== undefined) fs.rmSync(tempDir, { recursive: true, force: true });
  }
}

/**
 * Run argv with DIR/sys on /sys and DIR/etc/mdevctl.d on /etc/mdevctl.d, in a
 * private mount namespace (util-linux unshare), and return its exit status.
 * Asynchronous on purpose: this process may be the one serving DIR/sys.
 */
function runInLabNamespace(
  dir: string,
  argv: string[],
  env: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  fs.mkdirSync('/etc/mdevctl.d', { recursive: true });
  const script =
    'mount --rbind "$0/sys" /sys && mount --bind "$0/etc/mdevctl.d" /etc/mdevctl.d && exec "$@"';
  const child = spawn(
    'unshare',
    ['-m', '--propagation', 'private', '--', 'sh', '-c', script, dir, ...argv],
    {
      stdio: 'inherit',
      env: { ...env, MDEVKIT_LAB: dir },
    },
  );
  // The terminal's Ctrl-C reaches the whole foreground group: let the
  // command decide what it means, as a shell does for its children.
  const ignore = (): void => {};
  const forward = (sig: NodeJS.Signals): void => void child.kill(sig);
  process.on('SIGINT', ignore);
  process.on('SIGTERM', forward);
  process.on('SIGHUP', forward);
  return new Promise<number>((resolve, reject) => {
    child.once('error', (err) =>
      reject(new CommandError(`cannot run unshare (util-linux): ${err.message}`)),
    );
    child.once('exit', (code, sig) => resolve(code ?? 128 + (sig ? os.constants.signals[sig] : 0)));
  }).finally(() => {
    process.off('SIGINT', ignore);
    process.off('SIGTERM', forward);
    process.off('SIGHUP', forward);
  });
}

export async function rebootCommand(ctx: CommandContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { mount: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    ctx.stdout.write(REBOOT_USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError('lab reboot takes no arguments', REBOOT_USAGE);
  const dir = values.mount ?? ctx.env['MDEVKIT_LAB'];
  if (dir === undefined || dir === '') {
    throw new UsageError('which lab? give --mount DIR or set MDEVKIT_LAB', REBOOT_USAGE);
  }
  const socketPath = nodePath.join(nodePath.resolve(ctx.cwd, dir), 'lab.sock');
  const { controlCall, ControlUnavailableError } = await import('../sim/control.js');
  try {
    // Starting a thousand start=auto devices takes a while: be patient.
    const res = await controlCall(socketPath, { op: 'reboot' }, 120_000);
    const parents = Array.isArray(res['parents']) ? res['parents'].length : 0;
    ctx.stdout.write(`rebooted ${dir}: ${parents} parents registered\n`);
  } catch (err) {
    if (err instanceof ControlUnavailableError) {
      throw new CommandError(
        `no lab is running at ${dir} (nothing answers on ${socketPath}); start one with 'mdevkit lab serve --mount ${dir}'`,
      );
    }
    throw err;
  }
  return 0;
}
