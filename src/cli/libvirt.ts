import * as nodePath from 'node:path';
import { errnoCodeIn, strerror } from '../common/errno.js';
import type { CommandIo } from '../ctl/io.js';
import { readFileLimited } from '../host/config-store.js';
import { MdevError, type HostHooks } from '../host/devices.js';
import type { Environment } from '../host/environment.js';
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
import {
  findVfHostdev,
  formatVfHostdevXml,
  vfQemuDeviceProps,
  type VfHostdev,
} from '../libvirt/vf-hostdev.js';
import { XmlInputError } from '../libvirt/xml.js';
import {
  CommandError,
  UsageError,
  command,
  runAtSync,
  uuidArgument,
  type OptionSpec,
} from './command.js';

/**
 * The libvirt integration commands: node device XML (list, dumpxml,
 * define), domain hostdev XML, QEMU arguments, and starting the mdevs a
 * domain needs (directly or as libvirt's qemu hook). Management commands:
 * they read the host through --root / MDEVCTL_ENV_ROOT (default "/").
 */

/** The library's refusals, in one line each (no stack for a user's problem). */
function explain(err: unknown): string | undefined {
  if (
    err instanceof HostdevError ||
    err instanceof XmlInputError ||
    err instanceof EnsureStartedError
  ) {
    return err.message;
  }
  if (err instanceof MdevError) return describeChain(err);
  return undefined;
}

/**
 * Listings go on past a definition file that cannot be read, saying so on
 * stderr, so one broken file does not hide every node device.
 */
function listingHooks(io: CommandIo): HostHooks {
  return {
    warn: (message) => io.stderr.write(`mdevkit: warning: ${message}\n`),
    invalidDefinition: (_path, error) =>
      io.stderr.write(`mdevkit: warning: skipping ${describeChain(error)}\n`),
  };
}

/** The most XML read from a file or standard input: 10 MiB, as virsh takes. */
const MAX_XML_BYTES = 10 << 20;

/** Text of FILE, or standard input for "-" (or no FILE at all when allowed); at most 10 MiB. */
function readInput(io: CommandIo, file: string | undefined, what: string): string {
  if (file === undefined || file === '-') return io.readStdin(MAX_XML_BYTES);
  try {
    return readFileLimited(nodePath.resolve(io.cwd, file), file, MAX_XML_BYTES);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const reason =
      code === 'ENOENT'
        ? 'no such file'
        : err instanceof MdevError
          ? err.message
          : typeof code === 'string'
            ? strerror(errnoCodeIn(err) ?? 'EIO')
            : (err as Error).message;
    throw new CommandError(`cannot read ${what} '${file}': ${reason}`);
  }
}

// ---- node devices -----------------------------------------------------------

export const nodedevListCommand = command({
  synopsis: '[--cap CAPS] [--all | --inactive]',
  description:
    "Node devices of mediated devices and their parents, named as libvirt names them, one per line (as 'virsh nodedev-list'). Mediated devices that are defined but not running are listed with --inactive or --all.",
  options: {
    cap: {
      type: 'string',
      value: 'CAPS',
      help: `only devices with one of these capabilities (comma-separated): ${LISTABLE_CAPS.join(', ')}`,
    },
    all: { type: 'boolean', default: false, help: 'running and defined-but-inactive devices' },
    inactive: {
      type: 'boolean',
      default: false,
      help: 'only defined devices that are not running',
    },
  },
  positionals: [],
  root: true,
  json: true,
  explain,
  run(io, call) {
    const { values } = call;
    if (values.all && values.inactive)
      throw new UsageError('--all and --inactive exclude each other');
    // virsh takes a comma-separated list: --cap mdev,mdev_types
    const caps =
      values.cap === undefined ? undefined : values.cap.split(',').filter((c) => c !== '');
    for (const cap of caps ?? []) {
      if (!(LISTABLE_CAPS as readonly string[]).includes(cap)) {
        throw new UsageError(`unknown capability '${cap}' (one of ${LISTABLE_CAPS.join(', ')})`);
      }
    }
    const state = values.all ? 'all' : values.inactive ? 'inactive' : 'active';
    const devices = listNodeDevices(call.host(), { caps, state }, listingHooks(io));
    call.output(devices.map(nodeDeviceJson), () => devices.map((d) => `${d.name}\n`).join(''));
  },
});

export const nodedevDumpxmlCommand = command({
  synopsis: 'NAME [--inactive]',
  description:
    "The node device XML of NAME (a name from nodedev-list; an mdev's UUID works too), as 'virsh nodedev-dumpxml' prints it.",
  options: {
    inactive: {
      type: 'boolean',
      default: false,
      help: 'the persistent definition of a running mdev',
    },
  },
  positionals: [{ name: 'NAME' }],
  root: true,
  json: true,
  explain,
  run(io, call) {
    const name = call.positionals[0]!;
    const inactive = call.values.inactive;
    const dev = findNodeDevice(call.host(), name, listingHooks(io));
    if (dev === undefined) throw new CommandError(`no node device with matching name '${name}'`);
    if (inactive && (dev.kind !== 'mdev' || !dev.persistent)) {
      throw new CommandError(`node device '${dev.name}' is not persistent`);
    }
    const xml = formatNodeDeviceXml(dev, inactive);
    call.output({ ...nodeDeviceJson(dev), xml }, () => xml);
  },
});

export const nodedevDefineCommand = command({
  synopsis: 'FILE|-',
  description: `Define a mediated device from libvirt node device XML (as 'virsh nodedev-define'): <parent> names the parent node device (or <parent_addr> its address), <capability type='mdev'> gives <type id>, optionally <uuid> and <attr name value> in order. The definition is stored as mdevctl stores it, start mode manual; an existing one is replaced.`,
  options: {},
  positionals: [{ name: 'FILE' }],
  positionalsHint: 'nodedev-define takes one FILE (or - for standard input)',
  root: true,
  json: true,
  explain,
  run(io, call) {
    const file = call.positionals[0]!;
    const label = file === '-' ? 'standard input' : `'${file}'`;
    const xml = readInput(io, file, 'node device XML');
    const env = call.host();
    const req = parseMdevNodeDeviceXml(env, xml, file === '-' ? 'standard input' : file);
    const outcome = { ...defineFromRequest(env, req), generatedUuid: req.generatedUuid };
    call.output(outcome, () => `Node device '${outcome.name}' defined from ${label}\n`);
  },
});

// ---- hostdev-xml and qemu-args ----------------------------------------------

const DISPLAY_OPTIONS = {
  display: {
    type: 'boolean',
    help: "expose the device's display to the guest (vfio-pci only)",
  },
  ramfb: { type: 'boolean', help: 'a ramfb boot display as well (needs --display)' },
} as const satisfies Record<string, OptionSpec>;

function hostdevOf(
  env: Environment,
  uuidText: string,
  values: { readonly display?: boolean; readonly ramfb?: boolean },
): ReturnType<typeof mdevHostdev> {
  const uuid = uuidArgument(uuidText);
  const opts: HostdevOptions = { display: values.display, ramfb: values.ramfb };
  return mdevHostdev(uuid, deviceApiOf(env, uuid), opts);
}

/** A VF vGPU named by UUID or address; display options do not apply to it. */
function vfHostdevOf(
  env: Environment,
  target: string,
  values: { readonly display?: boolean; readonly ramfb?: boolean },
): VfHostdev | undefined {
  const vf = findVfHostdev(env, target);
  if (vf !== undefined && (values.display !== undefined || values.ramfb !== undefined)) {
    throw new UsageError(
      `--display and --ramfb are for mediated devices; ${vf.address} is an NVIDIA VF vGPU, a PCI device`,
    );
  }
  return vf;
}

export const hostdevXmlCommand = command({
  synopsis: 'UUID|VF [--display] [--ramfb]',
  description: `The domain XML <hostdev> that assigns a device to a VM: for mediated device UUID, <hostdev type='mdev'> with its model (vfio-pci, vfio-ccw, vfio-ap) taken from the device's API; for an NVIDIA VF vGPU (its UUID, or the VF's PCI address), <hostdev type='pci' managed='no'> with the VF's address — managed='no' because the VF stays bound to nvidia. Paste it into <devices>, or use 'virsh attach-device DOMAIN FILE'.`,
  options: DISPLAY_OPTIONS,
  positionals: [{ name: 'UUID|VF' }],
  root: true,
  json: true,
  explain,
  run(io, call) {
    const vf = vfHostdevOf(call.host(), call.positionals[0]!, call.values);
    if (vf !== undefined) {
      const xml = formatVfHostdevXml(vf);
      call.output(
        { uuid: vf.uuid ?? null, address: vf.address, type: 'pci', managed: 'no', xml },
        () => xml,
      );
      return;
    }
    const h = hostdevOf(call.host(), call.positionals[0]!, call.values);
    const xml = formatHostdevXml(h);
    call.output(
      { uuid: h.uuid, model: h.model, display: h.display ?? null, ramfb: h.ramfb, xml },
      () => xml,
    );
  },
});

export const qemuArgsCommand = command({
  synopsis: 'UUID|VF [--display] [--ramfb] [--syntax json|classic] [--id ID] [--sysfsdev]',
  description:
    "The QEMU -device argument libvirt generates for mediated device UUID, shell-quoted on one line: vfio-pci (vfio-pci-nohotplug with --ramfb), vfio-ccw or vfio-ap, with sysfsdev=/sys/bus/mdev/devices/UUID. For an NVIDIA VF vGPU (its UUID or the VF's address): -uuid with the vGPU's UUID (NVIDIA's guest driver wants one; under libvirt the domain's <uuid> takes its place) and -device vfio-pci with host=VF, or sysfsdev=/sys/bus/pci/devices/VF with --sysfsdev.",
  options: {
    ...DISPLAY_OPTIONS,
    sysfsdev: {
      type: 'boolean',
      default: false,
      help: 'a VF vGPU by sysfsdev=/sys/bus/pci/devices/VF instead of host=VF',
    },
    syntax: {
      type: 'string',
      default: 'json',
      value: 'S',
      help: 'json (QEMU 6.2+, what libvirt passes today; the default) or classic',
    },
    id: {
      type: 'string',
      default: 'hostdev0',
      value: 'ID',
      help: "the device id (default hostdev0, libvirt's alias of the first hostdev)",
    },
  },
  positionals: [{ name: 'UUID|VF' }],
  root: true,
  json: true,
  explain,
  run(io, call) {
    const { syntax, id } = call.values;
    if (syntax !== 'json' && syntax !== 'classic') {
      throw new UsageError(`--syntax is json or classic, not '${syntax}'`);
    }
    if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(id)) {
      throw new UsageError(
        `--id '${id}' is not a QEMU id (a letter, then letters, digits, '-', '.', '_')`,
      );
    }
    const vf = vfHostdevOf(call.host(), call.positionals[0]!, call.values);
    if (vf !== undefined) {
      const props = vfQemuDeviceProps(vf, id, call.values.sysfsdev ? 'sysfsdev' : 'host');
      const classic = props
        .map(([k, v], i) => (i === 0 ? v : `${k}=${v.replaceAll(',', ',,')}`))
        .join(',');
      const json = JSON.stringify(Object.fromEntries(props));
      const uuidArgs = vf.uuid === undefined ? [] : ['-uuid', vf.uuid];
      call.output(
        {
          uuid: vf.uuid ?? null,
          address: vf.address,
          props: Object.fromEntries(props),
          classic: [...uuidArgs, '-device', classic],
          json: [...uuidArgs, '-device', json],
        },
        () =>
          `${uuidArgs.length === 0 ? '' : `-uuid ${vf.uuid} `}-device ${shellQuote(syntax === 'json' ? json : classic)}\n`,
      );
      return;
    }
    if (call.values.sysfsdev) {
      throw new UsageError(
        '--sysfsdev is for NVIDIA VF vGPUs; a mediated device always has sysfsdev=',
      );
    }
    const h = hostdevOf(call.host(), call.positionals[0]!, call.values);
    const classic = qemuDeviceClassic(h, id);
    const json = qemuDeviceJson(h, id);
    call.output(
      {
        uuid: h.uuid,
        model: h.model,
        props: Object.fromEntries(qemuDeviceProps(h, id)),
        classic: ['-device', classic],
        json: ['-device', json],
      },
      () => `-device ${shellQuote(syntax === 'json' ? json : classic)}\n`,
    );
  },
});

// ---- ensure-started and the libvirt hook -----------------------------------

function outcomeLine(o: EnsureOutcome): string {
  const what =
    o.vf === undefined
      ? `${o.uuid} (parent ${o.parent}, type ${o.type})`
      : `${o.uuid.startsWith('vf:') ? 'vGPU' : `vGPU ${o.uuid}`} on VF ${o.vf} (GPU ${o.parent}, type ${o.type})`;
  switch (o.state) {
    case 'running':
      return `${what}: already running`;
    case 'started':
      return `${what}: started`;
    case 'rolled-back':
      return `${what}: stopped again`;
  }
}

/** Start what the domain XML needs; with `json`, a failure is a JSON answer too (exit 1). */
function runEnsure(
  io: CommandIo,
  xml: string,
  what: string,
  env: Environment,
  json: boolean,
  quiet: boolean,
): number {
  let outcomes: EnsureOutcome[];
  try {
    outcomes = ensureStarted(env, domainMdevs(xml, what));
  } catch (err) {
    if (err instanceof EnsureStartedError) {
      if (json) {
        const answer = { ok: false, error: err.message, uuid: err.uuid, devices: err.outcomes };
        io.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
        io.stderr.write(`mdevkit: ${err.message}\n`);
        return 1;
      }
      for (const o of err.outcomes)
        if (o.state === 'rolled-back') io.stderr.write(`${outcomeLine(o)}\n`);
    }
    throw err;
  }
  if (json) io.stdout.write(`${JSON.stringify({ ok: true, devices: outcomes }, null, 2)}\n`);
  else if (!quiet) for (const o of outcomes) io.stdout.write(`${outcomeLine(o)}\n`);
  return 0;
}

export const ensureStartedCommand = command({
  synopsis: '[FILE|-]',
  description:
    "Read a domain XML (FILE, or standard input) and start every mediated device its <hostdev type='mdev'> elements use that is defined but not running. Fails, naming the device, when one is neither running nor defined or cannot start; devices this run started are then stopped again.",
  options: {},
  positionals: [{ name: 'FILE', optional: true }],
  root: true,
  json: true,
  explain,
  run(io, call) {
    const file = call.positionals[0];
    const xml = readInput(io, file, 'domain XML');
    const what = file === undefined || file === '-' ? 'domain XML on standard input' : file;
    return runEnsure(io, xml, what, call.host(), call.json, false);
  },
});

/**
 * libvirt's qemu hook. libvirt runs it on the host ("/" or
 * MDEVCTL_ENV_ROOT) with arguments of its choosing, so they are taken as
 * they come, never parsed as options.
 */
export const libvirtHookCommand = command({
  synopsis: 'qemu DOMAIN OPERATION SUB-OPERATION [EXTRA]',
  description: `libvirt's qemu hook (install as /etc/libvirt/hooks/qemu, see README): in the "prepare begin" phase it reads the domain XML from standard input and starts the mediated devices the domain uses that are defined but not running, failing the VM start with a message naming a device that cannot start. Every other phase is accepted and ignored (exit 0).`,
  options: {},
  positionals: 'raw',
  explain,
  run(io, call) {
    const [driver, domain, operation, subOperation] = call.positionals;
    if (driver === undefined || domain === undefined || operation === undefined) {
      throw new UsageError('libvirt-hook needs DRIVER DOMAIN OPERATION');
    }
    // Only the qemu driver's prepare phase needs us; anything else must never
    // block libvirt, so it succeeds without reading standard input.
    if (driver !== 'qemu' || operation !== 'prepare' || (subOperation ?? 'begin') !== 'begin') {
      return 0;
    }
    const xml = io.readStdin(MAX_XML_BYTES);
    return runEnsure(io, xml, `domain XML of '${domain}'`, call.host(), false, true);
  },
});

/** The hook with its environment chosen by the caller (tests hand in a lab's). */
export function runLibvirtHook(io: CommandIo, args: readonly string[], env: Environment): number {
  return runAtSync(['libvirt-hook'], libvirtHookCommand, io, args, { host: () => env });
}
