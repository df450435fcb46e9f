import { parseUuid, uuidParseProblem } from '../../host/uuid-forms.js';
import type { CommandSpec, OptionSpec } from './args.js';

/**
 * The mdevctl command line: mdevctl 1.2.0's commands and options, plus the
 * later upstream additions (--force; modify --jsonfile/--live/--defined).
 * Help texts are our own words.
 */

export const MDEVCTL_VERSION = '1.2.0';

function uuidValue(raw: string): string {
  const uuid = parseUuid(raw);
  if (uuid === undefined) throw new Error(uuidParseProblem(raw));
  return uuid;
}

function u32Value(raw: string): number {
  if (raw === '') throw new Error('cannot parse integer from empty string');
  if (!/^\+?\d+$/.test(raw)) throw new Error('invalid digit found in string');
  const n = Number(raw);
  if (n > 4294967295) throw new Error('number too large to fit in target type');
  return n;
}

const uuid = (help: string, requiredUnless?: readonly string[]): OptionSpec => ({
  long: 'uuid',
  short: 'u',
  value: 'UUID',
  help,
  parse: uuidValue,
  ...(requiredUnless === undefined ? {} : { requiredUnless }),
});
const parent = (help: string, requiredUnless?: readonly string[]): OptionSpec => ({
  long: 'parent',
  short: 'p',
  value: 'PARENT',
  help,
  ...(requiredUnless === undefined ? {} : { requiredUnless }),
});
const type = (help: string): OptionSpec => ({ long: 'type', short: 't', value: 'type', help });
const force: OptionSpec = {
  long: 'force',
  help: 'Go ahead even when a callout script objects (mdevctl 1.3)',
};

export const LIST: CommandSpec = {
  name: 'list',
  about: 'List mediated devices',
  longAbout:
    'List mediated devices\n\n' +
    'Without options, lists the devices that exist now. --defined lists the stored\n' +
    'definitions instead, whether running or not. --uuid and --parent narrow the list.\n' +
    '--dumpjson prints JSON; for a single device selected by --uuid it prints just that\n' +
    "device's definition, ready to be saved as a config file. --verbose adds attributes.",
  version: true,
  options: [
    { long: 'defined', short: 'd', help: 'List defined devices instead of running ones' },
    { long: 'dumpjson', help: 'Print the list as JSON' },
    { long: 'verbose', short: 'v', help: "Include the devices' attributes" },
    uuid('Only the device with this UUID'),
    parent('Only devices of this parent device'),
  ],
};

export const COMMAND_SPECS: readonly CommandSpec[] = [
  {
    name: 'define',
    about: 'Define a persistent mediated device',
    longAbout:
      'Define a persistent mediated device\n\n' +
      'Stores a definition under /etc/mdevctl.d/<parent>/<uuid>. For a running device,\n' +
      'parent and type default to its current ones. --auto starts the device whenever\n' +
      'its parent appears. With --jsonfile, type, start mode and attributes come from\n' +
      'the file. Running devices are not changed.',
    options: [
      uuid('UUID of the new device (generated and printed when omitted)', ['parent']),
      { long: 'auto', short: 'a', help: 'Start the device automatically when its parent appears' },
      parent('Parent device', ['uuid']),
      type('mdev type of the device'),
      {
        long: 'jsonfile',
        value: 'JSONFILE',
        help: 'Read type, start mode and attributes from this JSON file',
        conflicts: ['type', 'auto'],
      },
      force,
    ],
  },
  {
    name: 'undefine',
    about: 'Undefine a persistent mediated device',
    longAbout:
      'Undefine a persistent mediated device\n\n' +
      'Removes the stored definition; without --parent, the definitions of the UUID on\n' +
      'every parent. Running devices are not changed.',
    options: [
      uuid('UUID of the device to undefine', []),
      parent('Only its definition on this parent'),
      force,
    ],
  },
  {
    name: 'modify',
    about: 'Modify the definition of a mediated device',
    longAbout:
      'Modify the definition of a mediated device\n\n' +
      'Changes a stored definition: its type, start mode, or attribute list. Attributes are\n' +
      'written in list order to the sysfs files of the same name when the device starts;\n' +
      '--addattr/--delattr work at the end of the list unless --index says where.\n' +
      "--jsonfile replaces the definition with the file's; with --live it is applied to the\n" +
      'running device (through a callout), with --live --defined to both. The parent of a\n' +
      'definition cannot be changed: undefine and define again.',
    options: [
      uuid('UUID of the device to modify', []),
      parent('Parent device, when the UUID is defined on several'),
      type('New mdev type'),
      {
        long: 'addattr',
        value: 'attr_name',
        help: 'Add an attribute',
        conflicts: ['delattr'],
        requires: ['value'],
      },
      { long: 'delattr', help: 'Delete an attribute (the last one unless --index)' },
      {
        long: 'index',
        short: 'i',
        value: 'INDEX',
        help: 'Position of the attribute to add or delete',
        parse: u32Value,
      },
      { long: 'value', value: 'attr_value', help: 'Value of the attribute given with --addattr' },
      { long: 'auto', short: 'a', help: 'Start the device automatically' },
      { long: 'manual', short: 'm', help: 'Start the device only when asked', conflicts: ['auto'] },
      {
        long: 'live',
        short: 'l',
        help: 'Apply --jsonfile to the running device (with --defined: to the definition too)',
        conflicts: ['type', 'index', 'value'],
        requires: ['jsonfile'],
      },
      {
        // What libvirt passes for a stored change; alone it is the default.
        long: 'defined',
        short: 'd',
        help: 'Change the stored definition (the default; with --live: as well)',
      },
      {
        long: 'jsonfile',
        value: 'JSONFILE',
        help: 'Replace the definition with this JSON file (mdevctl 1.3)',
        conflicts: ['type', 'index', 'value', 'auto', 'manual', 'addattr', 'delattr'],
      },
      force,
    ],
  },
  {
    name: 'start',
    about: 'Start a mediated device',
    longAbout:
      'Start a mediated device\n\n' +
      'A defined device starts by its UUID (plus --parent when the UUID is defined on\n' +
      'several parents). --parent and --type start a device without a definition; the UUID\n' +
      'is then optional and printed when generated. --jsonfile gives the type and\n' +
      'attributes in a file instead of --type.',
    options: [
      uuid('UUID of the device to start', ['parent']),
      parent('Parent device', ['uuid']),
      type('mdev type of the device'),
      {
        long: 'jsonfile',
        value: 'JSONFILE',
        help: 'Read type and attributes from this JSON file',
        conflicts: ['type'],
      },
      force,
    ],
  },
  {
    name: 'stop',
    about: 'Stop a mediated device',
    options: [uuid('UUID of the device to stop', []), force],
  },
  LIST,
  {
    name: 'types',
    about: 'List available mediated device types',
    longAbout:
      'List available mediated device types\n\n' +
      'Lists the mdev types each parent offers, with the instances still available.\n' +
      '--parent limits it to one parent; --dumpjson prints JSON.',
    options: [
      parent('Only the types of this parent device'),
      { long: 'dumpjson', help: 'Print the types as JSON' },
    ],
  },
  {
    name: 'start-parent-mdevs',
    about: "Start a parent's automatically started devices (run by udev)",
    hidden: true,
    options: [],
    positionals: [{ name: 'PARENT', help: 'Parent device that just appeared', required: true }],
  },
];

export function findCommand(name: string): CommandSpec | undefined {
  return COMMAND_SPECS.find((c) => c.name === name);
}

export function topHelp(prog: string, version: string): string {
  const visible = COMMAND_SPECS.filter((c) => c.hidden !== true);
  const rows = [
    ...visible.map((c) => [c.name, c.about] as const),
    ['help', 'Print this help or the help of a command'] as const,
  ];
  rows.sort((a, b) => a[0].localeCompare(b[0]));
  const width = Math.max(...rows.map(([n]) => n.length));
  return (
    `${prog} ${version}\nManage mediated (mdev) devices\n\nUSAGE:\n    ${prog} <SUBCOMMAND>\n\n` +
    'OPTIONS:\n    -h, --help       Print help information\n    -V, --version    Print version information\n\n' +
    `SUBCOMMANDS:\n${rows.map(([n, a]) => `    ${n.padEnd(width)}    ${a}`).join('\n')}\n`
  );
}
