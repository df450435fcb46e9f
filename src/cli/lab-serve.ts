import { spawn, type StdioOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import type { Uevent } from '../sim/core/kernel.js';
import type { UdevRelay } from '../sim/udev/relay.js';
import {
  detachMount,
  isMountpoint,
  mountSysfs,
  mountpointState,
  type SysfsMount,
} from '../sim/fuse/sysfs-fuse.js';
import { Autostart, describeAutostartRun } from '../host/autostart.js';
import { cleanConfigDirDebris } from '../host/config-store.js';
import { environmentAt } from '../host/environment.js';
import { VfAutostart, describeVfAutostartRun } from '../host/vf-vgpu.js';
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
 *   DIR/netns             the bound network namespace of its udev events
 *                         (with --udev; src/sim/udev/relay.ts)
 *   DIR/libvirt/run       /run/libvirt in `lab shell` (`lab libvirtd`'s sockets)
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
  /**
   * Send udev events into a private network namespace bound at DIR/netns;
   * the command that runs the relay inside it (`mdevkit lab udev-relay`).
   */
  udevRelayCommand?: readonly string[];
}

/** A lab served at a directory: the FUSE mount, the config dir, autostart. */
export class LiveLab {
  readonly sysDir: string;
  readonly configDir: string;
  readonly socketPath: string;
  /** The bound network namespace of the lab's udev events (DIR/netns). */
  readonly netnsPath: string;
  #mount: SysfsMount | undefined;
  #udev: UdevRelay | undefined;
  #stopUevents: (() => void) | undefined;
  readonly autostart: Autostart;
  /** The VF vGPUs' rule: start=auto vGPUs come back once their GPU's VFs exist. */
  readonly vfAutostart: VfAutostart;

  private constructor(
    readonly lab: Lab,
    readonly dir: string,
    private readonly options: LiveLabOptions,
  ) {
    this.sysDir = nodePath.join(dir, 'sys');
    this.configDir = nodePath.join(dir, 'etc', 'mdevctl.d');
    this.socketPath = nodePath.join(dir, 'lab.sock');
    this.netnsPath = nodePath.join(dir, 'netns');
    // Autostart runs on the lab's in-process port, never through this
    // process's own FUSE mount (which would wait for itself); the config
    // dir DIR/etc/mdevctl.d is a plain directory.
    this.autostart = new Autostart(environmentAt(dir, lab.port), {
      onRun: (run) => {
        for (const line of describeAutostartRun(run)) options.log.write(`mdevkit lab: ${line}\n`);
      },
    });
    this.vfAutostart = new VfAutostart(environmentAt(dir, lab.port), {
      onRun: (run) => {
        for (const line of describeVfAutostartRun(run)) {
          options.log.write(`mdevkit lab: ${line}\n`);
        }
      },
    });
  }

  /** Both rules have run for everything queued so far. */
  async settle(): Promise<void> {
    await this.autostart.flush();
    await this.vfAutostart.flush();
  }

  static async start(options: LiveLabOptions): Promise<LiveLab> {
    const dir = nodePath.resolve(options.dir);
    const lab = Lab.fromProfile(options.profile);
    const live = new LiveLab(lab, dir, options);
    await live.#prepareDir();
    live.#stopUevents = lab.kernel.onUevent((e) => {
      options.monitor?.write(formatUevent(e));
      live.#udev?.send(e);
      live.autostart.uevent(e);
      live.vfAutostart.uevent(e);
    });
    // The host boots: its parents registered before anyone listened.
    live.autostart.coldplug();
    live.vfAutostart.coldplug();
    await live.settle();
    live.#mount = await mountSysfs(lab.kernel.tree, live.sysDir, {
      ...(options.cacheSeconds !== undefined ? { cacheSeconds: options.cacheSeconds } : {}),
    });
    if (options.udevRelayCommand !== undefined) {
      try {
        const { UdevRelay } = await import('../sim/udev/relay.js');
        live.#udev = await UdevRelay.start({
          nsPath: live.netnsPath,
          relayCommand: options.udevRelayCommand,
        });
      } catch (err) {
        await live.stop();
        throw new CommandError(`cannot send the lab's udev events: ${(err as Error).message}`);
      }
    }
    return live;
  }

  async #prepareDir(): Promise<void> {
    for (const d of [
      this.sysDir,
      nodePath.join(this.configDir, 'scripts.d', 'callouts'),
      nodePath.join(this.configDir, 'scripts.d', 'notifiers'),
      // mdevctl ≥ 1.3 (and bin/mdevctl) require these under the root they run in
      nodePath.join(this.dir, 'usr', 'lib', 'mdevctl', 'scripts.d', 'callouts'),
      nodePath.join(this.dir, 'usr', 'lib', 'mdevctl', 'scripts.d', 'notifiers'),
    ]) {
      await fs.promises.mkdir(d, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
        // mkdir on a stale FUSE mount fails with ENOTCONN; handled below.
        if (err.code !== 'ENOTCONN') throw err;
      });
    }
    // A lab killed mid-write left temp files in its config dir; they are ours.
    cleanConfigDirDebris(this.configDir);
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

  /**
   * Autostart runs to its end first: the devices it starts are uevents
   * that the relay must still see. Then nothing more is sent, the relay
   * goes (and with it the namespace's binding), and the mount last.
   */
  async stop(): Promise<void> {
    await this.settle();
    this.#stopUevents?.();
    await this.#udev?.close();
    if (this.#mount !== undefined && !isMountpoint(this.sysDir)) {
      // Someone ran fusermount -u: stopping is all that is left to do.
      this.options.log.write(
        `mdevkit lab: ${this.sysDir} was already unmounted (removed from outside)\n`,
      );
    }
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
  // Decimal seconds only: Number() would take "" and " " as 0, "0x10" as 16, "1e3" as 1000.
  const n = /^[0-9]{1,4}(\.[0-9]{1,3})?$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isFinite(n) || n < 0 || n > 3600) {
    throw new UsageError(`--cache takes seconds between 0 and 3600, not '${text}'`);
  }
  return n;
}

/** How to run this CLI's `lab udev-relay` (inside the lab's network namespace). */
export function udevRelayCommand(): string[] {
  return [process.execPath, process.argv[1] ?? 'mdevkit', 'lab', 'udev-relay'];
}

export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) throw new CommandError(`${what} needs root`);
}

function requireFuse(): void {
  if (!fs.existsSync('/dev/fuse')) {
    throw new CommandError('FUSE is not available here (/dev/fuse is missing)');
  }
}

export const serveCommand = command({
  synopsis: '[--profile P] --mount DIR [--udev] [--monitor] [--cache SECONDS]',
  description: `Serve the emulated host's sysfs at DIR/sys over FUSE, with the config dir at DIR/etc/mdevctl.d, and run autostart as mdevctl's udev rule does. Prints "ready DIR" once the mount is usable; SIGINT or SIGTERM unmounts and exits 0. A stale mount left by a crash is cleared.`,
  options: {
    profile: PROFILE_OPTION,
    mount: {
      type: 'string',
      value: 'DIR',
      help: 'where to serve the lab (DIR/sys, DIR/etc/mdevctl.d, DIR/lab.sock)',
    },
    udev: {
      type: 'boolean',
      help: "send every uevent, as udevd would after processing it, to the libudev monitors (libvirt, udevadm) of a private network namespace bound at DIR/netns, which 'lab shell' joins (root; util-linux)",
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
    if (values.udev === true) requireRoot('lab serve --udev (it makes a network namespace)');
    const dir = nodePath.resolve(io.cwd, values.mount);
    const cacheSeconds = parseCache(values.cache);
    const stopped = untilStopped(); // listen from the start: a signal while mounting still unmounts
    const live = await LiveLab.start({
      profile: values.profile ?? DEFAULT_PROFILE,
      dir,
      log: io.stderr,
      ...(values.monitor === true ? { monitor: io.stdout } : {}),
      ...(cacheSeconds !== undefined ? { cacheSeconds } : {}),
      ...(values.udev === true ? { udevRelayCommand: udevRelayCommand() } : {}),
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
export function startControl(live: LiveLab): Promise<{ close(): Promise<void> }> {
  return startControlServer(live.lab, live.socketPath, {
    afterReboot: () => live.settle(),
    afterSriovManage: () => live.settle(),
  });
}

export const shellCommand = command({
  synopsis: '[--profile P] [--mount DIR] [--no-udev] [-- CMD ARGS...]',
  description: `Run CMD (default: your shell) in a private mount namespace where /sys and /etc/mdevctl.d are the lab's, so mdevctl, mdevkit and scripts see the lab as the host. With --mount DIR of a lab already served, joins it; otherwise serves one for the duration of CMD. Needs root. MDEVKIT_LAB=DIR is set.

When the lab sends udev events (a lab this command serves does, unless --no-udev; 'lab serve --udev' and 'lab libvirtd' do), CMD runs in the lab's network namespace and libudev monitors there see devices come and go. SYSTEMD_DEVICE_VERIFY_SYSFS=0 is set, since libudev otherwise drops devices that are not on the kernel's sysfs. /run/libvirt is the lab's (DIR/libvirt/run), so virsh -c qemu:///system talks to 'lab libvirtd'.`,
  options: {
    profile: PROFILE_OPTION,
    mount: { type: 'string', value: 'DIR', help: 'a lab served there (joined) or to serve there' },
    'no-udev': {
      type: 'boolean',
      help: 'a lab served here sends no udev events (no network namespace; CMD runs in the host one)',
    },
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

    const udev = values['no-udev'] === true ? {} : { udevRelayCommand: udevRelayCommand() };
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
          ...udev,
        });
      }
    } else {
      tempDir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'mdevkit-lab-'));
      dir = tempDir;
      live = await LiveLab.start({
        profile: values.profile ?? DEFAULT_PROFILE,
        dir,
        log: io.stderr,
        ...udev,
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

export interface LabNamespaceOptions {
  /** More shell, run after the lab's mounts and before argv (lab libvirtd's own mounts). */
  readonly setup?: string;
  readonly stdio?: StdioOptions;
  /** 'shell' (default): SIGINT is the command's business; 'forward': pass SIGINT on too. */
  readonly signals?: 'shell' | 'forward';
}

/**
 * Run argv with DIR/sys on /sys, DIR/etc/mdevctl.d on /etc/mdevctl.d and
 * DIR/libvirt/run on /run/libvirt, in a private mount namespace (util-linux
 * unshare) and, when the lab sends udev events, in the lab's network
 * namespace (nsenter --net=DIR/netns); return its exit status.
 * Asynchronous on purpose: this process may be the one serving DIR/sys.
 */
export function runInLabNamespace(
  dir: string,
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  options: LabNamespaceOptions = {},
): Promise<number> {
  const setup = options.setup ?? '';
  fs.mkdirSync('/etc/mdevctl.d', { recursive: true });
  fs.mkdirSync('/run/libvirt', { recursive: true });
  fs.mkdirSync(nodePath.join(dir, 'libvirt', 'run'), { recursive: true });
  const script =
    'mount --rbind "$0/sys" /sys && mount --bind "$0/etc/mdevctl.d" /etc/mdevctl.d && ' +
    'mount --bind "$0/libvirt/run" /run/libvirt && ' +
    (setup === '' ? '' : `${setup} && `) +
    'exec "$@"';
  const unshare = ['unshare', '-m', '--propagation', 'private', '--', 'sh', '-c', script, dir];
  const netns = nodePath.join(dir, 'netns');
  const inNetns = isMountpoint(netns) ? ['nsenter', `--net=${netns}`, '--'] : [];
  const [cmd, ...args] = [...inNetns, ...unshare, ...argv];
  const child = spawn(cmd!, args, {
    stdio: options.stdio ?? 'inherit',
    // libudev (systemd 252) drops devices whose directory is not on the
    // kernel's sysfs unless told otherwise; the lab's /sys is FUSE.
    env: { ...env, MDEVKIT_LAB: dir, SYSTEMD_DEVICE_VERIFY_SYSFS: '0' },
  });
  // The terminal's Ctrl-C reaches the whole foreground group: let the
  // command decide what it means, as a shell does for its children. A
  // daemon (libvirtd, its output in a file) gets every signal passed on.
  const forward = (sig: NodeJS.Signals): void => void child.kill(sig);
  const ignore = options.signals === 'forward' ? forward : (): void => {};
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
    'Power-cycle a served lab (DIR, or $MDEVKIT_LAB): active devices vanish, parents register again and definitions with start=auto come back. SR-IOV VFs are gone too, unless a boot unit enables them again (lab sriov-manage --boot); start=auto VF vGPUs come back with their VFs.',
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
