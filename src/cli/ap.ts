import { parseArgs } from 'node:util';
import { apChangeMasks, apChangeMatrix } from '../ctl/ap/edit.js';
import { ApListError, parseIdList } from '../host/ap/ids.js';
import { readApHost } from '../host/ap/model.js';
import { apShowJson, renderApShow } from '../ctl/ap/show.js';
import { isUuid } from '../common/uuid.js';
import type { SysfsPort } from '../port/sysfs-port.js';
import { environmentFrom } from '../host/environment.js';
import { UsageError, type CommandContext } from './context.js';

export const AP_USAGE = `usage: mdevkit ap <command> [options]

s390 crypto (vfio-ap): the AP bus's host/guest split and the matrix devices.
Ids are lists such as 5,0x47,10-12 (decimal or 0x hex, ranges inclusive).

Commands:
  show [--json]
      the split between host and guests and every matrix device, as an
      adapters x domains grid showing who holds each queue
  reserve [--adapters L] [--domains L] [--dry-run]
      give adapters and/or domains to guests (vfio_ap): clears their bits in
      /sys/bus/ap/apmask and aqmask; shows which queues change side first
  release [--adapters L] [--domains L] [--dry-run]
      give them back to the host; refused, naming queue and device, while a
      matrix device holds one of the queues
  assign UUID [--adapters L] [--domains L] [--control-domains L] [--dry-run]
  unassign UUID [--adapters L] [--domains L] [--control-domains L] [--dry-run]
      change a matrix device: conflicts are checked and explained first, then
      the whole change is written at once through its ap_config

Options:
  --root DIR   the host's root (default: MDEVCTL_ENV_ROOT, else /): a real
               host, a FUSE-mounted lab (mdevkit lab serve) or a lab snapshot
`;

type Sub = (ctx: CommandContext, port: SysfsPort, args: string[]) => number;

const ROOT_OPTION = { root: { type: 'string' } } as const;

function ids(text: string | undefined, what: string): number[] | undefined {
  if (text === undefined) return undefined;
  try {
    return parseIdList(text, { what });
  } catch (err) {
    if (err instanceof ApListError) throw new UsageError(err.message, AP_USAGE);
    throw err;
  }
}

const maskOptions = {
  ...ROOT_OPTION,
  adapters: { type: 'string' },
  domains: { type: 'string' },
  'dry-run': { type: 'boolean' },
} as const;

const matrixOptions = { ...maskOptions, 'control-domains': { type: 'string' } } as const;

function maskCommand(direction: 'reserve' | 'release'): Sub {
  return (ctx, port, args) => {
    const { values, positionals } = parseArgs({
      args,
      options: maskOptions,
      allowPositionals: true,
    });
    if (positionals.length > 0) {
      throw new UsageError(
        `ap ${direction} takes --adapters and/or --domains, not '${positionals[0]}'`,
        AP_USAGE,
      );
    }
    const adapters = ids(values.adapters, 'adapter');
    const domains = ids(values.domains, 'domain');
    if (adapters === undefined && domains === undefined) {
      throw new UsageError(`ap ${direction} needs --adapters L and/or --domains L`, AP_USAGE);
    }
    apChangeMasks(port, ctx.stdout, direction, {
      adapters,
      domains,
      dryRun: values['dry-run'] === true,
    });
    return 0;
  };
}

function matrixCommand(op: 'assign' | 'unassign'): Sub {
  return (ctx, port, args) => {
    const { values, positionals } = parseArgs({
      args,
      options: matrixOptions,
      allowPositionals: true,
    });
    if (positionals.length !== 1)
      throw new UsageError(`ap ${op} takes one matrix device UUID`, AP_USAGE);
    const uuid = positionals[0]!;
    if (!isUuid(uuid)) throw new UsageError(`'${uuid}' is not a UUID`, AP_USAGE);
    const change = {
      adapters: ids(values.adapters, 'adapter'),
      domains: ids(values.domains, 'domain'),
      controlDomains: ids(values['control-domains'], 'control domain'),
    };
    if (Object.values(change).every((v) => v === undefined)) {
      throw new UsageError(`ap ${op} needs --adapters, --domains or --control-domains`, AP_USAGE);
    }
    apChangeMatrix(port, ctx.stdout, uuid, op, { ...change, dryRun: values['dry-run'] === true });
    return 0;
  };
}

const SUBCOMMANDS: Record<string, Sub> = {
  show(ctx, port, args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...ROOT_OPTION, json: { type: 'boolean' } },
      allowPositionals: true,
    });
    if (positionals.length > 0) throw new UsageError(`ap show takes no arguments`, AP_USAGE);
    const host = readApHost(port);
    ctx.stdout.write(
      values.json === true ? `${JSON.stringify(apShowJson(host), null, 2)}\n` : renderApShow(host),
    );
    return 0;
  },
  reserve: maskCommand('reserve'),
  release: maskCommand('release'),
  assign: matrixCommand('assign'),
  unassign: matrixCommand('unassign'),
};

/** The root option may stand anywhere; everything else is the subcommand's. */
function rootOf(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--root') return args[i + 1];
    if (a.startsWith('--root=')) return a.slice('--root='.length);
  }
  return undefined;
}

/**
 * Run an ap subcommand against a given port (tests pass a lab's port);
 * `apCommand` is the CLI entry that finds the port from --root.
 */
export function runAp(ctx: CommandContext, port: SysfsPort, args: string[]): number {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    ctx.stdout.write(AP_USAGE);
    return sub === undefined ? 2 : 0;
  }
  const run = SUBCOMMANDS[sub];
  if (run === undefined) throw new UsageError(`unknown ap command '${sub}'`, AP_USAGE);
  if (rest.includes('--help') || rest.includes('-h')) {
    ctx.stdout.write(AP_USAGE);
    return 0;
  }
  // Refusals are MdevErrors with codes; the CLI's error report prints them.
  return run(ctx, port, rest);
}

export async function apCommand(ctx: CommandContext, args: string[]): Promise<number> {
  const root = rootOf(args);
  if (args.includes('--root') && root === undefined)
    throw new UsageError('--root needs a directory', AP_USAGE);
  return runAp(ctx, environmentFrom(ctx.env, root).port, args);
}
