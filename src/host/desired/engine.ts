/**
 * The desired-state engine's entry points, over an Environment (sysfs port
 * + config dir): what the CLI, the agent and the Kubernetes integration
 * call. Each reads the host afresh; apply and drain hold the host's apply
 * lock for their whole run.
 *
 *   planHost(env, file, options)      -> { plan, inventory }
 *   applyHost(env, file, options)     -> { plan, summary }   (lock; dry-run: plan only)
 *   hostCapacity(env, options)        -> CapacityRow[]       (mdevkit capacity)
 *   drainParent(env, parent, options) -> DrainResult         (mdevkit drain)
 *   ownerOf / recordOwner / releaseOwner                      (the ownership record)
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { deleteConfig, writeFileAtomic } from '../config-store.js';
import type { Environment } from '../environment.js';
import { MDEV_BUS_DEVICES } from '../paths.js';
import { removeDevice } from '../sysfs-model.js';
import { describeError } from '../devices.js';
import { MdevError } from '../errors.js';
import { listDefinitions as listVfDefinitions, removeVgpu } from '../vf-vgpu.js';
import { applyPlan, withApplyLock, type ApplyEvent, type ApplySummary } from './apply.js';
import { capacityOf, typeTraits, type Counter, type ModelKind } from './capacity.js';
import { loadConfigFile, selectConfig, type ConfigFile } from './config.js';
import { DesiredError } from './errors.js';
import { readInventory, type Inventory, type InventoryOptions } from './inventory.js';
import {
  OwnershipRecord,
  configOwner,
  readDrained,
  stateDirOf,
  writeDrained,
  type OwnerEntry,
} from './ownership.js';
import { computePlan, planChanges, type Plan } from './plan.js';

export interface HostOptions extends InventoryOptions {
  /** Who holds a device open (a VM), when the caller can tell. */
  readonly inUse?: (uuid: string) => string | undefined;
}

export interface PlanHostOptions extends HostOptions {
  /** The configuration's name in the file (default "default"). */
  readonly config?: string;
  readonly prune?: boolean;
  readonly adopt?: boolean;
}

function fileOf(file: string | ConfigFile): ConfigFile {
  return typeof file === 'string' ? loadConfigFile(file) : file;
}

function planWith(
  env: Environment,
  file: ConfigFile,
  record: OwnershipRecord,
  options: PlanHostOptions,
): { plan: Plan; inventory: Inventory } {
  const config = selectConfig(file, options.config);
  const inventory = readInventory(env, options);
  const entries = new Map(record.entries().map((e) => [e.uuid, e]));
  // A VF vGPU's definition names its owner (made with \`mdevkit vf create\`
  // or the API): one the record does not know is that owner's, not a
  // stranger's.
  for (const d of listVfDefinitions(env, {}, { invalid: () => {} })) {
    if (!entries.has(d.uuid)) {
      entries.set(d.uuid, {
        uuid: d.uuid,
        parent: d.gpu,
        type: `nvidia-${d.typeId}`,
        owner: d.owner,
        state: 'owned',
        since: '',
      });
    }
  }
  const plan = computePlan(file, config, inventory, entries, {
    owner: configOwner(config.name),
    prune: options.prune === true,
    adopt: options.adopt === true,
    drained: readDrained(env),
    ...(options.inUse !== undefined && { inUse: options.inUse }),
  });
  return { plan, inventory };
}

/** What applying would change, read from the host now. */
export function planHost(
  env: Environment,
  file: string | ConfigFile,
  options: PlanHostOptions = {},
): { plan: Plan; inventory: Inventory } {
  const f = fileOf(file);
  const record = OwnershipRecord.open(env);
  return planWith(env, f, record, options);
}

export interface ApplyHostOptions extends PlanHostOptions {
  readonly dryRun?: boolean;
  /** Wait for another apply to end instead of failing (`locked`). */
  readonly wait?: boolean;
  readonly onWait?: (holder: { pid: number; owner: string }) => void;
  readonly onEvent?: (e: ApplyEvent) => void;
}

/** Plan and carry out a configuration under the host's apply lock. */
export async function applyHost(
  env: Environment,
  file: string | ConfigFile,
  options: ApplyHostOptions = {},
): Promise<{ plan: Plan; summary: ApplySummary | undefined }> {
  const f = fileOf(file);
  const config = selectConfig(f, options.config);
  if (options.dryRun === true) return { plan: planHost(env, f, options).plan, summary: undefined };
  return withApplyLock(stateDirOf(env), configOwner(config.name), options, async () => {
    const record = OwnershipRecord.open(env);
    try {
      const { plan } = planWith(env, f, record, options);
      const summary = await applyPlan(env, plan, {
        record,
        ...(options.onEvent !== undefined && { onEvent: options.onEvent }),
      });
      rememberApplied(env, plan, summary);
      return { plan, summary };
    } finally {
      record.close();
    }
  });
}

export { planChanges };

// ---------------------------------------------------------------- desired vs actual

/** What the last apply of a configuration asked for, per parent and type. */
export interface AppliedConfig {
  readonly config: string;
  readonly owner: string;
  readonly file: string;
  readonly at: string;
  /** Devices the configuration wants (kept, created, started, adopted, modified). */
  readonly wanted: readonly {
    readonly parent: string;
    readonly type: string;
    readonly count: number;
  }[];
  /** Requests that did not fit, in words. */
  readonly blocked: readonly string[];
  readonly failed: number;
}

const APPLIED = 'applied.json';

function readApplied(env: Environment): Record<string, AppliedConfig> {
  try {
    const v = JSON.parse(
      fs.readFileSync(nodePath.join(stateDirOf(env), APPLIED), 'utf8'),
    ) as unknown;
    return v !== null && typeof v === 'object' ? (v as Record<string, AppliedConfig>) : {};
  } catch {
    return {};
  }
}

/** Remember what an apply wanted, for desiredStatus (atomic, beside the record). */
function rememberApplied(env: Environment, plan: Plan, summary: ApplySummary): void {
  const wanted = new Map<string, number>();
  for (const i of plan.items) {
    if (!['keep', 'create', 'start', 'adopt', 'modify'].includes(i.action)) continue;
    const k = `${i.parent}\0${i.type}`;
    wanted.set(k, (wanted.get(k) ?? 0) + 1);
  }
  const all = readApplied(env);
  const next: AppliedConfig = {
    config: plan.config,
    owner: plan.owner,
    file: plan.file,
    at: new Date().toISOString(),
    wanted: [...wanted].map(([k, count]) => {
      const [parent, type] = k.split('\0') as [string, string];
      return { parent, type, count };
    }),
    blocked: plan.items.filter((i) => i.action === 'blocked').map((i) => i.reason),
    failed: summary.failed,
  };
  // An apply that found everything as it was leaves the file alone: no
  // write (and no fsync) for a no-op.
  const same = (a: AppliedConfig | undefined): boolean =>
    a !== undefined && JSON.stringify({ ...a, at: '' }) === JSON.stringify({ ...next, at: '' });
  if (same(all[plan.config])) return;
  all[plan.config] = next;
  writeFileAtomic(nodePath.join(stateDirOf(env), APPLIED), `${JSON.stringify(all, null, 1)}\n`);
}

export interface DesiredStatusRow {
  readonly config: string;
  readonly parent: string;
  readonly type: string;
  /** What the last apply of the configuration wanted there. */
  readonly wanted: number;
  /** The configuration's devices running there now. */
  readonly actual: number;
}

export interface DesiredStatus {
  readonly configs: readonly AppliedConfig[];
  readonly rows: readonly DesiredStatusRow[];
}

/** Desired (as last applied) next to actual (the owners' running devices), per config, parent and type. */
export function desiredStatus(env: Environment): DesiredStatus {
  const applied = readApplied(env);
  const record = OwnershipRecord.open(env);
  const inv = readInventory(env);
  const actual = new Map<string, number>();
  for (const d of inv.devices) {
    const e = record.get(d.uuid);
    if (!d.active || e === undefined || e.parent !== d.parent) continue;
    const k = `${e.owner}\0${d.parent}\0${d.type}`;
    actual.set(k, (actual.get(k) ?? 0) + 1);
  }
  const rows: DesiredStatusRow[] = [];
  const configs = Object.values(applied).sort((a, b) => (a.config < b.config ? -1 : 1));
  for (const c of configs) {
    const seen = new Set<string>();
    for (const w of c.wanted) {
      const k = `${c.owner}\0${w.parent}\0${w.type}`;
      seen.add(k);
      rows.push({
        config: c.config,
        parent: w.parent,
        type: w.type,
        wanted: w.count,
        actual: actual.get(k) ?? 0,
      });
    }
    for (const [k, n] of actual) {
      const [owner, parent, type] = k.split('\0') as [string, string, string];
      if (owner === c.owner && !seen.has(k))
        rows.push({ config: c.config, parent, type, wanted: 0, actual: n });
    }
  }
  return { configs, rows };
}

// ---------------------------------------------------------------- capacity

export interface CapacityCell {
  readonly parent: string;
  readonly model: ModelKind;
  /** How many more devices of the type fit there now. */
  readonly more: number;
  /** Why none, when `more` is 0. */
  readonly why?: string;
  readonly drained?: boolean;
}

export interface CapacityRow {
  readonly type: string;
  readonly name: string | undefined;
  readonly framebufferMb: number | undefined;
  /** Total more over all parents with this type. */
  readonly more: number;
  readonly parents: readonly CapacityCell[];
}

export interface ParentCapacity {
  readonly parent: string;
  readonly model: ModelKind;
  readonly devices: number;
  readonly counters: readonly Counter[];
  /** 0 .. 1: share of the free capacity no single type can use now; see fragmentation(). */
  readonly fragmentation: number;
}

/**
 * Fragmentation of a parent: the share of the free part of its first
 * counter (framebuffer, aperture, queues, instances) that no single type
 * can use now — 1 - max over types (headroom × size) / free. An empty or
 * full parent is 0; a GVT-g GPU whose free aperture no type can fill
 * because the fences ran out is close to 1.
 */
function fragmentation(counters: readonly Counter[], usable: number): number {
  const c = counters[0];
  if (c === undefined) return 0;
  const free = c.capacity - c.used;
  if (free <= 0 || c.used === 0) return 0;
  return Math.max(0, Math.min(1, 1 - usable / free));
}

/** For each type: how many more fit on this host now, per parent, and why not where none. */
export function hostCapacity(
  env: Environment,
  options: HostOptions & { readonly type?: string } = {},
): { types: CapacityRow[]; parents: ParentCapacity[] } {
  const inv = readInventory(env, options);
  const drained = readDrained(env);
  const states = capacityOf(inv);
  const rows = new Map<
    string,
    { name: string | undefined; fb: number | undefined; cells: CapacityCell[] }
  >();
  const parents: ParentCapacity[] = [];
  for (const p of inv.parents) {
    const st = states.get(p.name)!;
    let usable = 0;
    for (const t of p.types) {
      const more = drained.has(p.name) ? 0 : st.headroom(t.id);
      const cons = st.consumption(t.id);
      const first = Object.values(cons)[0] ?? 0;
      usable = Math.max(usable, st.headroom(t.id) * first);
      if (options.type !== undefined && options.type !== t.id && options.type !== t.name) continue;
      const why = drained.has(p.name)
        ? `${p.name} is drained`
        : more === 0
          ? st.check(t.id)?.reason
          : undefined;
      let row = rows.get(t.id);
      if (row === undefined)
        rows.set(t.id, (row = { name: t.name, fb: typeTraits(t).framebufferMb, cells: [] }));
      row.cells.push({
        parent: p.name,
        model: st.kind,
        more,
        ...(why !== undefined && { why }),
        ...(drained.has(p.name) && { drained: true }),
      });
    }
    const counters = st.counters();
    parents.push({
      parent: p.name,
      model: st.kind,
      devices: st.devices,
      counters,
      fragmentation: fragmentation(counters, usable),
    });
  }
  const types = [...rows]
    .sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .map(([type, r]) => ({
      type,
      name: r.name,
      framebufferMb: r.fb,
      more: r.cells.reduce((n, c) => n + c.more, 0),
      parents: r.cells,
    }));
  if (options.type !== undefined && types.length === 0) {
    throw new DesiredError(
      'request-impossible',
      `no parent of this host has type ${JSON.stringify(options.type)}`,
      {
        type: options.type,
      },
    );
  }
  return { types, parents };
}

// ---------------------------------------------------------------- drain

export interface DrainResult {
  readonly parent: string;
  readonly removed: readonly string[];
  /** Owned devices left because they are open (by whom) or the kernel refused. */
  readonly open: readonly { readonly uuid: string; readonly why: string }[];
  readonly foreign: readonly string[];
  readonly failed: readonly { readonly uuid: string; readonly error: string }[];
}

/**
 * Take `parent` out of placement (remembered until undrained) and remove
 * the devices mdevkit owns there that nobody holds open. Foreign devices
 * stay; open ones are reported.
 */
export async function drainParent(
  env: Environment,
  parent: string,
  options: HostOptions & { readonly undo?: boolean; readonly wait?: boolean } = {},
): Promise<DrainResult> {
  const inv = readInventory(env, options);
  if (!inv.parents.some((p) => p.name === parent) && options.undo !== true) {
    throw new DesiredError(
      'request-impossible',
      `no parent ${JSON.stringify(parent)} on this host`,
      { parent },
    );
  }
  return withApplyLock(
    stateDirOf(env),
    'drain',
    { ...(options.wait !== undefined && { wait: options.wait }) },
    async () => {
      const drained = readDrained(env);
      if (options.undo === true) {
        drained.delete(parent);
        writeDrained(env, drained);
        return { parent, removed: [], open: [], foreign: [], failed: [] };
      }
      drained.add(parent);
      writeDrained(env, drained);
      const record = OwnershipRecord.open(env);
      const removed: string[] = [];
      const open: { uuid: string; why: string }[] = [];
      const foreign: string[] = [];
      const failed: { uuid: string; error: string }[] = [];
      try {
        for (const d of inv.devices.filter((x) => x.parent === parent)) {
          const e = record.get(d.uuid);
          if (e === undefined || e.parent !== parent) {
            foreign.push(d.uuid);
            continue;
          }
          const holder = d.active ? options.inUse?.(d.uuid) : undefined;
          if (holder !== undefined) {
            open.push({ uuid: d.uuid, why: `open (${holder})` });
            continue;
          }
          if (d.kind === 'vf-vgpu') {
            try {
              removeVgpu(env, d.uuid, { force: true });
              removed.push(d.uuid);
            } catch (err) {
              const words = describeError(err);
              if (err instanceof MdevError && err.errno === 'EBUSY')
                open.push({ uuid: d.uuid, why: err.message });
              else failed.push({ uuid: d.uuid, error: words });
            }
            continue;
          }
          try {
            if (env.port.kind(`${MDEV_BUS_DEVICES}/${d.uuid}`) !== null)
              removeDevice(env.port, d.uuid);
          } catch (err) {
            const words = describeError(err);
            if (words.includes('EBUSY'))
              open.push({ uuid: d.uuid, why: `the kernel says ${words}` });
            else failed.push({ uuid: d.uuid, error: words });
            continue;
          }
          if (d.defined) {
            try {
              deleteConfig(env.configDir, parent, d.uuid);
            } catch (err) {
              failed.push({ uuid: d.uuid, error: describeError(err) });
              continue;
            }
          }
          removed.push(d.uuid);
        }
        record.forget(removed);
      } finally {
        record.close();
      }
      return { parent, removed, open, foreign, failed };
    },
  );
}

// ---------------------------------------------------------------- ownership by clients

/** Who owns a device (undefined: nobody mdevkit knows). */
export function ownerOf(env: Environment, uuid: string): OwnerEntry | undefined {
  return OwnershipRecord.open(env).get(uuid);
}

/** All ownership entries of a host. */
export function ownershipEntries(env: Environment): OwnerEntry[] {
  return OwnershipRecord.open(env).entries();
}

/**
 * Record that `owner` made a device (the agent calls this right after a
 * create that succeeded). The record has one writer at a time — apply
 * compacts it — so this waits for a running apply. Crash window: the
 * device exists for a moment unrecorded, as for any tool but apply.
 */
export async function recordOwner(
  env: Environment,
  device: { uuid: string; parent: string; type: string },
  owner: string,
): Promise<void> {
  await withApplyLock(stateDirOf(env), owner, { wait: true }, async () => {
    const r = OwnershipRecord.open(env);
    try {
      r.set([{ ...device, owner, state: 'owned' }]);
    } finally {
      r.close();
    }
  });
}

/** Forget a device's owner (after it was removed, or to give it up). */
export async function forgetOwner(env: Environment, uuid: string): Promise<void> {
  await withApplyLock(stateDirOf(env), 'forget', { wait: true }, async () => {
    const r = OwnershipRecord.open(env);
    try {
      r.forget([uuid]);
    } finally {
      r.close();
    }
  });
}

/**
 * May `owner` remove device `uuid`? Throws DesiredError `not-owner` naming
 * the device's owner unless it is `owner`'s or `force` is given.
 */
export function assertMayRemove(
  env: Environment,
  uuid: string,
  owner: string,
  force = false,
): void {
  if (force) return;
  const e = OwnershipRecord.open(env).get(uuid);
  if (e !== undefined && e.owner === owner) return;
  throw new DesiredError(
    'not-owner',
    e === undefined
      ? `device ${uuid} was not made by ${owner} (mdevkit has no record of it: another tool made it); force to remove it anyway`
      : `device ${uuid} belongs to ${e.owner}, not ${owner}; force to remove it anyway`,
    { uuid, owner: e?.owner ?? 'unknown' },
  );
}
