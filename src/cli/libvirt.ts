import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { parseArgs } from 'node:util';
import { MdevError, type HostHooks } from '../host/devices.js';
import { environmentFrom, type Environment } from '../host/environment.js';
import { parseUuid } from '../host/uuid-forms.js';
import {
  EnsureStartedError,
  describeChain,
  domainMdevs,
  ensureStarted,
  type EnsureOutcome,
} from '../libvirt/ensure-started.js';
import {
  HostdevError,
  deviceApiOf,
  formatHostdevXml,
  mdevHostdev,
  qemuDeviceClassic,
  qemuDeviceJson,
  qemuDeviceProps,
  shellQuote,
  type HostdevOptions,
} from '../libvirt/hostdev.js';
import { defineFromRequest, parseMdevNodeDeviceXml } from '../libvirt/nodedev-define.js';
import {
  LISTABLE_CAPS,
  findNodeDevice,
  formatNodeDeviceXml,
  listNodeDevices,
  nodeDeviceJson,
} from '../libvirt/nodedev.js';
import { XmlInputError } from '../libvirt/xml.js';
import { CommandError, UsageError, type CommandContext } from './context.js';

/**
 * The libvirt integration commands: node device XML (list, dumpxml,
 * define), domain hostdev XML, QEMU arguments, and starting the mdevs a
 * domain needs (directly or as libvirt's qemu hook). Management commands:
 * they read the host through --root / MDEVCTL_ENV_ROOT (default "/").
 */

const ROOT_OPTION = { root: { type: 'string' } } as const;
const JSON_OPTION = { json: { type: 'boolean', default: false } } as const;
const HELP_OPTION = { help: { type: 'boolean', short: 'h', default: false } } as const;

const ROOT_HELP = `  --root DIR   the host's root (default: $MDEVCTL_ENV_ROOT or /): DIR/sys, DIR/etc/mdevctl.d
  --json       machine-readable output
`;

function env(ctx: CommandContext, root: string | undefined): Environment {
  return environmentFrom(ctx.env, root === undefined ? undefined : nodePath.resolve(ctx.cwd, root));
}

/** Turn the library's errors into one-line command errors (no stack for a user's problem). */
function guarded<T>(run: () => T): T {
  try {
    return run();
  } catch (err) {
    if (
      err instanceof HostdevError ||
      err instanceof XmlInputError ||
      err instanceof EnsureStartedError
    ) {
      throw new CommandError(err.message, 1, { cause: err });
    }
    if (err instanceof MdevError) throw new CommandError(describeChain(err), 1, { cause: err });
    throw err;
  }
}

/**
 * Listings go on past a definition file that cannot be read, saying so on
 * stderr, so one broken file does not hide every node device.
 */
function listingHooks(ctx: CommandContext): HostHooks {
  return {
    warn: (message) => ctx.stderr.write(`mdevkit: warning: ${message}\n`),
    invalidDefinition: (_path, error) =>
      ctx.stderr.write(`mdevkit: warning: skipping ${describeChain(error)}\n`),
  };
}

function writeJson(ctx: CommandContext, value: unknown): void {
  ctx.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Text of FILE, or standard input for "-" (or no FILE at all when allowed). */
function readInput(ctx: CommandContext, file: string | undefined, what: string): string {
  if (file === undefined || file === '-') return ctx.readStdin();
  try {
    return fs.readFileSync(nodePath.resolve(ctx.cwd, file), 'utf8');
  } catch (err) {
    const reason =
      (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new CommandError(`cannot read ${what} '${file}': ${reason}`);
  }
}

function needUuid(arg: string | undefined, usage: string): string {
  if (arg === undefined) throw new UsageError('a mediated device UUID is required', usage);
  const uuid = parseUuid(arg);
  if (uuid === undefined) throw new UsageError(`'${arg}' is not a UUID`, usage);
  return uuid;
}

// ---- nodedev-list ----------------------------------------------------------

const NODEDEV_LIST_USAGE = `usage: mdevkit nodedev-list [--cap CAPS] [--all | --inactive] [--json] [--root DIR]

Node devices of mediated devices and their parents, named as libvirt names
them, one per line (as 'virsh nodedev-list'). Mediated devices that are
defined but not running are listed with --inactive or --all.

  --cap CAPS   only devices with one of these capabilities (comma-separated):
               ${LISTABLE_CAPS.join(', ')}
  --all        running and defined-but-inactive devices
  --inactive   only defined devices that are not running
${ROOT_HELP}`;

export function nodedevListCommand(ctx: CommandContext, args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    options: {
      cap: { type: 'string' },
      all: { type: 'boolean', default: false },
      inactive: { type: 'boolean', default: false },
      ...ROOT_OPTION,
      ...JSON_OPTION,
      ...HELP_OPTION,
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    ctx.stdout.write(NODEDEV_LIST_USAGE);
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument '${positionals[0]}'`, NODEDEV_LIST_USAGE);
  }
  if (values.all && values.inactive) {
    throw new UsageError('--all and --inactive exclude each other', NODEDEV_LIST_USAGE);
  }
  // virsh takes a comma-separated list: --cap mdev,mdev_types
  const caps = values.cap === undefined ? undefined : values.cap.split(',').filter((c) => c !== '');
  for (const cap of caps ?? []) {
    if (!(LISTABLE_CAPS as readonly string[]).includes(cap)) {
      throw new UsageError(
        `unknown capability '${cap}' (one of ${LISTABLE_CAPS.join(', ')})`,
        NODEDEV_LIST_USAGE,
      );
    }
  }
  const state = values.all ? 'all' : values.inactive ? 'inactive' : 'active';
  const devices = guarded(() =>
    listNodeDevices(env(ctx, values.root), { caps, state }, listingHooks(ctx)),
  );
  if (values.json) writeJson(ctx, devices.map(nodeDeviceJson));
  else for (const d of devices) ctx.stdout.write(`${d.name}\n`);
  return 0;
}

// ---- nodedev-dumpxml -------------------------------------------------------

const NODEDEV_DUMPXML_USAGE = `usage: mdevkit nodedev-dumpxml NAME [--inactive] [--json] [--root DIR]

The node device XML of NAME (a name from nodedev-list; an mdev's UUID works
too), as 'virsh nodedev-dumpxml' prints it.

  --inactive   the persistent definition of a running mdev
${ROOT_HELP}`;

export function nodedevDumpxmlCommand(ctx: CommandContext, args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    options: {
      inactive: { type: 'boolean', default: false },
      ...ROOT_OPTION,
      ...JSON_OPTION,
      ...HELP_OPTION,
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    ctx.stdout.write(NODEDEV_DUMPXML_USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError('nodedev-dumpxml takes one NAME', NODEDEV_DUMPXML_USAGE);
  }
  const name = positionals[0]!;
  const dev = guarded(() => findNodeDevice(env(ctx, values.root), name, listingHooks(ctx)));
  if (dev === undefined) throw new CommandError(`no node device with matching name '${name}'`);
  if (values.inactive && (dev.kind !== 'mdev' || !dev.persistent)) {
    throw new CommandError(`node device '${dev.name}' is not persistent`);
  }
  if (values.json) {
    writeJson(ctx, { ...nodeDeviceJson(dev), xml: formatNodeDeviceXml(dev, values.inactive) });
  } else {
    ctx.stdout.write(formatNodeDeviceXml(dev, values.inactive));
  }
  return 0;
}

// ---- nodedev-define --------------------------------------------------------

const NODEDEV_DEFINE_USAGE = `usage: mdevkit nodedev-define FILE|- [--json] [--root DIR]

Define a mediated device from libvirt node device XML (as 'virsh
nodedev-define'): <parent> names the parent node device (or
<parent_addr> its address), <capability type='mdev'> gives <type id>,
optionally <uuid> and <attr name value> in order. The definition is stored
as mdevctl stores it, start mode manual; an existing one is replaced.
${ROOT_HELP}`;

export function nodedevDefineCommand(ctx: CommandContext, args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    options: { ...ROOT_OPTION, ...JSON_OPTION, ...HELP_OPTION },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    ctx.stdout.write(NODEDEV_DEFINE_USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      'nodedev-define takes one FILE (or - for standard input)',
      NODEDEV_DEFINE_USAGE,
    );
  }
  const file = positionals[0]!;
  const label = file === '-' ? 'standard input' : `'${file}'`;
  const xml = readInput(ctx, file, 'node device XML');
  const e = env(ctx, values.root);
  const outcome = guarded(() => {
    const req = parseMdevNodeDeviceXml(e, xml, file === '-' ? 'standard input' : file);
    return { ...defineFromRequest(e, req), generatedUuid: req.generatedUuid };
  });
  if (values.json) writeJson(ctx, outcome);
  else ctx.stdout.write(`Node device '${outcome.name}' defined from ${label}\n`);
  return 0;
}

// ---- hostdev-xml and qemu-args ----------------------------------------------

const DISPLAY_HELP = `  --display    expose the device's display to the guest (vfio-pci only)
  --ramfb      a ramfb boot display as well (needs --display)
`;

const HOSTDEV_XML_USAGE = `usage: mdevkit hostdev-xml UUID [--display] [--ramfb] [--json] [--root DIR]

The domain XML <hostdev> that assigns mediated device UUID to a VM, its
model (vfio-pci, vfio-ccw, vfio-ap) taken from the device's API. Paste it
into <devices>, or use 'virsh attach-device DOMAIN FILE'.

${DISPLAY_HELP}${ROOT_HELP}`;

function hostdevFor(
  ctx: CommandContext,
  uuid: string,
  root: string | undefined,
  opts: HostdevOptions,
): ReturnType<typeof mdevHostdev> {
  return guarded(() => mdevHostdev(uuid, deviceApiOf(env(ctx, root), uuid), opts));
}

const displayOptions = {
  display: { type: 'boolean' },
  ramfb: { type: 'boolean' },
} as const;

export function hostdevXmlCommand(ctx: CommandContext, args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    options: { ...displayOptions, ...ROOT_OPTION, ...JSON_OPTION, ...HELP_OPTION },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    ctx.stdout.write(HOSTDEV_XML_USAGE);
    return 0;
  }
  if (positionals.length > 1) throw new UsageError('hostdev-xml takes one UUID', HOSTDEV_XML_USAGE);
  const uuid = needUuid(positionals[0], HOSTDEV_XML_USAGE);
  const h = hostdevFor(ctx, uuid, values.root, { display: values.display, ramfb: values.ramfb });
  const xml = formatHostdevXml(h);
  if (values.json) {
    writeJson(ctx, {
      uuid: h.uuid,
      model: h.model,
      display: h.display ?? null,
      ramfb: h.ramfb,
      xml,
    });
  } else {
    ctx.stdout.write(xml);
  }
  return 0;
}

const QEMU_ARGS_USAGE = `usage: mdevkit qemu-args UUID [--display] [--ramfb] [--syntax json|classic] [--id ID] [--json] [--root DIR]

The QEMU -device argument libvirt generates for mediated device UUID,
shell-quoted on one line: vfio-pci (vfio-pci-nohotplug with --ramfb),
vfio-ccw or vfio-ap, with sysfsdev=/sys/bus/mdev/devices/UUID.

${DISPLAY_HELP}  --syntax S   json (QEMU 6.2+, what libvirt passes today; the default) or classic
  --id ID      the device id (default hostdev0, libvirt's alias of the first hostdev)
${ROOT_HELP}`;

export function qemuArgsCommand(ctx: CommandContext, args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...displayOptions,
      syntax: { type: 'string', default: 'json' },
      id: { type: 'string', default: 'hostdev0' },
      ...ROOT_OPTION,
      ...JSON_OPTION,
      ...HELP_OPTION,
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    ctx.stdout.write(QEMU_ARGS_USAGE);
    return 0;
  }
  if (positionals.length > 1) throw new UsageError('qemu-args takes one UUID', QEMU_ARGS_USAGE);
  if (values.syntax !== 'json' && values.syntax !== 'classic') {
    throw new UsageError(`--syntax is json or classic, not '${values.syntax}'`, QEMU_ARGS_USAGE);
  }
  if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(values.id)) {
    throw new UsageError(
      `--id '${values.id}' is not a QEMU id (a letter, then letters, digits, '-', '.', '_')`,
      QEMU_ARGS_USAGE,
    );
  }
  const uuid = needUuid(positionals[0], QEMU_ARGS_USAGE);
  const h = hostdevFor(ctx, uuid, values.root, { display: values.display, ramfb: values.ramfb });
  const classic = qemuDeviceClassic(h, values.id);
  const json = qemuDeviceJson(h, values.id);
  if (values.json) {
    writeJson(ctx, {
      uuid: h.uuid,
      model: h.model,
      props: Object.fromEntries(qemuDeviceProps(h, values.id)),
      classic: ['-device', classic],
      json: ['-device', json],
    });
  } else {
    const value = values.syntax === 'json' ? json : classic;
    ctx.stdout.write(`-device ${shellQuote(value)}\n`);
  }
  return 0;
}

// ---- ensure-started and the libvirt hook -----------------------------------

const ENSURE_STARTED_USAGE = `usage: mdevkit ensure-started [FILE|-] [--json] [--root DIR]

Read a domain XML (FILE, or standard input) and start every mediated device
its <hostdev type='mdev'> elements use that is defined but not running.
Fails, naming the device, when one is neither running nor defined or cannot
start; devices this run started are then stopped again.
${ROOT_HELP}`;

function outcomeLine(o: EnsureOutcome): string {
  const what = `${o.uuid} (parent ${o.parent}, type ${o.type})`;
  switch (o.state) {
    case 'running':
      return `${what}: already running`;
    case 'started':
      return `${what}: started`;
    case 'rolled-back':
      return `${what}: stopped again`;
  }
}

function runEnsure(
  ctx: CommandContext,
  xml: string,
  what: string,
  e: Environment,
  json: boolean,
  quiet: boolean,
): number {
  let outcomes: EnsureOutcome[];
  try {
    const mdevs = guarded(() => domainMdevs(xml, what));
    outcomes = ensureStarted(e, mdevs);
  } catch (err) {
    if (err instanceof EnsureStartedError) {
      if (json) {
        writeJson(ctx, { ok: false, error: err.message, uuid: err.uuid, devices: err.outcomes });
        ctx.stderr.write(`mdevkit: ${err.message}\n`);
        return 1;
      }
      for (const o of err.outcomes)
        if (o.state === 'rolled-back') ctx.stderr.write(`${outcomeLine(o)}\n`);
      throw new CommandError(err.message);
    }
    throw err;
  }
  if (json) writeJson(ctx, { ok: true, devices: outcomes });
  else if (!quiet) for (const o of outcomes) ctx.stdout.write(`${outcomeLine(o)}\n`);
  return 0;
}

export function ensureStartedCommand(ctx: CommandContext, args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    options: { ...ROOT_OPTION, ...JSON_OPTION, ...HELP_OPTION },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    ctx.stdout.write(ENSURE_STARTED_USAGE);
    return 0;
  }
  if (positionals.length > 1) {
    throw new UsageError('ensure-started takes at most one FILE', ENSURE_STARTED_USAGE);
  }
  const file = positionals[0];
  const xml = readInput(ctx, file, 'domain XML');
  const what = file === undefined || file === '-' ? 'domain XML on standard input' : file;
  return runEnsure(ctx, xml, what, env(ctx, values.root), values.json, false);
}

const LIBVIRT_HOOK_USAGE = `usage: mdevkit libvirt-hook qemu DOMAIN OPERATION SUB-OPERATION [EXTRA]

libvirt's qemu hook (install as /etc/libvirt/hooks/qemu, see README): in
the "prepare begin" phase it reads the domain XML from standard input and
starts the mediated devices the domain uses that are defined but not
running, failing the VM start with a message naming a device that cannot
start. Every other phase is accepted and ignored (exit 0).
`;

export function libvirtHookCommand(ctx: CommandContext, args: string[]): number {
  return runLibvirtHook(ctx, args);
}

/**
 * The hook with its environment chosen by the caller: libvirt runs it on
 * the host ("/" or MDEVCTL_ENV_ROOT); tests hand in a lab's environment.
 */
export function runLibvirtHook(
  ctx: CommandContext,
  args: string[],
  environment: Environment = env(ctx, undefined),
): number {
  if (args[0] === '--help' || args[0] === '-h') {
    ctx.stdout.write(LIBVIRT_HOOK_USAGE);
    return 0;
  }
  const [driver, domain, operation, subOperation] = args;
  if (driver === undefined || domain === undefined || operation === undefined) {
    throw new UsageError('libvirt-hook needs DRIVER DOMAIN OPERATION', LIBVIRT_HOOK_USAGE);
  }
  // Only the qemu driver's prepare phase needs us; anything else must never
  // block libvirt, so it succeeds without reading standard input.
  if (driver !== 'qemu' || operation !== 'prepare' || (subOperation ?? 'begin') !== 'begin') {
    return 0;
  }
  const xml = ctx.readStdin();
  return runEnsure(ctx, xml, `domain XML of '${domain}'`, environment, false, true);
}
