import { parseArgs } from 'node:util';
import { renderHostSummary } from '../ctl/summary.js';
import { Lab } from '../sim/lab.js';
import { DEFAULT_PROFILE } from '../sim/profiles/profile.js';
import { writeSnapshot } from '../sim/sysfs/snapshot.js';
import { UsageError, type CommandContext } from './context.js';

export const LAB_USAGE = `usage: mdevkit lab <command> [options]

Commands of the emulated host (the lab):
  summary  [--profile P]        parents, types and capacity of the lab host
  snapshot [--profile P] DIR    write the lab as a static tree: DIR/sys and DIR/etc/mdevctl.d
  serve [--profile P] --mount DIR   serve the lab live: DIR/sys over FUSE, DIR/etc/mdevctl.d
  shell [--profile P] [--mount DIR] [-- CMD...]   run CMD where /sys is the lab's (root)
  libvirtd [--mount DIR] [--mdevctl PATH]   run Debian's libvirtd on a lab (root)
  reboot [--mount DIR]          power-cycle a served lab (start=auto devices come back)
  open UUID [--lab DIR]         open a device of a served lab as a VM would (VFIO open)
  close UUID [--lab DIR]        release it again

Profiles: a built-in name (lab, samples) or a path to a JSON profile.
`;

type LabSubcommand = (ctx: CommandContext, args: string[]) => Promise<number> | number;

const SUBCOMMANDS: Record<string, LabSubcommand> = {
  summary(ctx, args) {
    const { values } = parseArgs({ args, options: { profile: { type: 'string' } }, strict: true });
    const lab = Lab.fromProfile(values.profile ?? DEFAULT_PROFILE);
    ctx.stdout.write(
      renderHostSummary(lab.port, `Emulated host '${lab.profile.name}' (${lab.profile.source})`),
    );
    return 0;
  },
  snapshot(ctx, args) {
    const { values, positionals } = parseArgs({
      args,
      options: { profile: { type: 'string' } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 1) throw new UsageError('lab snapshot takes one DIR', LAB_USAGE);
    const dir = positionals[0]!;
    const lab = Lab.fromProfile(values.profile ?? DEFAULT_PROFILE);
    const stats = writeSnapshot(lab.kernel.tree, dir);
    ctx.stdout.write(
      `wrote ${dir}/sys (${stats.dirs} directories, ${stats.files} files, ${stats.links} links) and ${dir}/etc/mdevctl.d\n`,
    );
    return 0;
  },
};

/** Register more lab subcommands (serve, shell, reboot, open, close ...). */
export function addLabSubcommand(name: string, run: LabSubcommand): void {
  SUBCOMMANDS[name] = run;
}

export async function labCommand(ctx: CommandContext, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    ctx.stdout.write(LAB_USAGE);
    return sub === undefined ? 2 : 0;
  }
  const run = SUBCOMMANDS[sub];
  if (run === undefined) throw new UsageError(`unknown lab command '${sub}'`, LAB_USAGE);
  return run(ctx, rest);
}

// The live lab (FUSE): loaded on use, so `lab summary` never pays for it.
addLabSubcommand('serve', async (ctx, args) =>
  (await import('./lab-serve.js')).serveCommand(ctx, args),
);
addLabSubcommand('shell', async (ctx, args) =>
  (await import('./lab-serve.js')).shellCommand(ctx, args),
);
addLabSubcommand('libvirtd', async (ctx, args) =>
  (await import('./lab-libvirtd.js')).libvirtdCommand(ctx, args),
);
// Internal: run by `lab serve --udev` inside the lab's network namespace.
addLabSubcommand('udev-relay', async () => {
  const { runRelay } = await import('../sim/udev/relay.js');
  await runRelay(process.stdin, process.stdout);
  return 0;
});
addLabSubcommand('reboot', async (ctx, args) =>
  (await import('./lab-serve.js')).rebootCommand(ctx, args),
);
// Playing the VM: open/release devices through the served lab's control socket.
addLabSubcommand('open', async (ctx, args) =>
  (await import('./lab-control.js')).labOpen(ctx, args),
);
addLabSubcommand('close', async (ctx, args) =>
  (await import('./lab-control.js')).labClose(ctx, args),
);
