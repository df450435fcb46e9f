/**
 * How plans, apply results, capacity and ownership read on a terminal and
 * as JSON. JSON shapes are stable: keys are only ever added.
 */
import type { ApplyEvent, ApplySummary, StepResult } from '../../host/desired/apply.js';
import type { ConfigFile } from '../../host/desired/config.js';
import type { CapacityRow, DrainResult, ParentCapacity } from '../../host/desired/engine.js';
import type { OwnerEntry } from '../../host/desired/ownership.js';
import type { Plan, PlanItem } from '../../host/desired/plan.js';
import type { MdevDevice } from '../../host/devices.js';

const basename = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

function where(file: ConfigFile | undefined, field: string | undefined): string {
  if (file === undefined || field === undefined) return '';
  const at = file.locate(field);
  return at === undefined ? '' : ` (${basename(file.file)}:${at.line})`;
}

const short = (uuid: string | undefined): string => uuid ?? '';

/** Creates of the same parent, type and request collapse into one line. */
function groupItems(items: readonly PlanItem[]): { item: PlanItem; n: number }[] {
  const out: { item: PlanItem; n: number }[] = [];
  for (const item of items) {
    const last = out.at(-1);
    if (
      last !== undefined &&
      item.action === 'create' &&
      last.item.action === 'create' &&
      last.item.parent === item.parent &&
      last.item.type === item.type &&
      last.item.field === item.field &&
      item.matrix === undefined
    ) {
      last.n++;
      continue;
    }
    out.push({ item, n: 1 });
  }
  return out;
}

function itemLine(item: PlanItem, n: number, file: ConfigFile | undefined): string {
  const what =
    item.uuid !== undefined
      ? short(item.uuid)
      : n > 1
        ? `${n} devices`
        : item.action === 'create'
          ? '1 device'
          : '';
  const cols = [
    item.action.padEnd(7),
    (item.parent ?? '-').padEnd(13),
    (item.type ?? '-').padEnd(18),
    what.padEnd(36),
  ];
  return `  ${cols.join(' ')} ${item.reason}${where(file, item.field)}\n`;
}

export function renderPlan(plan: Plan, file?: ConfigFile): string {
  let out =
    `Plan for configuration ${JSON.stringify(plan.config)} of ${plan.file} ` +
    `(owner ${plan.owner}, policy ${plan.policy}${plan.prune ? ', prune' : ''}${plan.adopt ? ', adopt' : ''}):\n`;
  const shown = plan.items.filter((i) => i.action !== 'forget');
  if (shown.length === 0) out += '  nothing: the configuration selects nothing on this host\n';
  for (const { item, n } of groupItems(shown)) out += itemLine(item, n, file);
  out += `${summaryOfCounts(plan)}\n`;
  return out;
}

function summaryOfCounts(plan: Plan): string {
  const c = plan.counts;
  const parts: string[] = [];
  const add = (n: number, text: string): void => {
    if (n > 0) parts.push(`${n} ${text}`);
  };
  add(c.create, 'to create');
  add(c.remove, 'to remove');
  add(c.modify, 'to modify');
  add(c.start, 'to start');
  add(c.adopt, 'to adopt');
  add(c.keep, 'kept');
  add(c.stale, 'stale (apply --prune removes them)');
  add(c.blocked, 'blocked');
  add(c.foreign, 'foreign (left alone)');
  const changes = c.create + c.remove + c.modify + c.start + c.adopt + c.forget;
  return `Summary: ${parts.length === 0 ? 'nothing' : parts.join(', ')}${changes === 0 ? '; no changes' : ''}.`;
}

export function planJson(plan: Plan): unknown {
  return {
    file: plan.file,
    config: plan.config,
    owner: plan.owner,
    policy: plan.policy,
    prune: plan.prune,
    adopt: plan.adopt,
    counts: plan.counts,
    items: plan.items,
  };
}

function stepLine(r: StepResult): string {
  const i = r.item;
  const state = r.ok ? 'done' : r.blocked === true ? 'blocked' : 'FAILED';
  return `  ${state.padEnd(7)} ${i.action.padEnd(7)} ${(i.parent ?? '-').padEnd(13)} ${(i.type ?? '-').padEnd(18)} ${short(r.uuid).padEnd(36)} ${r.error ?? i.reason}\n`;
}

/** Failures and blocked steps, then one summary line. */
export function renderApplySummary(plan: Plan, s: ApplySummary, verbose: boolean): string {
  let out = '';
  for (const r of s.results) if (verbose || !r.ok) out += stepLine(r);
  for (const i of plan.items) if (i.action === 'blocked') out += itemLine(i, 1, undefined);
  const parts = [
    `${s.created} created`,
    `${s.removed} removed`,
    `${s.modified} modified`,
    `${s.started} started`,
    `${s.adopted} adopted`,
    `${s.kept} kept`,
  ];
  const tail: string[] = [];
  if (s.blocked > 0) tail.push(`${s.blocked} blocked`);
  if (s.failed > 0) tail.push(`${s.failed} failed`);
  if (s.stale > 0) tail.push(`${s.stale} stale (apply --prune removes them)`);
  if (s.foreign > 0) tail.push(`${s.foreign} foreign left alone`);
  out += `Applied ${JSON.stringify(plan.config)}: ${parts.join(', ')}${tail.length > 0 ? `; ${tail.join(', ')}` : ''}.\n`;
  return out;
}

export function applyJson(plan: Plan, s: ApplySummary | undefined): unknown {
  return {
    plan: planJson(plan),
    result:
      s === undefined
        ? null
        : {
            created: s.created,
            removed: s.removed,
            modified: s.modified,
            started: s.started,
            adopted: s.adopted,
            forgotten: s.forgotten,
            kept: s.kept,
            blocked: s.blocked,
            failed: s.failed,
            stale: s.stale,
            foreign: s.foreign,
            steps: s.results.map((r) => ({
              action: r.item.action,
              parent: r.item.parent ?? null,
              type: r.item.type ?? null,
              uuid: r.uuid ?? null,
              ok: r.ok,
              ...(r.blocked === true && { blocked: true }),
              ...(r.error !== undefined && { error: r.error }),
              ...(r.errno !== undefined && { errno: r.errno }),
            })),
          },
  };
}

/** A one-line progress bar for a terminal (redrawn with \r). */
export function progressLine(e: Extract<ApplyEvent, { kind: 'step' }>, width = 30): string {
  const filled = e.total === 0 ? width : Math.round((e.done / e.total) * width);
  const r = e.result;
  return `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${e.done}/${e.total} ${r.item.action} ${r.item.parent ?? ''}`.padEnd(
    80,
  );
}

export function renderCapacity(types: readonly CapacityRow[]): string {
  let out = '';
  for (const t of types) {
    const about = [
      t.name,
      t.framebufferMb === undefined ? undefined : `${t.framebufferMb}M`,
    ].filter((x) => x !== undefined && x !== '');
    out += `${t.type}${about.length > 0 ? ` (${about.join(', ')})` : ''}: ${t.more} more\n`;
    for (const c of t.parents) {
      out += `  ${c.parent.padEnd(13)} ${String(c.more).padStart(5)}  ${c.model}${c.why === undefined ? '' : `: ${c.why}`}\n`;
    }
  }
  return out;
}

export function capacityJson(
  types: readonly CapacityRow[],
  parents: readonly ParentCapacity[],
): unknown {
  return { types, parents };
}

export function renderDrain(r: DrainResult): string {
  let out = `Drained ${r.parent}: no new devices are placed there (mdevkit drain --undo ${r.parent} ends it).\n`;
  for (const u of r.removed) out += `  removed  ${u}\n`;
  for (const o of r.open) out += `  kept     ${o.uuid}: ${o.why}\n`;
  for (const f of r.failed) out += `  FAILED   ${f.uuid}: ${f.error}\n`;
  for (const u of r.foreign) out += `  foreign  ${u}: not mdevkit's, left alone\n`;
  out += `${r.removed.length} removed, ${r.open.length} open, ${r.foreign.length} foreign, ${r.failed.length} failed.\n`;
  return out;
}

/** `mdevkit list --owner`: mdevctl's lines with the owner appended. */
export function renderOwnedList(
  devices: Map<string, MdevDevice[]>,
  defined: boolean,
  owners: (uuid: string, parent: string) => OwnerEntry | undefined,
): string {
  let out = '';
  for (const list of devices.values()) {
    for (const d of list) {
      if (defined && !d.defined) continue;
      let line = `${d.uuid} ${d.parent} ${d.type} ${d.start}`;
      if (defined ? d.active : d.defined) line += defined ? ' (active)' : ' (defined)';
      const e = owners(d.uuid, d.parent);
      out += `${line} owner=${e === undefined ? '-' : e.owner}\n`;
    }
  }
  return out;
}

export function ownedListJson(
  devices: Map<string, MdevDevice[]>,
  defined: boolean,
  owners: (uuid: string, parent: string) => OwnerEntry | undefined,
): unknown {
  const out: unknown[] = [];
  for (const list of devices.values()) {
    for (const d of list) {
      if (defined && !d.defined) continue;
      const e = owners(d.uuid, d.parent);
      out.push({
        uuid: d.uuid,
        parent: d.parent,
        type: d.type,
        start: d.start,
        active: d.active,
        defined: d.defined,
        owner: e?.owner ?? null,
        ownedSince: e?.since ?? null,
      });
    }
  }
  return out;
}
