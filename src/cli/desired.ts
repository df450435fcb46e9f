import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { parseArgs } from 'node:util';
import { readApHost } from '../ctl/ap/model.js';
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
import { environmentFrom, type Environment } from '../host/environment.js';
import { ControlUnavailableError, controlCall, type DeviceStatus } from '../sim/control.js';
import { UsageError, type CommandContext } from './context.js';

/**
 * `mdevkit plan|apply|capacity|drain` and `mdevkit list --owner`: the
 * desired-state engine (src/host/desired) on a host given by --root or
 * MDEVCTL_ENV_ROOT. This file parses and wires; the engine decides and
 * src/ctl/desired/render.ts formats.
 *
 * Who holds a device open is not in sysfs: on the running host (root /)
 * the processes' /dev/vfio files say; on a lab served at DIR, its control
 * socket (DIR/lab.sock) stands in for the VMs — the one thing here that
 * pairs the emulator with the management side, which is why it is here.
 */

const ROOT_HELP = `  --root DIR     the host's root (default: MDEVCTL_ENV_ROOT, else /): a real
                 host, or a lab served with 'mdevkit lab serve --mount DIR'`;

export const PLAN_USAGE = `usage: mdevkit plan -f FILE [--config NAME] [--prune] [--adopt] [--json] [--root DIR]

Show what 'mdevkit apply' would change to make the host match configuration
NAME (default: default) of FILE, line by line with the reason: create, keep,
modify, start, adopt, remove (with --prune), stale, blocked, foreign.
  -f, --file FILE   the host configuration (YAML; see examples/host.yaml)
  --config NAME     which configuration of the file (default: default)
  --prune           plan removing this configuration's devices it no longer wants
  --adopt           plan taking over matching devices no one recorded
  --json            the plan as JSON
${ROOT_HELP}
`;

export const APPLY_USAGE = `usage: mdevkit apply -f FILE [--config NAME] [--dry-run] [--prune] [--adopt] [--wait] [--json] [--root DIR]

Make the host match configuration NAME of FILE. Matching devices (and their
UUIDs) are kept; only the difference is created, changed or (with --prune)
removed. Results are mdevctl definitions, start=auto where asked, so mdevctl,
libvirt and a reboot see them. Only devices this configuration made are ever
removed; others are reported as foreign and left alone.
  -f, --file FILE   the host configuration (YAML; see examples/host.yaml)
  --config NAME     which configuration of the file (default: default)
  --dry-run         show the plan, change nothing
  --prune           remove this configuration's devices it no longer wants
                    (never an open one: that is reported as blocked)
  --adopt           take over matching devices no one recorded (made by
                    libvirt, mdevctl, ...), explicitly and visibly
  --wait            wait for another apply on this host to end instead of failing
  --json            the plan and the result as JSON
  -v, --verbose     list every step, not only failures
${ROOT_HELP}
Exit status: 0 the host matches; 1 a step failed (its errno is shown);
3 applied, but some of the configuration is blocked (see the reasons).
`;

export const CAPACITY_USAGE = `usage: mdevkit capacity [--type T] [--json] [--root DIR]

For each mdev type: how many more devices fit on this host now, per parent,
with the vendor's rules taken into account (one type per M60 GPU, GVT-g's
shared aperture, a SIOV queue pool, ...), and why none where none does.
  --type T    only this type (its id or its name)
  --json      types and per-parent counters (capacity, used, fragmentation)
${ROOT_HELP}
`;

export const DRAIN_USAGE = `usage: mdevkit drain PARENT [--undo] [--wait] [--root DIR]

Stop placing devices on PARENT (apply leaves it out from now on) and remove
the devices mdevkit made there that no VM holds open. Open devices and
devices mdevkit did not make are reported and left alone.
  --undo      place devices on PARENT again
  --wait      wait for a running apply to end instead of failing
${ROOT_HELP}
`;

const rootOption = { root: { type: 'string' } } as const;
const helpOption = { help: { type: 'boolean', short: 'h' } } as const;

function hostEnv(ctx: CommandContext, root: string | undefined): Environment {
  return environmentFrom(ctx.env, root === undefined ? undefined : nodePath.resolve(ctx.cwd, root));
}

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

function fileArg(ctx: CommandContext, file: string | undefined, usage: string): string {
  if (file === undefined) throw new UsageError('which configuration file? give -f FILE', usage);
  return nodePath.resolve(ctx.cwd, file);
}

export async function planCommand(ctx: CommandContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...rootOption,
      ...helpOption,
      file: { type: 'string', short: 'f' },
      config: { type: 'string' },
      prune: { type: 'boolean' },
      adopt: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    allowPositionals: true,
  });
  if (values.help === true) {
    ctx.stdout.write(PLAN_USAGE);
    return 0;
  }
  if (positionals.length > 0)
    throw new UsageError(`unexpected argument '${positionals[0]}'`, PLAN_USAGE);
  const file = loadConfigFile(fileArg(ctx, values.file, PLAN_USAGE));
  const env = hostEnv(ctx, values.root);
  const inUse = await inUseProbe(env);
  const { plan } = planHost(env, file, {
    readAp: readApHost,
    ...(values.config !== undefined && { config: values.config }),
    prune: values.prune === true,
    adopt: values.adopt === true,
    ...(inUse !== undefined && { inUse }),
  });
  ctx.stdout.write(
    values.json === true ? `${JSON.stringify(planJson(plan), null, 2)}\n` : renderPlan(plan, file),
  );
  return 0;
}

export async function applyCommand(ctx: CommandContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...rootOption,
      ...helpOption,
      file: { type: 'string', short: 'f' },
      config: { type: 'string' },
      'dry-run': { type: 'boolean' },
      prune: { type: 'boolean' },
      adopt: { type: 'boolean' },
      wait: { type: 'boolean' },
      json: { type: 'boolean' },
      verbose: { type: 'boolean', short: 'v' },
    },
    allowPositionals: true,
  });
  if (values.help === true) {
    ctx.stdout.write(APPLY_USAGE);
    return 0;
  }
  if (positionals.length > 0)
    throw new UsageError(`unexpected argument '${positionals[0]}'`, APPLY_USAGE);
  const file = loadConfigFile(fileArg(ctx, values.file, APPLY_USAGE));
  const env = hostEnv(ctx, values.root);
  const inUse = await inUseProbe(env);
  const tty = (ctx.stderr as { isTTY?: boolean }).isTTY === true && values.json !== true;
  let drawn = false;
  const onEvent = (e: ApplyEvent): void => {
    if (!tty || e.kind !== 'step' || e.total < 20) return;
    ctx.stderr.write(progressLine(e));
    drawn = true;
  };
  const { plan, summary } = await applyHost(env, file, {
    readAp: readApHost,
    ...(values.config !== undefined && { config: values.config }),
    prune: values.prune === true,
    adopt: values.adopt === true,
    dryRun: values['dry-run'] === true,
    wait: values.wait === true,
    onWait: (h) =>
      ctx.stderr.write(`mdevkit: waiting for the apply of pid ${h.pid} (${h.owner}) to end...\n`),
    onEvent,
    ...(inUse !== undefined && { inUse }),
  });
  if (drawn) ctx.stderr.write('\n');
  if (values.json === true) {
    ctx.stdout.write(`${JSON.stringify(applyJson(plan, summary), null, 2)}\n`);
  } else if (summary === undefined) {
    ctx.stdout.write(renderPlan(plan, file));
  } else {
    ctx.stdout.write(renderApplySummary(plan, summary, values.verbose === true));
  }
  if (summary === undefined) return 0;
  if (summary.failed > 0) return 1;
  return summary.blocked > 0 ? 3 : 0;
}

export async function capacityCommand(ctx: CommandContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...rootOption, ...helpOption, type: { type: 'string' }, json: { type: 'boolean' } },
    allowPositionals: true,
  });
  if (values.help === true) {
    ctx.stdout.write(CAPACITY_USAGE);
    return 0;
  }
  if (positionals.length > 0)
    throw new UsageError(`unexpected argument '${positionals[0]}'`, CAPACITY_USAGE);
  const env = hostEnv(ctx, values.root);
  const { types, parents } = hostCapacity(env, {
    readAp: readApHost,
    ...(values.type !== undefined && { type: values.type }),
  });
  ctx.stdout.write(
    values.json === true
      ? `${JSON.stringify(capacityJson(types, parents), null, 2)}\n`
      : renderCapacity(types),
  );
  return 0;
}

export async function drainCommand(ctx: CommandContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...rootOption, ...helpOption, undo: { type: 'boolean' }, wait: { type: 'boolean' } },
    allowPositionals: true,
  });
  if (values.help === true) {
    ctx.stdout.write(DRAIN_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('drain takes one PARENT', DRAIN_USAGE);
  const env = hostEnv(ctx, values.root);
  const inUse = await inUseProbe(env);
  const r = await drainParent(env, positionals[0]!, {
    undo: values.undo === true,
    wait: values.wait === true,
    ...(inUse !== undefined && { inUse }),
  });
  if (values.undo === true) {
    ctx.stdout.write(`${r.parent} takes new devices again.\n`);
    return 0;
  }
  ctx.stdout.write(renderDrain(r));
  return r.failed.length > 0 ? 1 : 0;
}

export const LIST_OWNER_USAGE = `usage: mdevkit list --owner [-d] [--json] [--root DIR]

mdevctl's listing with each device's owner: the configuration or client that
made it through mdevkit, or '-' for a device another tool made.
`;

/** `mdevkit list --owner ...` (mdevctl's own `list` is left exactly as it is). */
export async function listWithOwnerCommand(ctx: CommandContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...rootOption,
      ...helpOption,
      owner: { type: 'boolean' },
      defined: { type: 'boolean', short: 'd' },
      json: { type: 'boolean' },
    },
    allowPositionals: true,
  });
  if (values.help === true) {
    ctx.stdout.write(LIST_OWNER_USAGE);
    return 0;
  }
  if (positionals.length > 0)
    throw new UsageError(`unexpected argument '${positionals[0]}'`, LIST_OWNER_USAGE);
  const env = hostEnv(ctx, values.root);
  const defined = values.defined === true;
  const devices = defined ? listDefinedDevices(env) : listActiveDevices(env);
  const record = OwnershipRecord.open(env);
  const owners = (uuid: string, parent: string) => {
    const e = record.get(uuid);
    return e !== undefined && e.parent === parent ? e : undefined;
  };
  ctx.stdout.write(
    values.json === true
      ? `${JSON.stringify(ownedListJson(devices, defined, owners), null, 2)}\n`
      : renderOwnedList(devices, defined, owners),
  );
  return 0;
}
