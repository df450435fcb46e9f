import { parseUuid, uuidParseProblem } from '../../host/uuid-forms.js';
import type { ArgSpec, CommandSpec, ProgramSpec } from './args.js';

/**
 * The mdevctl command line: mdevctl 1.4.0's commands, options, short
 * names, value names, groups, conflicts and requirements (what scripts and
 * libvirt depend on). Help texts are our own words.
 */

export const MDEVCTL_VERSION = '1.4.0';

function uuidValue(raw: string): string {
  const uuid = parseUuid(raw);
  if (uuid === undefined) throw new Error(uuidParseProblem(raw));
  return uuid;
}

/** A u32 as clap's integer parser takes it (Rust's i64 syntax, then the range). */
function u32Value(raw: string): number {
  if (raw === '') throw new Error('cannot parse integer from empty string');
  if (!/^[+-]?\d+$/.test(raw)) throw new Error('invalid digit found in string');
  const n = BigInt(raw);
  if (n > 9223372036854775807n) throw new Error('number too large to fit in target type');
  if (n < -9223372036854775808n) throw new Error('number too small to fit in target type');
  if (n < 0n || n > 4294967295n) throw new Error(`${n} is not in 0..=4294967295`);
  return Number(n);
}

const uuid = (help: string, more: Partial<ArgSpec> = {}): ArgSpec => ({
  id: 'uuid',
  short: 'u',
  value: 'UUID',
  help,
  parse: uuidValue,
  ...more,
});
const parent = (help: string, more: Partial<ArgSpec> = {}): ArgSpec => ({
  id: 'parent',
  short: 'p',
  value: 'PARENT',
  help,
  ...more,
});
const type = (help: string, more: Partial<ArgSpec> = {}): ArgSpec => ({
  id: 'type',
  short: 't',
  value: 'type',
  help,
  ...more,
});
const force: ArgSpec = {
  id: 'force',
  short: 'f',
  help:
    'Go ahead even when a callout script refuses the change\n' +
    'Only for when you know why the script objects',
};

export const LIST: CommandSpec = {
  name: 'list',
  groupId: 'LsmdevOptions',
  about: 'List mediated devices',
  longAbout:
    'List mediated devices\n\n' +
    'Without options, lists the devices that exist now. --defined lists the stored definitions ' +
    'instead, whether running or not. --uuid and --parent narrow the list. --dumpjson prints ' +
    "JSON; for a single device selected by --uuid it prints just that device's definition, " +
    'ready to be saved as a config file (a running device without its attributes). --verbose ' +
    'adds the attributes to the text listing.',
  version: true,
  args: [
    { id: 'defined', short: 'd', help: 'List stored definitions instead of running devices' },
    { id: 'dumpjson', help: 'Print the list as JSON' },
    { id: 'verbose', short: 'v', help: "Include the devices' attributes" },
    uuid('Only the device with this UUID'),
    parent('Only the devices of this parent device'),
  ],
};

export const COMMAND_SPECS: readonly CommandSpec[] = [
  {
    name: 'define',
    groupId: 'Define',
    about: 'Define a persistent mediated device',
    longAbout:
      'Define a persistent mediated device\n\n' +
      'Stores a definition under /etc/mdevctl.d/<parent>/<uuid>. For a running device, parent ' +
      'and type default to its current ones. --auto starts the device whenever its parent ' +
      'appears. With --jsonfile, type, start mode and attributes come from the file.\n\n' +
      'Running devices are not changed.',
    args: [
      uuid('UUID of the new device (made up and printed when omitted)', {
        requiredUnless: ['parent'],
      }),
      { id: 'auto', short: 'a', help: 'Start the device whenever its parent appears' },
      parent('Parent device of the new device', { requiredUnless: ['uuid'] }),
      type('mdev type of the new device'),
      {
        id: 'jsonfile',
        value: 'JSONFILE',
        help: 'Take type, start mode and attributes from this JSON file',
        conflicts: ['type', 'auto'],
      },
      force,
    ],
  },
  {
    name: 'undefine',
    groupId: 'Undefine',
    about: 'Undefine a persistent mediated device',
    longAbout:
      'Undefine a persistent mediated device: remove its stored definition\n\n' +
      'Without --parent, the definitions of the UUID on every parent are removed.\n\n' +
      'Running devices are not changed.',
    args: [
      uuid('UUID of the device to undefine', { required: true }),
      parent('Only its definition on this parent'),
      force,
    ],
  },
  {
    name: 'modify',
    groupId: 'Modify',
    about: 'Modify the definition of a mediated device',
    longAbout:
      'Modify the definition of a mediated device\n\n' +
      'Changes a stored definition: its start mode, its attribute list, or all of it from a ' +
      'JSON file; --type changes the type along with one of those. Attributes are written in ' +
      'list order to the sysfs files of the same name when the device starts; --addattr and ' +
      '--delattr work at the end of the list unless --index says where. --parent picks the ' +
      'definition when the UUID is defined on several parents; a definition cannot move to ' +
      'another parent (undefine it and define it again). With --live the file is applied to ' +
      'the running device through its callout script instead, with --live --defined to both.\n\n' +
      'Without --live, running devices are not changed.',
    args: [
      uuid('UUID of the device to modify', { required: true }),
      parent('Parent device, when the UUID is defined on several'),
      type('New mdev type'),
      { id: 'addattr', value: 'attr_name', help: 'Add an attribute', requires: ['value'] },
      { id: 'delattr', help: 'Delete an attribute' },
      {
        id: 'index',
        short: 'i',
        value: 'INDEX',
        help: 'Position of the attribute to add or delete',
        parse: u32Value,
      },
      {
        id: 'value',
        value: 'attr_value',
        help: 'Value of the attribute added with --addattr',
        conflicts: ['delattr'],
        requires: ['addattr'],
      },
      {
        id: 'auto',
        short: 'a',
        help: 'Start the device whenever its parent appears',
        conflicts: ['index', 'value'],
      },
      {
        id: 'manual',
        short: 'm',
        help: 'Start the device only when asked to',
        conflicts: ['index', 'value'],
      },
      {
        id: 'live',
        short: 'l',
        help: 'Apply --jsonfile to the running device (with --defined: to the definition too)',
        conflicts: ['type', 'index', 'value'],
        requires: ['jsonfile'],
      },
      { id: 'defined', short: 'd', help: 'Change the stored definition' },
      {
        id: 'jsonfile',
        value: 'JSONFILE',
        help: 'Replace start mode and attributes with those of this JSON file',
        conflicts: ['type', 'index', 'value'],
      },
      force,
    ],
    groups: [
      { id: 'modify', args: ['auto', 'manual', 'addattr', 'delattr', 'jsonfile'], required: true },
    ],
  },
  {
    name: 'start',
    groupId: 'Start',
    about: 'Start a mediated device',
    longAbout:
      'Start a mediated device\n\n' +
      'A defined device starts by its UUID, plus --parent when the UUID is defined on several ' +
      'parents. --parent with --type starts a device that has no definition; its UUID is then ' +
      'optional, and printed when made up. --jsonfile gives the type and the attributes in a ' +
      'file instead of --type.',
    args: [
      uuid('UUID of the device to start', { requiredUnless: ['parent'] }),
      parent('Parent device of the device to start', { requiredUnless: ['uuid'] }),
      type('mdev type of the device to start'),
      {
        id: 'jsonfile',
        value: 'JSONFILE',
        help: 'Take type and attributes of the device from this JSON file',
        conflicts: ['type'],
      },
      force,
    ],
  },
  {
    name: 'stop',
    groupId: 'Stop',
    about: 'Stop a mediated device',
    args: [uuid('UUID of the device to stop', { required: true }), force],
  },
  LIST,
  {
    name: 'types',
    groupId: 'Types',
    about: 'List available mediated device types',
    longAbout:
      'List available mediated device types\n\n' +
      'Lists the mdev types each parent offers, with the instances still available. --parent ' +
      'limits it to one parent; --dumpjson prints JSON.',
    args: [
      parent('Only the types of this parent device'),
      { id: 'dumpjson', help: 'Print the types as JSON' },
    ],
  },
  {
    // udev runs this when a parent appears; it has no help of its own in mdevctl.
    name: 'start-parent-mdevs',
    groupId: 'StartParentMdevs',
    hidden: true,
    args: [{ id: 'PARENT', positional: true, required: true, help: '' }],
  },
];

export function findCommand(name: string): CommandSpec | undefined {
  return COMMAND_SPECS.find((c) => c.name === name);
}

/** mdevctl (or lsmdev, or mdevkit's front end) as a program. */
export function programSpec(bin: string, version = MDEVCTL_VERSION): ProgramSpec {
  return {
    bin,
    version,
    about: 'Manage mediated (mdev) devices',
    commands: COMMAND_SPECS,
    helpCommand: {
      about: 'Print this help or the help of a command',
      arg: 'The command to explain',
    },
  };
}
