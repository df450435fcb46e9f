import { ErrnoError, strerror } from '../../common/errno.js';
import type { SysfsPort } from '../../port/sysfs-port.js';
import { formatIdList, idListArgument } from './ids.js';
import {
  AP_BUS,
  ApError,
  type ApHost,
  MDEV_DEVICES,
  type MatrixConfig,
  apqnKey,
  apqnName,
  formatMaskText,
  hostOwns,
  queueOwners,
  readApHost,
  readMatrixConfig,
  requireMatrixDevice,
} from './model.js';

/**
 * The changing commands: `ap reserve|release` move adapters and domains
 * between the host and guests through apmask/aqmask, and `ap
 * assign|unassign` change a matrix device through one write of its
 * ap_config. Each reads the state first, explains every conflict it finds
 * (which queue, which device, what to do), and only then writes; the kernel
 * checks again, so a race still fails cleanly with its errno.
 */

export interface Out {
  write(chunk: string): unknown;
}

/** Conflicts shown in full before "... and N more". */
const SHOWN = 10;

export interface MaskChange {
  readonly adapters?: readonly number[] | undefined;
  readonly domains?: readonly number[] | undefined;
}

export interface MaskPlan {
  readonly apmask: boolean[];
  readonly aqmask: boolean[];
  /** Relative writes ("-5,-6") for the masks that change. */
  readonly apmaskEdit: string | undefined;
  readonly aqmaskEdit: string | undefined;
  /** Present queues that change side. */
  readonly toGuests: string[];
  readonly toHost: string[];
  /** Queues the host would take from a matrix device. */
  readonly conflicts: { apqn: string; owner: string }[];
}

/**
 * What reserving (for guests) or releasing (to the host) ids would do.
 * Reserving clears mask bits; releasing sets them.
 */
export function planMasks(
  host: ApHost,
  change: MaskChange,
  direction: 'reserve' | 'release',
): MaskPlan {
  const set = direction === 'release';
  const apmask = [...host.apmask];
  const aqmask = [...host.aqmask];
  const apChanged: number[] = [];
  const aqChanged: number[] = [];
  for (const a of change.adapters ?? []) {
    if (apmask[a] !== set) apChanged.push(a);
    apmask[a] = set;
  }
  for (const d of change.domains ?? []) {
    if (aqmask[d] !== set) aqChanged.push(d);
    aqmask[d] = set;
  }
  const after = { apmask, aqmask };
  const toGuests: string[] = [];
  const toHost: string[] = [];
  for (const q of [...host.queues.values()].sort(
    (x, y) => apqnKey(x.apid, x.apqi) - apqnKey(y.apid, y.apqi),
  )) {
    const was = hostOwns(host, q.apid, q.apqi);
    const will = hostOwns(after, q.apid, q.apqi);
    if (was && !will) toGuests.push(apqnName(q.apid, q.apqi));
    if (!was && will) toHost.push(apqnName(q.apid, q.apqi));
  }
  const conflicts: { apqn: string; owner: string }[] = [];
  if (set) {
    for (const [key, owner] of [...queueOwners(host)].sort((x, y) => x[0] - y[0])) {
      const a = key >> 8;
      const d = key & 0xff;
      if (hostOwns(after, a, d)) conflicts.push({ apqn: apqnName(a, d), owner });
    }
  }
  const sign = set ? '+' : '-';
  const edit = (ids: number[]): string | undefined =>
    ids.length === 0 ? undefined : ids.map((i) => `${sign}${i}`).join(',');
  return {
    apmask,
    aqmask,
    apmaskEdit: edit(apChanged),
    aqmaskEdit: edit(aqChanged),
    toGuests,
    toHost,
    conflicts,
  };
}

function listQueues(queues: string[]): string {
  if (queues.length === 0) return 'none';
  return queues.length <= 16
    ? queues.join(' ')
    : `${queues.slice(0, 16).join(' ')} ... (${queues.length} in all)`;
}

export interface MaskCommandOptions extends MaskChange {
  readonly dryRun?: boolean;
}

/** `ap reserve` (for guests) and `ap release` (back to the host). */
export function apChangeMasks(
  port: SysfsPort,
  out: Out,
  direction: 'reserve' | 'release',
  opts: MaskCommandOptions,
): void {
  const host = readApHost(port);
  checkIds(opts.adapters ?? [], host.maxAdapterId, 'adapter');
  checkIds(opts.domains ?? [], host.maxDomainId, 'domain');
  const plan = planMasks(host, opts, direction);
  const verb = direction === 'reserve' ? 'Reserving for guests' : 'Releasing to the host';
  const what = [
    opts.adapters?.length ? `adapters ${formatIdList(opts.adapters, 2)}` : '',
    opts.domains?.length ? `domains ${formatIdList(opts.domains, 4)}` : '',
  ]
    .filter(Boolean)
    .join(' and ');
  out.write(`${verb}: ${what}\n`);
  if (plan.apmaskEdit === undefined && plan.aqmaskEdit === undefined) {
    out.write(`Nothing to change: the masks say so already.\n`);
    return;
  }
  if (plan.apmaskEdit !== undefined) out.write(`  apmask: ${plan.apmaskEdit}\n`);
  if (plan.aqmaskEdit !== undefined) out.write(`  aqmask: ${plan.aqmaskEdit}\n`);
  out.write(`  queues to guests (vfio_ap): ${listQueues(plan.toGuests)}\n`);
  out.write(`  queues to the host:         ${listQueues(plan.toHost)}\n`);
  if (plan.conflicts.length > 0) {
    const lines = plan.conflicts
      .slice(0, SHOWN)
      .map((c) => `  queue ${c.apqn} is assigned to matrix device ${c.owner}`);
    if (plan.conflicts.length > SHOWN)
      lines.push(`  ... and ${plan.conflicts.length - SHOWN} more`);
    const owners = [...new Set(plan.conflicts.map((c) => c.owner))];
    throw new ApError(
      `cannot release these to the host: matrix devices hold some of their queues\n${lines.join('\n')}\n` +
        `Unassign them first, e.g.: ${owners
          .slice(0, 3)
          .map((o) => `mdevkit ap unassign ${o} ${unassignHint(host, o, opts)}`)
          .join('; ')}`,
    );
  }
  if (opts.dryRun === true) {
    out.write('Dry run: nothing written.\n');
    return;
  }
  // One write per mask, each atomic in the kernel. Relative edits keep a
  // concurrent change of other bits intact; if the second write fails, the
  // first is undone so the pair stays all-or-nothing.
  if (plan.apmaskEdit !== undefined) writeMask(port, 'apmask', plan.apmaskEdit);
  if (plan.aqmaskEdit !== undefined) {
    try {
      writeMask(port, 'aqmask', plan.aqmaskEdit);
    } catch (err) {
      if (plan.apmaskEdit !== undefined) {
        try {
          port.write(`${AP_BUS}/apmask`, invertEdit(plan.apmaskEdit));
        } catch (undoErr) {
          const why = undoErr instanceof ErrnoError ? strerror(undoErr.code) : String(undoErr);
          throw new ApError(
            `${(err as Error).message}\nundoing the apmask change (${plan.apmaskEdit}) failed too: ${why}; ` +
              'check the split with: mdevkit ap show',
          );
        }
      }
      throw err;
    }
  }
  out.write(
    `Done: ${plan.toGuests.length + plan.toHost.length} queue${plan.toGuests.length + plan.toHost.length === 1 ? '' : 's'} changed side.\n`,
  );
}

function unassignHint(host: ApHost, owner: string, change: MaskChange): string {
  const dev = host.devices.find((d) => d.uuid === owner);
  const adapters = (change.adapters ?? []).filter((a) => dev?.adapters.includes(a));
  const domains = (change.domains ?? []).filter((d) => dev?.domains.includes(d));
  if (adapters.length > 0) return `--adapters ${idListArgument(adapters)}`;
  if (domains.length > 0) return `--domains ${idListArgument(domains)}`;
  // Released adapters meet the device's domains through the other mask.
  return `--domains ${idListArgument(dev?.domains ?? [])}`;
}

function invertEdit(edit: string): string {
  return edit
    .split(',')
    .map((e) => (e.startsWith('+') ? `-${e.slice(1)}` : `+${e.slice(1)}`))
    .join(',');
}

function writeMask(port: SysfsPort, file: 'apmask' | 'aqmask', edit: string): void {
  try {
    port.write(`${AP_BUS}/${file}`, `${edit}\n`);
  } catch (err) {
    if (err instanceof ErrnoError) {
      throw new ApError(
        `the kernel refused the ${file} change: ${strerror(err.code)}${err.detail === undefined ? '' : ` (${err.detail})`}; ` +
          'the AP state changed since it was read, run the command again',
      );
    }
    throw err;
  }
}

function checkIds(ids: readonly number[], max: number, what: string): void {
  const bad = ids.filter((i) => i > max);
  if (bad.length > 0) {
    throw new ApError(`${what} ${bad.join(', ')} is above this host's highest ${what} id, ${max}`);
  }
}

// ---- assign / unassign ---------------------------------------------------

export interface MatrixChange {
  readonly adapters?: readonly number[] | undefined;
  readonly domains?: readonly number[] | undefined;
  readonly controlDomains?: readonly number[] | undefined;
}

export interface MatrixPlan {
  readonly before: MatrixConfig;
  readonly after: MatrixConfig;
  /** Queues the device gains and loses. */
  readonly added: string[];
  readonly removed: string[];
  /** Why it cannot be done, one line each; empty when it can. */
  readonly problems: string[];
}

function queuesOf(c: MatrixConfig): Set<number> {
  const s = new Set<number>();
  for (const a of c.adapters) for (const d of c.domains) s.add(apqnKey(a, d));
  return s;
}

export function planMatrix(
  host: ApHost,
  uuid: string,
  before: MatrixConfig,
  change: MatrixChange,
  op: 'assign' | 'unassign',
): MatrixPlan {
  const apply = (cur: readonly number[], ids: readonly number[] | undefined): number[] => {
    const s = new Set(cur);
    for (const i of ids ?? []) {
      if (op === 'assign') s.add(i);
      else s.delete(i);
    }
    return [...s].sort((a, b) => a - b);
  };
  const after: MatrixConfig = {
    adapters: apply(before.adapters, change.adapters),
    domains: apply(before.domains, change.domains),
    controlDomains: apply(before.controlDomains, change.controlDomains),
  };
  const problems: string[] = [];
  const tooHigh = (ids: readonly number[] | undefined, max: number, what: string): void => {
    for (const i of ids ?? [])
      if (i > max)
        problems.push(
          `${what} ${i} (0x${i.toString(16)}) is above this host's highest ${what} id, ${max}`,
        );
  };
  tooHigh(change.adapters, host.maxAdapterId, 'adapter');
  tooHigh(change.domains, host.maxDomainId, 'domain');
  tooHigh(change.controlDomains, host.maxDomainId, 'control domain');

  const was = queuesOf(before);
  const will = queuesOf(after);
  const name = (k: number): string => apqnName(k >> 8, k & 0xff);
  const added = [...will].filter((k) => !was.has(k)).sort((a, b) => a - b);
  const removed = [...was].filter((k) => !will.has(k)).sort((a, b) => a - b);
  const owners = queueOwners(host);
  const hostHeld: number[] = [];
  const conflicts: string[] = [];
  for (const k of added) {
    const a = k >> 8;
    const d = k & 0xff;
    if (hostOwns(host, a, d)) hostHeld.push(k);
    const owner = owners.get(k);
    if (owner !== undefined && owner !== uuid)
      conflicts.push(`queue ${name(k)} is assigned to matrix device ${owner}`);
  }
  if (hostHeld.length > 0) {
    const shown = hostHeld
      .slice(0, SHOWN)
      .map((k) => `queue ${name(k)} belongs to the host (apmask/aqmask)`);
    if (hostHeld.length > SHOWN)
      shown.push(`... and ${hostHeld.length - SHOWN} more queues of the host`);
    const hostAdapters = [...new Set(hostHeld.map((k) => k >> 8))].filter(
      (a) => host.apmask[a] === true,
    );
    const hostDomains = [...new Set(hostHeld.map((k) => k & 0xff))].filter(
      (d) => host.aqmask[d] === true,
    );
    shown.push(
      `  free them for guests with: mdevkit ap reserve --adapters ${idListArgument(hostAdapters)}` +
        `  (or: mdevkit ap reserve --domains ${idListArgument(hostDomains)})`,
    );
    problems.push(...shown);
  }
  problems.push(...conflicts.slice(0, SHOWN));
  if (conflicts.length > SHOWN)
    problems.push(`... and ${conflicts.length - SHOWN} more queues of other matrix devices`);
  return { before, after, added: added.map(name), removed: removed.map(name), problems };
}

export interface MatrixCommandOptions extends MatrixChange {
  readonly dryRun?: boolean;
}

/** `ap assign` and `ap unassign`: check, explain, then one atomic write of ap_config. */
export function apChangeMatrix(
  port: SysfsPort,
  out: Out,
  uuid: string,
  op: 'assign' | 'unassign',
  opts: MatrixCommandOptions,
): void {
  const id = uuid.toLowerCase();
  const host = readApHost(port);
  requireMatrixDevice(port, id);
  const before = readMatrixConfig(port, id);
  const plan = planMatrix(host, id, before, opts, op);
  if (plan.problems.length > 0) {
    throw new ApError(`cannot ${op} on matrix device ${id}:\n  ${plan.problems.join('\n  ')}`);
  }
  const summary = (c: MatrixConfig): string =>
    `adapters ${formatIdList(c.adapters, 2)}; domains ${formatIdList(c.domains, 4)}; control domains ${formatIdList(c.controlDomains, 4)}`;
  const same = summary(plan.before) === summary(plan.after);
  out.write(`Matrix device ${id}\n  now:   ${summary(plan.before)}\n`);
  if (same) {
    out.write('Nothing to change.\n');
    return;
  }
  out.write(`  after: ${summary(plan.after)}\n`);
  out.write(
    `  queues gained: ${listQueues(plan.added)}\n  queues lost:   ${listQueues(plan.removed)}\n`,
  );
  if (opts.dryRun === true) {
    out.write('Dry run: nothing written.\n');
    return;
  }
  const apConfig = `${MDEV_DEVICES}/${id}/ap_config`;
  if (port.kind(apConfig) === null) {
    // Kernels before ap_config: one attribute write per id, undone in
    // reverse when one fails, so the device ends as it began.
    applyStepwise(port, id, plan);
    out.write('Done (one id at a time: this kernel has no ap_config).\n');
    return;
  }
  const text = `${formatMaskText(plan.after.adapters)},${formatMaskText(plan.after.domains)},${formatMaskText(plan.after.controlDomains)}\n`;
  try {
    port.write(apConfig, text);
  } catch (err) {
    if (err instanceof ErrnoError) {
      throw new ApError(
        `the kernel refused the new matrix of ${id}: ${strerror(err.code)}` +
          `${err.detail === undefined ? '' : ` (${err.detail})`}; nothing was changed`,
      );
    }
    throw err;
  }
  out.write('Done.\n');
}

interface Step {
  readonly file: string;
  readonly undo: string;
  readonly id: number;
}

/** The attribute writes that turn `before` into `after`: removals first, then additions. */
function stepsOf(plan: MatrixPlan): Step[] {
  const steps: Step[] = [];
  const kinds: [keyof MatrixConfig, string][] = [
    ['adapters', 'adapter'],
    ['domains', 'domain'],
    ['controlDomains', 'control_domain'],
  ];
  for (const [key, name] of kinds) {
    const after = new Set(plan.after[key]);
    for (const id of plan.before[key]) {
      if (!after.has(id)) steps.push({ file: `unassign_${name}`, undo: `assign_${name}`, id });
    }
  }
  for (const [key, name] of kinds) {
    const before = new Set(plan.before[key]);
    for (const id of plan.after[key]) {
      if (!before.has(id)) steps.push({ file: `assign_${name}`, undo: `unassign_${name}`, id });
    }
  }
  return steps;
}

function applyStepwise(port: SysfsPort, uuid: string, plan: MatrixPlan): void {
  const dir = `${MDEV_DEVICES}/${uuid}`;
  const done: Step[] = [];
  for (const step of stepsOf(plan)) {
    try {
      port.write(`${dir}/${step.file}`, `${step.id}\n`);
      done.push(step);
    } catch (err) {
      if (!(err instanceof ErrnoError)) throw err;
      const undoFailures: string[] = [];
      for (const d of done.reverse()) {
        try {
          port.write(`${dir}/${d.undo}`, `${d.id}\n`);
        } catch (undoErr) {
          undoFailures.push(
            `${d.undo} ${d.id}: ${undoErr instanceof ErrnoError ? strerror(undoErr.code) : String(undoErr)}`,
          );
        }
      }
      throw new ApError(
        `the kernel refused ${step.file} ${step.id} on ${uuid}: ${strerror(err.code)}` +
          `${err.detail === undefined ? '' : ` (${err.detail})`}; ` +
          (undoFailures.length === 0
            ? 'the earlier steps were undone, nothing changed'
            : `undoing the earlier steps failed for ${undoFailures.join(', ')}`),
      );
    }
  }
}
