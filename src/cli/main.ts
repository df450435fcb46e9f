import * as fs from 'node:fs';
import { ErrnoError, strerror } from '../common/errno.js';
import { CommandError, UsageError, type CommandContext } from './context.js';

/**
 * Entry point of `bin/mdevkit`: picks the command and maps failures to exit
 * codes (0 ok, 1 runtime error, 2 usage error). Commands live in their
 * own modules; this file only wires them.
 */

export const VERSION = '0.1.0';

export type CommandRunner = (ctx: CommandContext, args: string[]) => Promise<number> | number;

interface Command {
  readonly summary: string;
  /** Loaded on use, so a command pays only for its own modules at start-up. */
  load(): Promise<CommandRunner>;
}

/**
 * The command table. Each entry imports its module lazily (esbuild splits
 * it into its own chunk); add new commands here.
 */
const COMMANDS: Record<string, Command> = {
  lab: {
    summary: 'the emulated host: summary, snapshot',
    load: async () => (await import('./lab.js')).labCommand,
  },
  ap: {
    summary: 's390 crypto (vfio-ap): host/guest split, matrix devices as a grid, safe edits',
    load: async () => (await import('./ap.js')).apCommand,
  },
  agent: {
    summary: 'the host agent: HTTP API, events, metrics and dashboard (on the lab by default)',
    load: async () => (await import('./agent.js')).agentCommand,
  },
  ...mdevctlCommands(),
  // desired state (src/host/desired, wired in ./desired.ts)
  plan: {
    summary: 'what apply would change to make the host match a configuration file',
    load: async () => (await import('./desired.js')).planCommand,
  },
  apply: {
    summary: 'make the host match a configuration file (idempotent, crash-safe, owned)',
    load: async () => (await import('./desired.js')).applyCommand,
  },
  capacity: {
    summary: "how many more devices of each type fit, by the vendors' rules",
    load: async () => (await import('./desired.js')).capacityCommand,
  },
  drain: {
    summary: "stop placing devices on a parent and remove mdevkit's idle devices there",
    load: async () => (await import('./desired.js')).drainCommand,
  },
  // libvirt integration (src/libvirt, wired in ./libvirt.ts)
  'nodedev-list': {
    summary: "libvirt node devices of mdevs and their parents (as 'virsh nodedev-list')",
    load: async () => (await import('./libvirt.js')).nodedevListCommand,
  },
  'nodedev-dumpxml': {
    summary: 'libvirt node device XML of a parent or an mdev',
    load: async () => (await import('./libvirt.js')).nodedevDumpxmlCommand,
  },
  'nodedev-define': {
    summary: 'define an mdev from libvirt node device XML',
    load: async () => (await import('./libvirt.js')).nodedevDefineCommand,
  },
  'hostdev-xml': {
    summary: 'domain XML <hostdev> assigning an mdev to a VM',
    load: async () => (await import('./libvirt.js')).hostdevXmlCommand,
  },
  'qemu-args': {
    summary: 'the QEMU -device argument libvirt generates for an mdev',
    load: async () => (await import('./libvirt.js')).qemuArgsCommand,
  },
  'ensure-started': {
    summary: "start the defined mdevs a domain XML uses that aren't running",
    load: async () => (await import('./libvirt.js')).ensureStartedCommand,
  },
  'libvirt-hook': {
    summary: "libvirt's qemu hook: ensure-started in the prepare phase",
    load: async () => (await import('./libvirt.js')).libvirtHookCommand,
  },
};

/**
 * mdevctl's commands, verbatim (src/ctl/mdevctl): `mdevkit list ...` is
 * `mdevctl list ...` (plus --root DIR). `mdevkit mdevctl ARGS` behaves
 * exactly as mdevctl (bin/mdevctl uses it); `mdevkit lsmdev` as lsmdev.
 */
function mdevctlCommands(): Record<string, Command> {
  const load = (prefix: string[], prog: 'mdevctl' | 'lsmdev' | 'mdevkit') => async () => {
    const { runMdevctl } = await import('../ctl/mdevctl/run.js');
    const runner: CommandRunner = (ctx, args) => runMdevctl(ctx, [...prefix, ...args], prog);
    return runner;
  };
  const table: Record<string, Command> = {};
  const commands: [string, string][] = [
    ['list', 'list mediated devices (mdevctl list; alias lsmdev)'],
    ['types', 'list the mdev types of each parent (mdevctl types)'],
    ['define', 'store a device definition (mdevctl define)'],
    ['undefine', 'remove a device definition (mdevctl undefine)'],
    ['modify', 'change a device definition (mdevctl modify)'],
    ['start', 'create a device (mdevctl start)'],
    ['stop', 'remove a device (mdevctl stop)'],
    ['start-parent-mdevs', "start a parent's auto devices (udev's mdevctl call)"],
  ];
  for (const [name, summary] of commands) table[name] = { summary, load: load([name], 'mdevkit') };
  table['lsmdev'] = { summary: 'same as list', load: load(['list'], 'mdevkit') };
  // `mdevkit list --owner` adds owners (src/host/desired's record); without
  // --owner it is mdevctl's list, byte for byte. `mdevctl list` never changes.
  const mdevctlList = table['list']!;
  table['list'] = {
    summary: `${mdevctlList.summary}; --owner adds who made each device`,
    load: async () => {
      const plain = await mdevctlList.load();
      const runner: CommandRunner = async (ctx, args) =>
        args.includes('--owner')
          ? (await import('./desired.js')).listWithOwnerCommand(ctx, args)
          : plain(ctx, args);
      return runner;
    },
  };
  table['mdevctl'] = {
    summary: 'run as mdevctl exactly: mdevkit mdevctl ARGS',
    load: load([], 'mdevctl'),
  };
  return table;
}

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`);
  return `usage: mdevkit <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun 'mdevkit <command> --help' for a command's options.\n`;
}

export function processContext(): CommandContext {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    readStdin: () => fs.readFileSync(0, 'utf8'),
  };
}

export async function main(argv: string[], ctx: CommandContext): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    ctx.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    ctx.stdout.write(`mdevkit ${VERSION}\n`);
    return 0;
  }
  const cmd = COMMANDS[name];
  try {
    if (cmd === undefined) throw new UsageError(`unknown command '${name}'`, usage());
    const run = await cmd.load();
    return await run(ctx, rest);
  } catch (err) {
    return reportError(ctx, err);
  }
}

/** Failures the user can act on get one line; anything else is a bug and keeps its stack. */
export function reportError(ctx: CommandContext, err: unknown): number {
  if (err instanceof UsageError) {
    ctx.stderr.write(`mdevkit: ${err.message}\n`);
    if (err.usage !== undefined) ctx.stderr.write(`\n${err.usage}`);
    return 2;
  }
  if (err instanceof CommandError) {
    ctx.stderr.write(`mdevkit: ${err.message}\n`);
    return err.exitCode;
  }
  // By name, not instanceof: importing the profile module would load zod on
  // every command's start-up path (mdevctl's commands must start fast).
  if (err instanceof Error && err.name === 'ProfileError') {
    ctx.stderr.write(`mdevkit: ${err.message}\n`);
    return 1;
  }
  if (err instanceof ErrnoError) {
    const where = err.path === undefined ? '' : ` (${err.path})`;
    const detail = err.detail === undefined ? '' : `: ${err.detail}`;
    ctx.stderr.write(`mdevkit: ${strerror(err.code)}${where}${detail}\n`);
    return 1;
  }
  // node:util parseArgs reports unknown or malformed options this way.
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
    ctx.stderr.write(`mdevkit: ${(err as Error).message}\n`);
    return 2;
  }
  if (err instanceof Error && (err as { code?: unknown }).code !== undefined) {
    ctx.stderr.write(`mdevkit: ${err.message}\n`);
    return 1;
  }
  throw err;
}
