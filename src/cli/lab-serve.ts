import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import type { Uevent } from '../sim/core/kernel.js';
import {
  detachMount,
  mountSysfs,
  mountpointState,
  type SysfsMount,
} from '../sim/fuse/sysfs-fuse.js';
import { Autostart, describeAutostartRun } from '../host/autostart.js';
import { environmentAt } from '../host/environment.js';
import { ControlUnavailableError, controlCall, startControlServer } from '../sim/control.js';
import { Lab } from '../sim/lab.js';
import { DEFAULT_PROFILE } from '../sim/profiles/profile.js';
import type { Writable } from '../ctl/io.js';
import { CommandError, UsageError, command, untilStopped } from './command.js';
import { LAB_DIR_OPTIONS, labDir, labSocketPath, noLabRunning } from './lab-control.js';
import { PROFILE_OPTION } from './lab.js';

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
  readonly autostart: Autostart;

  private constructor(
    readonly lab: Lab,
    readonly dir: string,
    private readonly options: LiveLabOptions,
  ) {
    this.sysDir = nodePath.join(dir, 'sys');
    this.configDir = nodePath.join(dir, 'etc', 'mdevctl.d');
    this.socketPath = nodePath.join(dir, 'lab.sock');
    // Autostart runs on the lab's in-process port, never through this
    // process's own FUSE mount (which would wait for itself); the config
    // dir DIR/etc/mdevctl.d is a plain directory.
    this.autostart = new Autostart(environmentAt(dir, lab.port), {
      onRun: (run) => {
        for (const line of describeAutostartRun(run)) options.log.write(`mdevkit lab: ${line}\n`);
      },
    });
  }

  static async start(options: LiveLabOptions): Promise<LiveLab> {
    const dir = nodePath.resolve(options.dir);
    const lab = Lab.fromProfile(options.profile);
    const live = new LiveLab(lab, dir, options);
    await live.#prepareDir();
    live.#stopUevents = lab.kernel.onUevent((e) => {
      options.monitor?.write(formatUevent(e));
      live.autostart.uevent(e);
    });
    // The host boots: its parents registered before anyone listened.
    live.autostart.coldplug();
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

  async stop(): Promise<void> {
    this.#stopUevents?.();
    await this.autostart.flush();
    await this.#mount?.unmount();
  }
}

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

// ---- commands -------------------------------------------------------------------

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

export const serveCommand = command({
  synopsis: '[--profile P] --mount DIR [--monitor] [--cache SECONDS]',
  description: `Serve the emulated host's sysfs at DIR/sys over FUSE, with the config dir at DIR/etc/mdevctl.d, and run autostart as mdevctl's udev rule does. Prints "ready DIR" once the mount is usable; SIGINT or SIGTERM unmounts and exits 0. A stale mount left by a crash is cleared.`,
  options: {
    profile: PROFILE_OPTION,
    mount: {
      type: 'string',
      value: 'DIR',
      help: 'where to serve the lab (DIR/sys, DIR/etc/mdevctl.d, DIR/lab.sock)',
    },
    monitor: {
      type: 'boolean',
      help: "print uevents as they happen, as 'udevadm monitor --kernel' (read them: a full stdout pipe pauses the lab)",
    },
    cache: {
      type: 'string',
      value: 'SECONDS',
      help: 'how long the kernel may cache entries and attributes (default 1)',
    },
  },
  positionals: [],
  async run(io, { values }) {
    if (values.mount === undefined) throw new UsageError('lab serve needs --mount DIR');
    requireFuse();
    const dir = nodePath.resolve(io.cwd, values.mount);
    const cacheSeconds = parseCache(values.cache);
    const stopped = untilStopped(); // listen from the start: a signal while mounting still unmounts
    const live = await LiveLab.start({
      profile: values.profile ?? DEFAULT_PROFILE,
      dir,
      log: io.stderr,
      ...(values.monitor === true ? { monitor: io.stdout } : {}),
      ...(cacheSeconds !== undefined ? { cacheSeconds } : {}),
    });
    try {
      const control = await startControl(live);
      io.stdout.write(`ready ${dir}\n`);
      await stopped;
      await control.close();
    } finally {
      await live.stop();
    }
  },
});

/**
 * The emulator's control socket at DIR/lab.sock (open/close/status/reboot,
 * src/sim/control.ts). A reboot answers once the autostart that the
 * parents' re-registration set off has run, so `lab reboot` returning
 * means the start=auto devices are back.
 */
function startControl(live: LiveLab): Promise<{ close(): Promise<void> }> {
  return startControlServer(live.lab, live.socketPath, {
    afterReboot: () => live.autostart.flush(),
  });
}

export const shellCommand = command({
  synopsis: '[--profile P] [--mount DIR] [-- CMD ARGS...]',
  description: `Run CMD (default: your shell) in a private mount namespace where /sys and /etc/mdevctl.d are the lab's, so mdevctl, mdevkit and scripts see the lab as the host. With --mount DIR of a lab already served, joins it; otherwise serves one for the duration of CMD. Needs root. MDEVKIT_LAB=DIR is set.`,
  options: {
    profile: PROFILE_OPTION,
    mount: { type: 'string', value: 'DIR', help: 'a lab served there (joined) or to serve there' },
  },
  positionals: [],
  positionalsHint: 'put the command after "--": lab shell -- CMD ARGS...',
  passThrough: true,
  async run(io, { values, rest }) {
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
      dir = nodePath.resolve(io.cwd, values.mount);
      const state = await mountpointState(nodePath.join(dir, 'sys'));
      if (state === 'live' && values.profile !== undefined) {
        throw new UsageError(`${dir} is served already; --profile applies only to a new lab`);
      }
      if (state !== 'live') {
        live = await LiveLab.start({
          profile: values.profile ?? DEFAULT_PROFILE,
          dir,
          log: io.stderr,
        });
      }
    } else {
      tempDir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'mdevkit-lab-'));
      dir = tempDir;
      live = await LiveLab.start({
        profile: values.profile ?? DEFAULT_PROFILE,
        dir,
        log: io.stderr,
      });
    }
    const control = live === undefined ? undefined : await startControl(live);
    try {
      const argv = rest.length > 0 ? [...rest] : [io.env['SHELL'] || '/bin/sh'];
      return await runInLabNamespace(dir, argv, io.env);
    } finally {
      await control?.close();
      await live?.stop();
      if (tempDir !== undefined) fs.rmSync(tempDir, { recursive: true, force: true });
    }
  },
});

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

export const rebootCommand = command({
  synopsis: '[--mount DIR]',
  description:
    'Power-cycle a served lab (DIR, or $MDEVKIT_LAB): active devices vanish, parents register again and definitions with start=auto come back.',
  options: LAB_DIR_OPTIONS,
  positionals: [],
  async run(io, { values }) {
    const dir = labDir(io, values, '--mount');
    const socketPath = labSocketPath(nodePath.resolve(io.cwd, dir));
    try {
      // Starting a thousand start=auto devices takes a while: be patient.
      const res = await controlCall(socketPath, { op: 'reboot' }, 120_000);
      const parents = Array.isArray(res['parents']) ? res['parents'].length : 0;
      io.stdout.write(`rebooted ${dir}: ${parents} parents registered\n`);
    } catch (err) {
      if (err instanceof ControlUnavailableError) throw noLabRunning(dir, socketPath);
      throw err;
    }
  },
});
