import { apChangeMasks, apChangeMatrix } from '../ctl/ap/edit.js';
import { apShowJson, renderApShow } from '../ctl/ap/show.js';
import type { CommandIo } from '../ctl/io.js';
import type { SysfsPort } from '../port/sysfs-port.js';
import { ApListError, parseIdList } from '../host/ap/ids.js';
import { readApHost } from '../host/ap/model.js';
import { environmentAt } from '../host/environment.js';
import { MdevError } from '../host/errors.js';
import { UsageError, command, group, runAtSync, uuidArgument, type OptionSpec } from './command.js';

/**
 * `mdevkit ap`: s390 crypto (vfio-ap) through sysfs files only (src/host/ap
 * plans and refuses, src/ctl/ap shows).
 * Ids are lists such as 5,0x47,10-12 (decimal or 0x hex, ranges inclusive).
 */

function ids(text: string | undefined, what: string): number[] | undefined {
  if (text === undefined) return undefined;
  try {
    return parseIdList(text, { what });
  } catch (err) {
    if (err instanceof ApListError) throw new UsageError(err.message);
    throw err;
  }
}

/** The library's refusals (coded MdevErrors) explain themselves: which queue, which device, what to do. */
const explain = (err: unknown): string | undefined =>
  err instanceof MdevError ? err.message : undefined;

const list = (what: string) =>
  ({
    type: 'string',
    value: 'L',
    help: `${what} ids, e.g. 5,0x47,10-12`,
  }) as const satisfies OptionSpec;
const DRY_RUN = {
  type: 'boolean',
  help: 'show what would change; write nothing',
} as const satisfies OptionSpec;

const showCommand = command({
  synopsis: '',
  description:
    'The split of the AP bus between host and guests and every matrix device, drawn as an adapters x domains grid that shows who holds each queue.',
  options: {},
  positionals: [],
  root: true,
  json: true,
  explain,
  run(io, call) {
    const host = readApHost(call.host().port);
    call.output(apShowJson(host), () => renderApShow(host));
  },
});

function maskCommand(direction: 'reserve' | 'release') {
  return command({
    synopsis: '[--adapters L] [--domains L] [--dry-run]',
    description:
      direction === 'reserve'
        ? 'Give adapters and/or domains to guests (vfio_ap): clears their bits in /sys/bus/ap/apmask and aqmask, showing first which queues change side.'
        : 'Give adapters and/or domains back to the host; refused, naming queue and device, while a matrix device holds one of the queues.',
    options: { adapters: list('adapter'), domains: list('usage domain'), 'dry-run': DRY_RUN },
    positionals: [],
    root: true,
    explain,
    run(io, call) {
      const { values } = call;
      const adapters = ids(values.adapters, 'adapter');
      const domains = ids(values.domains, 'domain');
      if (adapters === undefined && domains === undefined) {
        throw new UsageError(`ap ${direction} needs --adapters L and/or --domains L`);
      }
      apChangeMasks(call.host().port, io.stdout, direction, {
        adapters,
        domains,
        dryRun: values['dry-run'] === true,
      });
    },
  });
}

function matrixCommand(op: 'assign' | 'unassign') {
  return command({
    synopsis: 'UUID [--adapters L] [--domains L] [--control-domains L] [--dry-run]',
    description: `${op === 'assign' ? 'Assign ids to' : 'Unassign ids from'} a matrix device: conflicts are checked and explained first, then the whole change is written at once through its ap_config.`,
    options: {
      adapters: list('adapter'),
      domains: list('usage domain'),
      'control-domains': list('control domain'),
      'dry-run': DRY_RUN,
    },
    positionals: [{ name: 'UUID' }],
    root: true,
    explain,
    run(io, call) {
      const { values } = call;
      const uuid = uuidArgument(call.positionals[0]!);
      const change = {
        adapters: ids(values.adapters, 'adapter'),
        domains: ids(values.domains, 'domain'),
        controlDomains: ids(values['control-domains'], 'control domain'),
      };
      if (Object.values(change).every((v) => v === undefined)) {
        throw new UsageError(`ap ${op} needs --adapters, --domains or --control-domains`);
      }
      apChangeMatrix(call.host().port, io.stdout, uuid, op, {
        ...change,
        dryRun: values['dry-run'] === true,
      });
    },
  });
}

export const AP = group({
  description:
    "s390 crypto (vfio-ap): the AP bus's host/guest split and the matrix devices. Ids are lists such as 5,0x47,10-12 (decimal or 0x hex, ranges inclusive).",
  commands: {
    show: {
      summary: 'the host/guest split and every matrix device, as a grid',
      load: () => showCommand,
    },
    reserve: {
      summary: 'give adapters and/or domains to guests (apmask/aqmask)',
      load: () => maskCommand('reserve'),
    },
    release: {
      summary: 'give adapters and/or domains back to the host',
      load: () => maskCommand('release'),
    },
    assign: {
      summary: 'assign adapters, domains, control domains to a matrix device',
      load: () => matrixCommand('assign'),
    },
    unassign: {
      summary: 'unassign them from a matrix device',
      load: () => matrixCommand('unassign'),
    },
  },
});

/** Run an ap subcommand against a given port (tests pass a lab's), as `mdevkit ap ARGS`. */
export function runAp(io: CommandIo, port: SysfsPort, args: readonly string[]): number {
  return runAtSync(['ap'], AP, io, args, { host: () => environmentAt('/', port) });
}
