import * as fs from 'node:fs';
import * as net from 'node:net';
import * as nodePath from 'node:path';
import { mountpointState } from '../sim/fuse/sysfs-fuse.js';
import { DEFAULT_PROFILE } from '../sim/profiles/profile.js';
import { CommandError, UsageError, command } from './command.js';
import { labDir } from './lab-control.js';
import {
  LiveLab,
  requireRoot,
  runInLabNamespace,
  startControl,
  udevRelayCommand,
} from './lab-serve.js';
import { PROFILE_OPTION } from './lab.js';

/**
 * `mdevkit lab libvirtd`: Debian's libvirtd, unmodified, on a lab. It runs
 * where `lab shell` runs commands — /sys, /etc/mdevctl.d and /run/libvirt
 * the lab's, in the lab's network namespace where its udev events arrive —
 * with what a host without systemd lacks, private to the lab:
 *
 *   DIR/libvirt/passwd, group   copies of /etc/passwd and /etc/group with the
 *                               libvirt-qemu user and group QEMU runs as
 *   DIR/libvirt/etc             a copy of /etc/libvirt, made at first start
 *   DIR/libvirt/{lib,cache,log} /var/lib, /var/cache, /var/log libvirt
 *   DIR/libvirt/run             /run/libvirt: its sockets, so that `virsh -c
 *                               qemu:///system` in `lab shell` reaches it
 *   DIR/libvirt/bin             first on its PATH: `mdevctl`, a link to
 *                               mdevkit's bin/mdevctl or to --mdevctl PATH
 *
 * libvirt finds mdevctl on its PATH, so the same libvirtd can be checked
 * against mdevkit's mdevctl and against a reference one.
 */

/** The uid and gid Debian's libvirt-daemon-system gives libvirt-qemu. */
const LIBVIRT_QEMU_ID = 64055;

export const libvirtdCommand = command({
  synopsis: '[--mount DIR] [--profile P] [--mdevctl PATH] [-- LIBVIRTD-ARGS...]',
  description: `Run Debian's libvirtd (package libvirt-daemon, with libvirt-daemon-driver-qemu) on the lab at DIR: /sys, /etc/mdevctl.d and udev events are the lab's, /run/libvirt, /var/{lib,cache,log}/libvirt and /etc/libvirt are private to it under DIR/libvirt, and mdevctl on its PATH is mdevkit's bin/mdevctl, or PATH with --mdevctl (e.g. /usr/bin/mdevctl). Serves the lab first (with udev events) unless it is served already. Prints "ready DIR" once libvirtd answers; SIGINT or SIGTERM stops it (and the lab, if served here). libvirtd's own log is DIR/libvirt/libvirtd.log. Needs root.

Then, from anywhere:
  mdevkit lab shell --mount DIR -- virsh -c qemu:///system nodedev-list --cap mdev_types
  virsh -c 'qemu:///system?socket=DIR/libvirt/run/libvirt-sock' nodedev-list`,
  options: {
    mount: {
      type: 'string',
      value: 'DIR',
      help: 'the lab: one served there with udev events (joined), or where to serve one; default: $MDEVKIT_LAB',
    },
    profile: PROFILE_OPTION,
    mdevctl: {
      type: 'string',
      value: 'PATH',
      help: "the mdevctl libvirtd runs (e.g. /usr/bin/mdevctl); default: mdevkit's bin/mdevctl",
    },
  },
  positionals: [],
  positionalsHint: 'put libvirtd arguments after "--": lab libvirtd -- LIBVIRTD-ARGS...',
  passThrough: true,
  async run(io, { values, rest }) {
    requireRoot('lab libvirtd');
    const dir = nodePath.resolve(io.cwd, labDir(io, values, '--mount'));
    const libvirtd = findInPath('libvirtd', io.env['PATH']);
    if (libvirtd === undefined) {
      throw new CommandError(
        'libvirtd is not installed (apt-get install libvirt-daemon libvirt-daemon-driver-qemu)',
      );
    }
    const mdevctl = values.mdevctl ?? mdevkitMdevctl();
    if (!isExecutable(mdevctl)) throw new CommandError(`${mdevctl} is not an executable mdevctl`);

    const state = await mountpointState(nodePath.join(dir, 'sys'));
    if (state === 'live' && values.profile !== undefined) {
      throw new UsageError(`${dir} is served already; --profile applies only to a new lab`);
    }
    let live: LiveLab | undefined;
    if (state !== 'live') {
      live = await LiveLab.start({
        profile: values.profile ?? DEFAULT_PROFILE,
        dir,
        log: io.stderr,
        udevRelayCommand: udevRelayCommand(),
      });
    } else if (!fs.existsSync(nodePath.join(dir, 'netns'))) {
      throw new CommandError(
        `the lab at ${dir} sends no udev events, which libvirt needs; serve it with 'lab serve --udev'`,
      );
    }
    const control = live === undefined ? undefined : await startControl(live);
    try {
      const setup = prepareLibvirtState(dir, mdevctl);
      const log = fs.openSync(nodePath.join(dir, 'libvirt', 'libvirtd.log'), 'a');
      const socket = nodePath.join(dir, 'libvirt', 'run', 'libvirt-sock');
      fs.rmSync(socket, { force: true });
      let exited = false;
      const run = runInLabNamespace(
        dir,
        [libvirtd, '--pid-file', '/run/libvirt/libvirtd.pid', ...rest],
        { ...io.env, PATH: `${nodePath.join(dir, 'libvirt', 'bin')}:${io.env['PATH'] ?? ''}` },
        { setup, stdio: ['ignore', log, log], signals: 'forward' },
      ).finally(() => {
        exited = true;
        fs.closeSync(log);
      });
      await waitForSocket(socket, () => exited, 60_000).catch(async (err: unknown) => {
        const status = exited ? await run : undefined;
        throw new CommandError(
          `libvirtd did not come up (${(err as Error).message}${status === undefined ? '' : `, exit status ${status}`}); see ${nodePath.join(dir, 'libvirt', 'libvirtd.log')}`,
        );
      });
      io.stdout.write(`ready ${dir}\n`);
      return await run;
    } finally {
      await control?.close();
      await live?.stop();
    }
  },
});

/**
 * Make DIR/libvirt ready and return the shell that mounts it in the lab's
 * namespace: fresh passwd/group copies (the host's, plus libvirt-qemu), a
 * copy of /etc/libvirt the first time, state directories, a clean run
 * directory and the mdevctl link.
 */
function prepareLibvirtState(dir: string, mdevctl: string): string {
  const base = nodePath.join(dir, 'libvirt');
  for (const d of ['run', 'lib', 'cache', 'log', 'bin']) {
    fs.mkdirSync(nodePath.join(base, d), { recursive: true });
  }
  // /run is runtime state: nothing from a previous libvirtd may remain.
  for (const name of fs.readdirSync(nodePath.join(base, 'run'))) {
    fs.rmSync(nodePath.join(base, 'run', name), { recursive: true, force: true });
  }
  const etc = nodePath.join(base, 'etc');
  if (!fs.existsSync(etc)) {
    fs.cpSync('/etc/libvirt', etc, { recursive: true, verbatimSymlinks: true });
  }
  writeAccounts(base);
  const link = nodePath.join(base, 'bin', 'mdevctl');
  fs.rmSync(link, { force: true });
  fs.symlinkSync(nodePath.resolve(mdevctl), link);
  for (const d of ['/var/lib/libvirt', '/var/cache/libvirt', '/var/log/libvirt']) {
    fs.mkdirSync(d, { recursive: true });
  }
  const q = (p: string): string => `'${p.replace(/'/g, `'\\''`)}'`;
  return [
    `mount --bind ${q(nodePath.join(base, 'passwd'))} /etc/passwd`,
    `mount --bind ${q(nodePath.join(base, 'group'))} /etc/group`,
    `mount --bind ${q(etc)} /etc/libvirt`,
    `mount --bind ${q(nodePath.join(base, 'lib'))} /var/lib/libvirt`,
    `mount --bind ${q(nodePath.join(base, 'cache'))} /var/cache/libvirt`,
    `mount --bind ${q(nodePath.join(base, 'log'))} /var/log/libvirt`,
  ].join(' && ');
}

/** The host's accounts, plus the libvirt-qemu user and group (and kvm) where missing. */
function writeAccounts(base: string): void {
  const passwd = fs.readFileSync('/etc/passwd', 'utf8');
  const group = fs.readFileSync('/etc/group', 'utf8');
  const has = (file: string, name: string): boolean =>
    file.split('\n').some((l) => l.startsWith(`${name}:`));
  const usedIds = (file: string): Set<number> =>
    new Set(file.split('\n').map((l) => Number(l.split(':')[2])));
  const freeId = (used: Set<number>): number => {
    let id = LIBVIRT_QEMU_ID;
    while (used.has(id)) id++;
    return id;
  };
  let groupOut = group.endsWith('\n') ? group : `${group}\n`;
  let passwdOut = passwd.endsWith('\n') ? passwd : `${passwd}\n`;
  if (!has(groupOut, 'kvm')) groupOut += `kvm:x:${freeId(usedIds(groupOut))}:\n`;
  if (!has(groupOut, 'libvirt-qemu')) groupOut += `libvirt-qemu:x:${freeId(usedIds(groupOut))}:\n`;
  const gid = groupOut
    .split('\n')
    .find((l) => l.startsWith('libvirt-qemu:'))!
    .split(':')[2];
  if (!has(passwdOut, 'libvirt-qemu')) {
    passwdOut += `libvirt-qemu:x:${freeId(usedIds(passwdOut))}:${gid}:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\n`;
  }
  fs.writeFileSync(nodePath.join(base, 'passwd'), passwdOut, { mode: 0o644 });
  fs.writeFileSync(nodePath.join(base, 'group'), groupOut, { mode: 0o644 });
}

/** Resolve once something accepts connections on the unix socket `path`. */
async function waitForSocket(path: string, gaveUp: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (gaveUp()) throw new Error('libvirtd exited');
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(path);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`no answer on ${path} after ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** mdevkit's own bin/mdevctl, beside the bin/mdevkit this process runs. */
function mdevkitMdevctl(): string {
  const self = process.argv[1];
  if (self === undefined)
    throw new CommandError('cannot tell where bin/mdevctl is; give --mdevctl');
  return nodePath.join(nodePath.dirname(fs.realpathSync(self)), 'mdevctl');
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function findInPath(cmd: string, pathVar: string | undefined): string | undefined {
  const dirs = [...(pathVar ?? '').split(':'), '/usr/sbin', '/sbin'].filter((d) => d !== '');
  return dirs.map((d) => nodePath.join(d, cmd)).find(isExecutable);
}
