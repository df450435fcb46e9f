import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import {
  applyJson,
  capacityJson,
  ownedListJson,
  planJson,
  progressLine,
  renderApplySummary,
  renderCapacity,
  renderDrain,
  renderOwnedList,
  renderPlan,
} from '../ctl/desired/render.js';
import { listActiveDevices, listDefinedDevices } from '../host/devices.js';
import type { ApplyEvent } from '../host/desired/apply.js';
import { loadConfigFile } from '../host/desired/config.js';
import { applyHost, drainParent, hostCapacity, planHost } from '../host/desired/engine.js';
import { combineProbes, procInUseProbe, type InUseProbe } from '../host/desired/in-use.js';
import { OwnershipRecord } from '../host/desired/ownership.js';
import type { Environment } from '../host/environment.js';
import { ControlUnavailableError, controlCall, type DeviceStatus } from '../sim/control.js';
import { UsageError, command } from './command.js';

/**
 * `mdevkit plan|apply|capacity|drain` and `mdevkit list --owner`: the
 * desired-state engine (src/host/desired) on the host --root names. This
 * file parses and wires; the engine decides and src/ctl/desired/render.ts
 * formats.
 *
 * Who holds a device open is not in sysfs: on the running host (root /)
 * the processes' /dev/vfio files say; on a lab served at DIR, its control
 * socket (DIR/lab.sock) stands in for the VMs — the one thing here that
 * pairs the emulator with the management side, which is why it is here.
 */

/** Who holds devices open: the lab's VMs through its control socket, or this machine's processes. */
async function inUseProbe(env: Environment): Promise<InUseProbe | undefined> {
  const probes: InUseProbe[] = [];
  const sock = nodePath.join(env.root, 'lab.sock');
  if (env.root !== '/' && fs.existsSync(sock)) {
    try {
      const status = await controlCall(sock, { op: 'status' }, 5000);
      const open = new Map(
        ((status['devices'] as DeviceStatus[] | undefined) ?? [])
          .filter((d) => d.openCount > 0)
          .map((d) => [d.uuid, `open by a VM of the lab (${d.openCount})`]),
      );
      probes.push((uuid) => open.get(uuid));
    } catch (err) {
      if (!(err instanceof ControlUnavailableError)) throw err;
    }
  }
  if (env.root === '/') probes.push(procInUseProbe(env.port));
  return probes.length === 0 ? undefined : combineProbes(...probes);
}

const CONFIG_OPTIONS = {
  file: {
    type: 'string',
    short: 'f',
    value: 'FILE',
    help: 'the host configuration (YAML; see examples/host.yaml)',
  },
  config: {
    type: 'string',
    value: 'NAME',
    help: 'which configuration of the file (default: default)',
  },
  prune: {
    type: 'boolean',
    help: 'remove the devices of this configuration it no longer wants (never an open one: that is blocked)',
  },
  adopt: {
    type: 'boolean',
    help: 'take over matching devices no one recorded (made by libvirt, mdevctl, ...), explicitly and visibly',
  },
} as const;

function configFile(cwd: string, file: string | undefined) {
  if (file === undefined) throw new UsageError('which configuration file? give -f FILE');
  return loadConfigFile(nodePath.resolve(cwd, file));
}

export const planCommand = command({
  synopsis: '-f FILE [--config NAME] [--prune] [--adopt]',
  description:
    "Show what 'mdevkit apply' would change to make the host match configuration NAME of FILE, line by line with the reason: create, keep, modify, start, adopt, remove (with --prune), stale, blocked, foreign. Nothing is changed.",
  options: CONFIG_OPTIONS,
  positionals: [],
  root: true,
  json: true,
  async run(io, call) {
    const file = configFile(io.cwd, call.values.file);
    const env = call.host();
    const inUse = await inUseProbe(env);
    const { plan } = planHost(env, file, {
      ...(call.values.config !== undefined && { config: call.values.config }),
      prune: call.values.prune === true,
      adopt: call.values.adopt === true,
      ...(inUse !== undefined && { inUse }),
    });
    call.output(planJson(plan), () => renderPlan(plan, file));
  },
});

export const applyCommand = command({
  synopsis: '-f FILE [--config NAME] [--dry-run] [--prune] [--adopt] [--wait] [-v]',
  description: `Make the host match configuration NAME (default: default) of FILE. Matching devices, and their UUIDs, are kept; only the difference is created, changed or (with --prune) removed. Results are mdevctl definitions, start=auto where asked, so mdevctl, libvirt and a reboot see them. Only devices this configuration made are ever removed; others are reported as foreign and left alone. One apply runs on a host at a time.

Exit status: 0 the host matches; 1 a step failed (its errno is shown); 3 applied, but some of the configuration is blocked (see the reasons).`,
  options: {
    ...CONFIG_OPTIONS,
    'dry-run': { type: 'boolean', help: 'show the plan, change nothing' },
    wait: {
      type: 'boolean',
      help: 'wait for another apply on this host to end instead of failing',
    },
    verbose: { type: 'boolean', short: 'v', help: 'list every step, not only failures' },
  },
  positionals: [],
  root: true,
  json: true,
  async run(io, call) {
    const file = configFile(io.cwd, call.values.file);
    const env = call.host();
    const inUse = await inUseProbe(env);
    const tty = (io.stderr as { isTTY?: boolean }).isTTY === true && !call.json;
    let drawn = false;
    const onEvent = (e: ApplyEvent): void => {
      if (!tty || e.kind !== 'step' || e.total < 20) return;
      io.stderr.write(progressLine(e));
      drawn = true;
    };
    const { plan, summary } = await applyHost(env, file, {
      ...(call.values.config !== undefined && { config: call.values.config }),
      prune: call.values.prune === true,
      adopt: call.values.adopt === true,
      dryRun: call.values['dry-run'] === true,
      wait: call.values.wait === true,
      onWait: (h) =>
        io.stderr.write(`mdevkit: waiting for the apply of pid ${h.pid} (${h.owner}) to end...\n`),
      onEvent,
      ...(inUse !== undefined && { inUse }),
    });
    if (drawn) io.stderr.write('\n');
    call.output(applyJson(plan, summary), () =>
      summary === undefined
        ? renderPlan(plan, file)
        : renderApplySummary(plan, summary, call.values.verbose === true),
    );
    if (summary === undefined) return 0;
    if (summary.failed > 0) return 1;
    return summary.blocked > 0 ? 3 : 0;
  },
});

export const capacityCommand = command({
  synopsis: '[--type T]',
  description:
    "For each mdev type: how many more devices fit on this host now, per parent, with the vendors' rules taken into account (one type per M60 GPU, GVT-g's shared aperture, a SIOV queue pool, ...), and why none where none does. --json adds each parent's counters (capacity, used) and fragmentation.",
  options: { type: { type: 'string', value: 'T', help: 'only this type (its id or its name)' } },
  positionals: [],
  root: true,
  json: true,
  run(_io, call) {
    const { types, parents } = hostCapacity(call.host(), {
      ...(call.values.type !== undefined && { type: call.values.type }),
    });
    call.output(capacityJson(types, parents), () => renderCapacity(types));
  },
});

export const drainCommand = command({
  synopsis: 'PARENT [--undo] [--wait]',
  description:
    'Stop placing devices on PARENT (apply leaves it out from now on) and remove the devices mdevkit made there that no VM holds open. Open devices and devices mdevkit did not make are reported and left alone.',
  options: {
    undo: { type: 'boolean', help: 'place devices on PARENT again' },
    wait: { type: 'boolean', help: 'wait for a running apply to end instead of failing' },
  },
  positionals: [{ name: 'PARENT' }],
  root: true,
  json: true,
  async run(io, call) {
    const env = call.host();
    const inUse = await inUseProbe(env);
    const r = await drainParent(env, call.positionals[0]!, {
      undo: call.values.undo === true,
      wait: call.values.wait === true,
      ...(inUse !== undefined && { inUse }),
    });
    call.output(r, () =>
      call.values.undo === true ? `${r.parent} takes new devices again.\n` : renderDrain(r),
    );
    return r.failed.length > 0 ? 1 : 0;
  },
});

/** `mdevkit list --owner ...` (mdevctl's own `list` is left exactly as it is). */
export const listWithOwnerCommand = command({
  synopsis: '--owner [-d]',
  description:
    "mdevctl's listing with each device's owner: the configuration or client that made it through mdevkit, or '-' for a device another tool made. Without --owner, 'mdevkit list' is mdevctl's list.",
  options: {
    owner: { type: 'boolean', help: 'show owners (this listing)' },
    defined: { type: 'boolean', short: 'd', help: 'definitions, as mdevctl list -d' },
  },
  positionals: [],
  root: true,
  json: true,
  run(_io, call) {
    const env = call.host();
    const defined = call.values.defined === true;
    const devices = defined ? listDefinedDevices(env) : listActiveDevices(env);
    const record = OwnershipRecord.open(env);
    const owners = (uuid: string, parent: string) => {
      const e = record.get(uuid);
      return e !== undefined && e.parent === parent ? e : undefined;
    };
    call.output(ownedListJson(devices, defined, owners), () =>
      renderOwnedList(devices, defined, owners),
    );
  },
});
