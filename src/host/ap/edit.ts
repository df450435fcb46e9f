import { ErrnoError, errnoCodeIn, strerror } from '../../common/errno.js';
import type { SysfsPort } from '../../port/sysfs-port.js';
import { MdevError, type ContextInput, type HostErrorCode } from '../errors.js';
import { idListArgument } from './ids.js';
import {
  AP_BUS,
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
 * Planning and applying vfio-ap changes, through sysfs files only: moving
 * adapters and domains between the host and guests (apmask/aqmask), and
 * changing a matrix device (one write of its ap_config, or one attribute
 * write per id on kernels without it).
 *
 * Each change is planned first from the state read through the port: what
 * moves, and every reason it cannot, as structured problems whose codes
 * name the kernel's own refusal (`queue-in-use` → EADDRINUSE,
 * `queue-host-owned` → EADDRNOTAVAIL, `id-out-of-range` → ENODEV,
 * `queue-assigned` → EBUSY). Applying refuses a plan with problems before
 * writing anything. The kernel checks again, so a race still fails with its
 * errno as the code, nothing changed, and an explanation this module reads
 * back from sysfs (which queue, which device holds it) — never from the
 * kernel's log, which a writer does not see.
 *
 * Nothing here prints: the CLI (src/ctl/ap) shows plans and errors, the
 * agent answers with the new matrix.
 */

/** Problems shown in full in a message before "... and N more". */
const SHOWN = 10;

/** Why a change cannot be made, one entry per queue or id at fault. */
export interface ApProblem {
  readonly code: 'queue-in-use' | 'queue-host-owned' | 'queue-assigned' | 'id-out-of-range';
  /** The queue, "aa.dddd". */
  readonly queue?: string;
  /** The matrix device that holds it. */
  readonly owner?: string;
  /** For id-out-of-range: what the id is and the host's highest. */
  readonly what?: 'adapter' | 'domain' | 'control domain';
  readonly id?: number;
  readonly max?: number;
}

/** Kernel order: ids are parsed before queues are checked, the host's queues before other devices'. */
const PROBLEM_ORDER: readonly ApProblem['code'][] = [
  'id-out-of-range',
  'queue-host-owned',
  'queue-in-use',
  'queue-assigned',
];

function problemContext(p: ApProblem): ContextInput {
  const idKey = p.what === 'adapter' ? 'adapter' : p.what === 'domain' ? 'domain' : 'controlDomain';
  return {
    queue: p.queue,
    owner: p.owner,
    ...(p.id === undefined ? {} : { [idKey]: p.id, max: p.max }),
  };
}

/** One error for a list of problems: the code the kernel would give first, the first one's objects. */
function refusalOf(
  problems: readonly ApProblem[],
  message: string,
  context: ContextInput,
): MdevError | undefined {
  if (problems.length === 0) return undefined;
  const first = [...problems].sort(
    (a, b) => PROBLEM_ORDER.indexOf(a.code) - PROBLEM_ORDER.indexOf(b.code),
  )[0]!;
  return new MdevError(first.code, message, { context: { ...context, ...problemContext(first) } });
}

// ---- the host/guest split: apmask and aqmask --------------------------------

export interface MaskChange {
  readonly adapters?: readonly number[] | undefined;
  readonly domains?: readonly number[] | undefined;
}

export type MaskDirection = 'reserve' | 'release';

export interface MaskPlan {
  readonly direction: MaskDirection;
  readonly change: MaskChange;
  readonly apmask: boolean[];
  readonly aqmask: boolean[];
  /** Relative writes ("-5,-6") for the masks that change. */
  readonly apmaskEdit: string | undefined;
  readonly aqmaskEdit: string | undefined;
  /** Present queues that change side. */
  readonly toGuests: string[];
  readonly toHost: string[];
  /** Queues the host would take from a matrix device (`queue-assigned`). */
  readonly conflicts: { apqn: string; owner: string }[];
  /** Why the plan cannot be applied (the conflicts as one error), if it cannot. */
  readonly refusal?: MdevError | undefined;
}

/**
 * What reserving (for guests) or releasing (to the host) ids would do, on
 * an AP state already read. Reserving clears mask bits; releasing sets them.
 */
export function planMasks(host: ApHost, change: MaskChange, direction: MaskDirection): MaskPlan {
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
    direction,
    change,
    apmask,
    aqmask,
    apmaskEdit: edit(apChanged),
    aqmaskEdit: edit(aqChanged),
    toGuests,
    toHost,
    conflicts,
    refusal: maskRefusal(host, change, conflicts),
  };
}

function maskRefusal(
  host: ApHost,
  change: MaskChange,
  conflicts: readonly { apqn: string; owner: string }[],
): MdevError | undefined {
  if (conflicts.length === 0) return undefined;
  const lines = conflicts
    .slice(0, SHOWN)
    .map((c) => `  queue ${c.apqn} is assigned to matrix device ${c.owner}`);
  if (conflicts.length > SHOWN) lines.push(`  ... and ${conflicts.length - SHOWN} more`);
  const owners = [...new Set(conflicts.map((c) => c.owner))];
  return refusalOf(
    conflicts.map((c) => ({ code: 'queue-assigned', queue: c.apqn, owner: c.owner })),
    `cannot release these to the host: matrix devices hold some of their queues\n${lines.join('\n')}\n` +
      `Unassign them first, e.g.: ${owners
        .slice(0, 3)
        .map((o) => `mdevkit ap unassign ${o} ${unassignHint(host, o, change)}`)
        .join('; ')}`,
    {},
  );
}

/** Read the AP state and plan a mask change; ids above the host's maxima are refused here. */
export function planMaskChange(
  port: SysfsPort,
  direction: MaskDirection,
  change: MaskChange,
): MaskPlan {
  const host = readApHost(port);
  checkIds(change.adapters ?? [], host.maxAdapterId, 'adapter');
  checkIds(change.domains ?? [], host.maxDomainId, 'domain');
  return planMasks(host, change, direction);
}

/**
 * Write a mask plan: refused whole when it has problems; one write per
 * mask, each atomic in the kernel. Relative edits keep a concurrent change
 * of other bits intact; if the second write fails, the first is undone so
 * the pair stays all-or-nothing.
 */
export function applyMaskPlan(port: SysfsPort, plan: MaskPlan): void {
  if (plan.refusal !== undefined) throw plan.refusal;
  if (plan.apmaskEdit !== undefined) writeMask(port, plan, 'apmask', plan.apmaskEdit);
  if (plan.aqmaskEdit === undefined) return;
  try {
    writeMask(port, plan, 'aqmask', plan.aqmaskEdit);
  } catch (err) {
    if (plan.apmaskEdit !== undefined && err instanceof MdevError) {
      try {
        port.write(`${AP_BUS}/apmask`, invertEdit(plan.apmaskEdit));
      } catch (undoErr) {
        const why = undoErr instanceof ErrnoError ? strerror(undoErr.code) : String(undoErr);
        throw new MdevError(
          err.code,
          `${err.message}\nundoing the apmask change (${plan.apmaskEdit}) failed too: ${why}; ` +
            'check the split with: mdevkit ap show',
          { context: err.context },
        );
      }
    }
    throw err;
  }
}

/** `ap reserve` / `ap release` as one call: plan, then apply. Returns what was done. */
export function changeMasks(
  port: SysfsPort,
  direction: MaskDirection,
  change: MaskChange,
): MaskPlan {
  const plan = planMaskChange(port, direction, change);
  applyMaskPlan(port, plan);
  return plan;
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

function writeMask(port: SysfsPort, plan: MaskPlan, file: 'apmask' | 'aqmask', edit: string): void {
  const path = `${AP_BUS}/${file}`;
  try {
    port.write(path, `${edit}\n`);
  } catch (err) {
    const code = errnoCodeIn(err);
    if (code === undefined) throw err;
    // What the kernel holds against it, as the state shows it now.
    const now = planMasks(readApHost(port), plan.change, plan.direction);
    const held = now.conflicts[0];
    const why =
      held === undefined ? '' : ` (queue ${held.apqn} is assigned to matrix device ${held.owner})`;
    throw new MdevError(
      code,
      `the kernel refused the ${file} change: ${strerror(code)}${why}; ` +
        'the AP state changed since it was read, run the command again',
      { context: { file: path, value: edit, queue: held?.apqn, owner: held?.owner } },
    );
  }
}

function checkIds(ids: readonly number[], max: number, what: 'adapter' | 'domain'): void {
  const bad = ids.filter((i) => i > max);
  if (bad.length > 0) {
    throw new MdevError(
      'id-out-of-range',
      `${what} ${bad.join(', ')} is above this host's highest ${what} id, ${max}`,
      { context: { [what]: bad[0], max } },
    );
  }
}

// ---- matrix devices: assign / unassign --------------------------------------

export interface MatrixChange {
  readonly adapters?: readonly number[] | undefined;
  readonly domains?: readonly number[] | undefined;
  readonly controlDomains?: readonly number[] | undefined;
}

export type MatrixOp = 'assign' | 'unassign';

export interface MatrixPlan {
  readonly uuid: string;
  readonly op: MatrixOp;
  readonly before: MatrixConfig;
  readonly after: MatrixConfig;
  /** Queues the device gains and loses. */
  readonly added: string[];
  readonly removed: string[];
  /** Why it cannot be done, structured; empty when it can. */
  readonly problems: ApProblem[];
  /** The same in words, one line each (with what to do about it). */
  readonly problemLines: string[];
  /** The problems as one error, if there are any. */
  readonly refusal?: MdevError | undefined;
}

function queuesOf(c: MatrixConfig): Set<number> {
  const s = new Set<number>();
  for (const a of c.adapters) for (const d of c.domains) s.add(apqnKey(a, d));
  return s;
}

/** What assigning or unassigning ids would do to device `uuid`, on an AP state already read. */
export function planMatrix(
  host: ApHost,
  uuid: string,
  before: MatrixConfig,
  change: MatrixChange,
  op: MatrixOp,
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
  const problems: ApProblem[] = [];
  const lines: string[] = [];
  const tooHigh = (
    ids: readonly number[] | undefined,
    max: number,
    what: 'adapter' | 'domain' | 'control domain',
  ): void => {
    for (const i of ids ?? []) {
      if (i <= max) continue;
      problems.push({ code: 'id-out-of-range', what, id: i, max });
      lines.push(
        `${what} ${i} (0x${i.toString(16)}) is above this host's highest ${what} id, ${max}`,
      );
    }
  };
  tooHigh(change.adapters, host.maxAdapterId, 'adapter');
  tooHigh(change.domains, host.maxDomainId, 'domain');
  tooHigh(change.controlDomains, host.maxDomainId, 'control domain');

  const was = queuesOf(before);
  const will = queuesOf(after);
  const name = (k: number): string => apqnName(k >> 8, k & 0xff);
  const added = [...will].filter((k) => !was.has(k)).sort((a, b) => a - b);
  const removed = [...was].filter((k) => !will.has(k)).sort((a, b) => a - b);
  const { hostHeld, taken } = heldQueues(host, uuid, added);
  if (hostHeld.length > 0) {
    for (const k of hostHeld) problems.push({ code: 'queue-host-owned', queue: name(k) });
    lines.push(
      ...hostHeld
        .slice(0, SHOWN)
        .map((k) => `queue ${name(k)} belongs to the host (apmask/aqmask)`),
    );
    if (hostHeld.length > SHOWN)
      lines.push(`... and ${hostHeld.length - SHOWN} more queues of the host`);
    const hostAdapters = [...new Set(hostHeld.map((k) => k >> 8))].filter(
      (a) => host.apmask[a] === true,
    );
    const hostDomains = [...new Set(hostHeld.map((k) => k & 0xff))].filter(
      (d) => host.aqmask[d] === true,
    );
    lines.push(
      `  free them for guests with: mdevkit ap reserve --adapters ${idListArgument(hostAdapters)}` +
        `  (or: mdevkit ap reserve --domains ${idListArgument(hostDomains)})`,
    );
  }
  for (const { key, owner } of taken)
    problems.push({ code: 'queue-in-use', queue: name(key), owner });
  lines.push(
    ...taken
      .slice(0, SHOWN)
      .map(({ key, owner }) => `queue ${name(key)} is assigned to matrix device ${owner}`),
  );
  if (taken.length > SHOWN)
    lines.push(`... and ${taken.length - SHOWN} more queues of other matrix devices`);
  return {
    uuid,
    op,
    before,
    after,
    added: added.map(name),
    removed: removed.map(name),
    problems,
    problemLines: lines,
    refusal: refusalOf(
      problems,
      `cannot ${op} on matrix device ${uuid}:\n  ${lines.join('\n  ')}`,
      {
        uuid,
      },
    ),
  };
}

/** Of the queues `keys`, those the host keeps and those another matrix device holds. */
function heldQueues(
  host: ApHost,
  uuid: string,
  keys: Iterable<number>,
): { hostHeld: number[]; taken: { key: number; owner: string }[] } {
  const owners = queueOwners(host);
  const hostHeld: number[] = [];
  const taken: { key: number; owner: string }[] = [];
  for (const k of keys) {
    if (hostOwns(host, k >> 8, k & 0xff)) hostHeld.push(k);
    const owner = owners.get(k);
    if (owner !== undefined && owner !== uuid) taken.push({ key: k, owner });
  }
  return { hostHeld, taken };
}

/**
 * Read the AP state and plan a change of matrix device `uuid`. Throws
 * `not-active` / `not-matrix-device` when it is no matrix device; a plan
 * with problems carries them (and `refusal`) instead of throwing, so a
 * preview can show them.
 */
export function planMatrixChange(
  port: SysfsPort,
  uuid: string,
  op: MatrixOp,
  change: MatrixChange,
): MatrixPlan {
  const id = uuid.toLowerCase();
  const host = readApHost(port);
  requireMatrixDevice(port, id);
  return planMatrix(host, id, readMatrixConfig(port, id), change, op);
}

/** Does the plan change anything? */
export function matrixPlanChanges(plan: MatrixPlan): boolean {
  const same = (a: readonly number[], b: readonly number[]): boolean =>
    a.length === b.length && a.every((v, i) => v === b[i]);
  return !(
    same(plan.before.adapters, plan.after.adapters) &&
    same(plan.before.domains, plan.after.domains) &&
    same(plan.before.controlDomains, plan.after.controlDomains)
  );
}

/**
 * Write a matrix plan: refused whole when it has problems; one atomic write
 * of ap_config, or — on kernels without it — one attribute write per id,
 * undone in reverse when one fails, so the device ends as it began.
 * Returns how it was written.
 */
export function applyMatrixPlan(
  port: SysfsPort,
  plan: MatrixPlan,
): 'ap_config' | 'stepwise' | 'nothing' {
  if (plan.refusal !== undefined) throw plan.refusal;
  if (!matrixPlanChanges(plan)) return 'nothing';
  const apConfig = `${MDEV_DEVICES}/${plan.uuid}/ap_config`;
  if (port.kind(apConfig) === null) {
    applyStepwise(port, plan);
    return 'stepwise';
  }
  const text = `${formatMaskText(plan.after.adapters)},${formatMaskText(plan.after.domains)},${formatMaskText(plan.after.controlDomains)}\n`;
  try {
    port.write(apConfig, text);
  } catch (err) {
    const code = errnoCodeIn(err);
    if (code === undefined) throw err;
    const why = explainRefusal(port, plan, code);
    throw new MdevError(
      code,
      `the kernel refused the new matrix of ${plan.uuid}: ${strerror(code)}` +
        `${why.text}; nothing was changed`,
      { context: { uuid: plan.uuid, file: apConfig, ...why.context } },
    );
  }
  return 'ap_config';
}

/** `ap assign` / `ap unassign` as one call: plan, then apply. Returns what was done. */
export function changeMatrix(
  port: SysfsPort,
  uuid: string,
  op: MatrixOp,
  change: MatrixChange,
): MatrixPlan {
  const plan = planMatrixChange(port, uuid, op, change);
  applyMatrixPlan(port, plan);
  return plan;
}

/**
 * Why the kernel may have refused the plan, from the state as sysfs shows
 * it now: the first queue of the target matrix that the host keeps or
 * another device holds, or the first id above the maxima — the one that
 * matches the kernel's errno when there is one.
 */
function explainRefusal(
  port: SysfsPort,
  plan: MatrixPlan,
  code: HostErrorCode,
): { text: string; context: ContextInput } {
  let host: ApHost;
  try {
    host = readApHost(port);
  } catch {
    return { text: '', context: {} };
  }
  const now = planMatrix(
    host,
    plan.uuid,
    { adapters: [], domains: [], controlDomains: [] },
    plan.after,
    'assign',
  );
  const wanted =
    code === 'EADDRINUSE'
      ? 'queue-in-use'
      : code === 'EADDRNOTAVAIL'
        ? 'queue-host-owned'
        : code === 'ENODEV'
          ? 'id-out-of-range'
          : undefined;
  const p = now.problems.find((x) => x.code === wanted) ?? now.problems[0];
  if (p === undefined) return { text: '', context: {} };
  const text =
    p.code === 'queue-in-use'
      ? `queue ${p.queue} is assigned to matrix device ${p.owner}`
      : p.code === 'queue-host-owned'
        ? `queue ${p.queue} belongs to the host (apmask/aqmask)`
        : `${p.what} ${p.id} is above this host's highest ${p.what} id, ${p.max}`;
  return { text: ` (${text})`, context: problemContext(p) };
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

function applyStepwise(port: SysfsPort, plan: MatrixPlan): void {
  const uuid = plan.uuid;
  const dir = `${MDEV_DEVICES}/${uuid}`;
  const done: Step[] = [];
  for (const step of stepsOf(plan)) {
    try {
      port.write(`${dir}/${step.file}`, `${step.id}\n`);
      done.push(step);
    } catch (err) {
      const code = errnoCodeIn(err);
      if (code === undefined) throw err;
      const undoFailures: string[] = [];
      for (const d of done.reverse()) {
        try {
          port.write(`${dir}/${d.undo}`, `${d.id}\n`);
        } catch (undoErr) {
          const undoCode = errnoCodeIn(undoErr);
          undoFailures.push(
            `${d.undo} ${d.id}: ${undoCode === undefined ? String(undoErr) : strerror(undoCode)}`,
          );
        }
      }
      const why = explainRefusal(port, plan, code);
      throw new MdevError(
        code,
        `the kernel refused ${step.file} ${step.id} on ${uuid}: ${strerror(code)}${why.text}; ` +
          (undoFailures.length === 0
            ? 'the earlier steps were undone, nothing changed'
            : `undoing the earlier steps failed for ${undoFailures.join(', ')}`),
        {
          context: {
            uuid,
            file: `${dir}/${step.file}`,
            value: step.id,
            ...why.context,
          },
        },
      );
    }
  }
}
