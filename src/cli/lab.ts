import { renderHostSummary } from '../ctl/summary.js';
import { Lab } from '../sim/lab.js';
import { DEFAULT_PROFILE } from '../sim/profiles/profile.js';
import { writeSnapshot } from '../sim/sysfs/snapshot.js';
import { command, group, type OptionSpec } from './command.js';

/** `--profile P`: which emulated host (lab, agent). */
export const PROFILE_OPTION = {
  type: 'string',
  value: 'P',
  help: `the emulated host: a built-in profile (lab, samples) or the path of a JSON profile; default '${DEFAULT_PROFILE}'`,
} as const satisfies OptionSpec;

const summaryCommand = command({
  synopsis: '[--profile P]',
  description: 'Parents, types and free capacity of the emulated host, read through its sysfs.',
  options: { profile: PROFILE_OPTION },
  positionals: [],
  run(io, { values }) {
    const lab = Lab.fromProfile(values.profile ?? DEFAULT_PROFILE);
    io.stdout.write(
      renderHostSummary(lab.port, `Emulated host '${lab.profile.name}' (${lab.profile.source})`),
    );
  },
});

const snapshotCommand = command({
  synopsis: '[--profile P] [--sriov-manage GPU|ALL] DIR',
  description:
    "Write the emulated host as a static tree: DIR/sys (with sysfs's modes), DIR/etc/mdevctl.d without definitions, and the script directories mdevctl requires (DIR/etc/mdevctl.d/scripts.d, DIR/usr/lib/mdevctl/scripts.d), so MDEVCTL_ENV_ROOT=DIR mdevctl, and Debian's mdevctl in a mount namespace, read it as a host. With --sriov-manage, NVIDIA GPUs have their SR-IOV VFs enabled first (as 'lab sriov-manage -e' would). Refuses to overwrite an existing DIR/sys.",
  options: {
    profile: PROFILE_OPTION,
    'sriov-manage': {
      type: 'string',
      value: 'GPU',
      help: "enable the VFs of GPU (a PCI address, or ALL) before writing, as NVIDIA's sriov-manage -e",
    },
  },
  positionals: [{ name: 'DIR' }],
  run(io, { values, positionals }) {
    const dir = positionals[0]!;
    const lab = Lab.fromProfile(values.profile ?? DEFAULT_PROFILE);
    if (values['sriov-manage'] !== undefined) lab.sriovManage(true, values['sriov-manage']);
    const stats = writeSnapshot(lab.kernel.tree, dir);
    io.stdout.write(
      `wrote ${dir}/sys (${stats.dirs} directories, ${stats.files} files, ${stats.links} links) and ${dir}/etc/mdevctl.d\n`,
    );
  },
});

/**
 * Internal: what `lab serve --udev` runs inside the lab's network namespace
 * (src/sim/udev/relay.ts). Its stdin and stdout are a binary pipe to the
 * serving process, not a terminal's: the relay reads and answers on the
 * process's own streams, not through the command's text I/O.
 */
const udevRelayCommand = command({
  synopsis: '',
  description:
    "Internal to 'lab serve --udev', which starts it in the lab's network namespace: multicast the events the serving process sends on stdin to the namespace's libudev monitors. Not for running by hand.",
  options: {},
  positionals: [],
  async run() {
    const { runRelay } = await import('../sim/udev/relay.js');
    await runRelay(process.stdin, process.stdout);
  },
});

// The live lab (FUSE), libvirtd on it and the VM's side load on use, so
// `lab summary` never pays for them.
const serve = () => import('./lab-serve.js');
const libvirtd = () => import('./lab-libvirtd.js');
const control = () => import('./lab-control.js');

export const LAB = group({
  description: 'The emulated host (the lab).',
  commands: {
    summary: { summary: 'parents, types and capacity of the lab host', load: () => summaryCommand },
    snapshot: {
      summary: 'write the lab as a static tree: DIR/sys and DIR/etc/mdevctl.d',
      load: () => snapshotCommand,
    },
    serve: {
      summary: 'serve the lab live at --mount DIR: DIR/sys over FUSE, DIR/etc/mdevctl.d',
      load: async () => (await serve()).serveCommand,
    },
    shell: {
      summary: "run a command where /sys and /etc/mdevctl.d are the lab's (root)",
      load: async () => (await serve()).shellCommand,
    },
    libvirtd: {
      summary:
        "run Debian's libvirtd on a lab, with the lab's sysfs, udev events and mdevctl (root)",
      load: async () => (await libvirtd()).libvirtdCommand,
    },
    reboot: {
      summary: 'power-cycle a served lab (start=auto devices come back)',
      load: async () => (await serve()).rebootCommand,
    },
    open: {
      summary: 'open a device (mdev UUID or VF address) of a served lab as a VM would (VFIO open)',
      load: async () => (await control()).labOpen,
    },
    close: {
      summary: 'release a device a VM holds open',
      load: async () => (await control()).labClose,
    },
    'sriov-manage': {
      summary: "enable or disable an NVIDIA GPU's SR-IOV VFs on a served lab (-e|-d GPU|ALL)",
      load: async () => (await control()).labSriovManage,
    },
    'udev-relay': {
      summary: "(internal) the lab's udev sender, run by 'lab serve --udev' in its namespace",
      load: () => udevRelayCommand,
    },
  },
});
