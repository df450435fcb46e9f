import type { CommandIo } from '../ctl/io.js';
import { group, runAt, runProgram, type Entry, type RawCommand } from './command.js';

/**
 * Entry point of `bin/mdevkit`: the table of commands. Each entry imports
 * its module lazily (esbuild splits it into its own chunk), so a command
 * pays at start-up only for what it uses. A command module declares its
 * commands with src/cli/command.ts; add one row here.
 */

export const VERSION = '0.1.0';

const libvirt = () => import('./libvirt.js');
const desired = () => import('./desired.js');

export const MDEVKIT = group({
  version: VERSION,
  commands: {
    lab: {
      summary:
        'the emulated host: summary, snapshot, the live lab (serve, shell, reboot, open, close)',
      load: async () => (await import('./lab.js')).LAB,
    },
    ap: {
      summary: 's390 crypto (vfio-ap): host/guest split, matrix devices as a grid, safe edits',
      load: async () => (await import('./ap.js')).AP,
    },
    agent: {
      summary: 'the host agent: HTTP API, events, metrics and dashboard (on the lab by default)',
      load: async () => (await import('./agent.js')).agentCommand,
    },
    k8s: {
      summary: 'Kubernetes node component: device plugin for KubeVirt, node configuration by label',
      load: async () => (await import('./k8s.js')).K8S,
    },
    ...mdevctlCommands(),
    vf: {
      summary:
        "NVIDIA's SR-IOV VF vGPUs (no mdev bus): list, types, capacity, create, remove, start, stop",
      load: async () => (await import('./vf.js')).VF,
    },
    aggregation: {
      summary: 'how many instances a device aggregates (mdev/aggregation), read or changed',
      load: async () => (await import('./aggregation.js')).aggregationCommand,
    },
    // desired state (src/host/desired, wired in ./desired.ts)
    plan: {
      summary: 'what apply would change to make the host match a configuration file',
      load: async () => (await desired()).planCommand,
    },
    apply: {
      summary: 'make the host match a configuration file (idempotent, crash-safe, owned)',
      load: async () => (await desired()).applyCommand,
    },
    capacity: {
      summary: "how many more devices of each type fit, by the vendors' rules",
      load: async () => (await desired()).capacityCommand,
    },
    drain: {
      summary: "stop placing devices on a parent and remove mdevkit's idle devices there",
      load: async () => (await desired()).drainCommand,
    },
    // libvirt integration (src/libvirt, wired in ./libvirt.ts)
    'nodedev-list': {
      summary: "libvirt node devices of mdevs and their parents (as 'virsh nodedev-list')",
      load: async () => (await libvirt()).nodedevListCommand,
    },
    'nodedev-dumpxml': {
      summary: 'libvirt node device XML of a parent or an mdev',
      load: async () => (await libvirt()).nodedevDumpxmlCommand,
    },
    'nodedev-define': {
      summary: 'define an mdev from libvirt node device XML',
      load: async () => (await libvirt()).nodedevDefineCommand,
    },
    'hostdev-xml': {
      summary: 'domain XML <hostdev> assigning an mdev to a VM',
      load: async () => (await libvirt()).hostdevXmlCommand,
    },
    'qemu-args': {
      summary: 'the QEMU -device argument libvirt generates for an mdev',
      load: async () => (await libvirt()).qemuArgsCommand,
    },
    'ensure-started': {
      summary: "start the defined mdevs a domain XML uses that aren't running",
      load: async () => (await libvirt()).ensureStartedCommand,
    },
    'libvirt-hook': {
      summary: "libvirt's qemu hook: ensure-started in the prepare phase",
      load: async () => (await libvirt()).libvirtHookCommand,
    },
  },
});

/**
 * mdevctl's commands, verbatim (src/ctl/mdevctl, its own clap-alike
 * parser): `mdevkit list ...` is `mdevctl list ...` (plus --root DIR).
 * `mdevkit mdevctl ARGS` behaves exactly as mdevctl (bin/mdevctl uses it);
 * `mdevkit lsmdev` as lsmdev.
 */
function mdevctlCommands(): Record<string, Entry> {
  const entry = (
    summary: string,
    prefix: string[],
    prog: 'mdevctl' | 'mdevkit' = 'mdevkit',
  ): Entry => ({
    summary,
    load: async () => {
      const { runMdevctl } = await import('../ctl/mdevctl/run.js');
      return { kind: 'raw', run: (io, args) => runMdevctl(io, [...prefix, ...args], prog) };
    },
  });
  const mdevctlList = entry('list mediated devices (mdevctl list; alias lsmdev)', ['list']);
  return {
    // `mdevkit list --owner` adds who made each device (src/host/desired's
    // record); without --owner it is mdevctl's list, byte for byte, and
    // `mdevctl list` never changes.
    list: {
      summary: `${mdevctlList.summary}; --owner adds who made each device`,
      load: async () => {
        const plain = (await mdevctlList.load()) as RawCommand;
        const { listWithOwnerCommand } = await desired();
        return {
          kind: 'raw',
          run: (io, args) =>
            args.includes('--owner')
              ? runAt(['list'], listWithOwnerCommand, io, args)
              : plain.run(io, args),
        };
      },
    },
    types: entry('list the mdev types of each parent (mdevctl types)', ['types']),
    define: entry('store a device definition (mdevctl define)', ['define']),
    undefine: entry('remove a device definition (mdevctl undefine)', ['undefine']),
    modify: entry('change a device definition (mdevctl modify)', ['modify']),
    start: entry('create a device (mdevctl start)', ['start']),
    stop: entry('remove a device (mdevctl stop)', ['stop']),
    'start-parent-mdevs': entry("start a parent's auto devices (udev's mdevctl call)", [
      'start-parent-mdevs',
    ]),
    lsmdev: entry('same as list', ['list']),
    mdevctl: entry('run as mdevctl exactly: mdevkit mdevctl ARGS', [], 'mdevctl'),
  };
}

export function main(argv: readonly string[], io: CommandIo): Promise<number> {
  return runProgram(MDEVKIT, io, argv);
}
