/**
 * Apply: carry out a plan, crash-safely, one apply per host at a time.
 *
 * Order: dead record entries are dropped, removals run first (they free
 * capacity), then definition changes and live attributes, starts,
 * adoptions, and creates. Each create is announced in the ownership
 * record (write-ahead, fsynced per batch) before its UUID is written to
 * `create`, so a crash at any point leaves no device that mdevkit made
 * and did not record; the device's definition is written atomically right
 * after it exists. The next apply plans from what is there — the kernel is
 * the truth — and so finishes what a killed one began.
 *
 * Steps go straight to sysfs and the config store (src/host's sysfs-model
 * and config-store), not through mdevctl's command semantics: a
 * thousand-device apply would otherwise rescan the config dir per device.
 * mdevctl's callout scripts are hooks of mdevctl's own commands and are
 * not run. Starting a device that is only defined goes through the host
 * library's startDevice, as `mdevctl start` would.
 *
 * A failing step is reported with the kernel's errno in words and does not
 * stop the others; everything done before it stays done and recorded.
 */
import { ErrnoError } from '../../common/errno.js';
import { deleteConfig, writeConfig } from '../config-store.js';
import { describeError, startDevice } from '../devices.js';
import type { Environment } from '../environment.js';
import { MDEV_BUS_DEVICES, deviceAttributePath, typeDir } from '../paths.js';
import { createDevice, removeDevice } from '../sysfs-model.js';
import { createVgpu, modifyVgpu, removeVgpu, startVgpu } from '../vf-vgpu.js';
import { VGPU_PARAMS_ATTR } from './inventory.js';
import type { MatrixShape } from './capacity.js';
import { acquireApplyLock } from './lock.js';
import type { OwnershipRecord } from './ownership.js';
import type { Plan, PlanItem } from './plan.js';

export interface StepResult {
  readonly item: PlanItem;
  /** The UUID the step acted on (a new device's, for creates). */
  readonly uuid: string | undefined;
  readonly ok: boolean;
  /** Failure in words, with the errno ("Device or resource busy (EBUSY)"). */
  readonly error?: string;
  /** The errno name, when the kernel gave one. */
  readonly errno?: string;
  /** The device was found open (EBUSY on remove): reported as blocked. */
  readonly blocked?: boolean;
}

export type ApplyEvent =
  | { readonly kind: 'begin'; readonly total: number; readonly plan: Plan }
  | {
      readonly kind: 'step';
      readonly done: number;
      readonly total: number;
      readonly result: StepResult;
    }
  | { readonly kind: 'end'; readonly summary: ApplySummary };

export interface ApplySummary {
  readonly created: number;
  readonly removed: number;
  readonly modified: number;
  readonly started: number;
  readonly adopted: number;
  readonly forgotten: number;
  readonly kept: number;
  readonly failed: number;
  /** Plan items that were blocked plus steps found blocked (open devices). */
  readonly blocked: number;
  readonly foreign: number;
  readonly stale: number;
  readonly results: readonly StepResult[];
}

export interface ApplyOptions {
  readonly record: OwnershipRecord;
  readonly onEvent?: (e: ApplyEvent) => void;
  /** Yield to the event loop every this many steps (progress and events flow meanwhile). */
  readonly yieldEvery?: number;
  /** Creates announced per record write. */
  readonly batch?: number;
}

const ACTIONS_THAT_ACT = new Set(['forget', 'remove', 'modify', 'start', 'adopt', 'create']);

function errnoOf(err: unknown): string | undefined {
  for (let e: unknown = err; e !== undefined && e !== null; e = (e as { cause?: unknown }).cause) {
    if (e instanceof ErrnoError) return e.code;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return code;
  }
  return undefined;
}

function failure(item: PlanItem, uuid: string | undefined, what: string, err: unknown): StepResult {
  const errno = errnoOf(err);
  let words = describeError(err);
  // describeError gives the errno only for the outermost error; find the kernel's.
  for (let e: unknown = err; e !== undefined && e !== null; e = (e as { cause?: unknown }).cause) {
    if (e instanceof ErrnoError) {
      words = describeError(e);
      break;
    }
  }
  return {
    item,
    uuid,
    ok: false,
    error: `${what}: ${words}`,
    ...(errno !== undefined && { errno }),
  };
}

/** Write `ap_config` in one store where the kernel has it, else one assign_* per id. */
function writeMatrix(env: Environment, uuid: string, m: MatrixShape): void {
  const port = env.port;
  const dir = `${MDEV_BUS_DEVICES}/${uuid}`;
  if (port.kind(`${dir}/ap_config`) !== null) {
    const mask = (ids: readonly number[]): string => {
      const bits = new Array<number>(256).fill(0);
      for (const i of ids) bits[i] = 1;
      let out = '0x';
      for (let n = 0; n < 64; n++) {
        const i = n * 4;
        out += (
          (bits[i]! << 3) |
          (bits[i + 1]! << 2) |
          (bits[i + 2]! << 1) |
          bits[i + 3]!
        ).toString(16);
      }
      return out;
    };
    port.write(
      `${dir}/ap_config`,
      `${mask(m.adapters)},${mask(m.domains)},${mask(m.controlDomains)}`,
    );
    return;
  }
  for (const a of m.adapters) port.write(`${dir}/assign_adapter`, `0x${a.toString(16)}`);
  for (const d of m.domains) port.write(`${dir}/assign_domain`, `0x${d.toString(16)}`);
  for (const d of m.controlDomains)
    port.write(`${dir}/assign_control_domain`, `0x${d.toString(16)}`);
}

/** Is the device present on the bus? */
const isActive = (env: Environment, uuid: string): boolean =>
  env.port.kind(`${MDEV_BUS_DEVICES}/${uuid}`) !== null;

function readAvailable(env: Environment, parent: string, type: string): number | undefined {
  try {
    const n = Number.parseInt(env.port.read(`${typeDir(parent, type)}/available_instances`), 10);
    return Number.isNaN(n) ? undefined : n;
  } catch {
    return undefined;
  }
}

/**
 * Carry out `plan`. The caller holds the apply lock (see applyWithLock) and
 * made the plan from the host as it is now.
 */
export async function applyPlan(
  env: Environment,
  plan: Plan,
  options: ApplyOptions,
): Promise<ApplySummary> {
  const { record } = options;
  const onEvent = options.onEvent ?? (() => {});
  const yieldEvery = options.yieldEvery ?? 32;
  const batchSize = options.batch ?? 64;
  const acting = plan.items.filter((i) => ACTIONS_THAT_ACT.has(i.action));
  const total = acting.length;
  onEvent({ kind: 'begin', total, plan });
  const results: StepResult[] = [];
  let done = 0;
  const report = async (r: StepResult): Promise<void> => {
    results.push(r);
    done++;
    onEvent({ kind: 'step', done, total, result: r });
    if (done % yieldEvery === 0) await new Promise((resolve) => setImmediate(resolve));
  };

  // Forget dead entries in one write.
  const forgets = acting.filter((i) => i.action === 'forget');
  record.forget(forgets.map((i) => i.uuid!));
  for (const i of forgets) await report({ item: i, uuid: i.uuid, ok: true });

  // Removals: the device, then its definition, then the record (batched).
  const removed: string[] = [];
  for (const item of acting.filter((i) => i.action === 'remove')) {
    const uuid = item.uuid!;
    if (item.kind === 'vf-vgpu') {
      try {
        // Ours (the plan says so): destroyed on its VF, then undefined.
        removeVgpu(env, uuid, { force: true });
      } catch (err) {
        const r = failure(item, uuid, `removing vGPU ${uuid}`, err);
        await report(r.errno === 'EBUSY' ? { ...r, blocked: true } : r);
        continue;
      }
      removed.push(uuid);
      await report({ item, uuid, ok: true });
      continue;
    }
    try {
      if (isActive(env, uuid)) removeDevice(env.port, uuid);
    } catch (err) {
      const r = failure(item, uuid, `removing ${uuid}`, err);
      // An open device: the kernel refused; it stays, and stays ours.
      await report(r.errno === 'EBUSY' ? { ...r, blocked: true } : r);
      continue;
    }
    try {
      if (item.defined === true) deleteConfig(env.configDir, item.parent!, uuid);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        await report(failure(item, uuid, `removing the definition of ${uuid}`, err));
        continue;
      }
    }
    removed.push(uuid);
    await report({ item, uuid, ok: true });
  }
  record.forget(removed);

  // Definition rewrites and live attributes.
  for (const item of acting.filter((i) => i.action === 'modify')) {
    const uuid = item.uuid!;
    if (item.kind === 'vf-vgpu') {
      try {
        modifyVgpu(env, uuid, { start: item.spec!.start, params: vgpuParams(item) });
        await report({ item, uuid, ok: true });
      } catch (err) {
        await report(failure(item, uuid, `changing vGPU ${uuid}`, err));
      }
      continue;
    }
    try {
      for (const a of item.live ?? [])
        env.port.write(deviceAttributePath(env.port, uuid, a.name), a.value);
    } catch (err) {
      await report(failure(item, uuid, `changing ${uuid} while it runs`, err));
      continue;
    }
    try {
      if (item.writeDefinition === true) {
        writeConfig(env.configDir, item.parent!, uuid, {
          mdevType: item.spec!.type,
          start: item.spec!.start,
          attrs: item.spec!.attrs,
        });
      }
    } catch (err) {
      await report(failure(item, uuid, `writing the definition of ${uuid}`, err));
      continue;
    }
    await report({ item, uuid, ok: true });
  }

  // Starts of defined devices (mdevctl start's semantics).
  for (const item of acting.filter((i) => i.action === 'start')) {
    const uuid = item.uuid!;
    if (item.kind === 'vf-vgpu') {
      try {
        if (item.writeDefinition === true) {
          modifyVgpu(env, uuid, { start: item.spec!.start, params: vgpuParams(item) });
        }
        startVgpu(env, uuid);
        await report({ item, uuid, ok: true });
      } catch (err) {
        await report(failure(item, uuid, `making vGPU ${uuid}`, err));
      }
      continue;
    }
    try {
      if (item.writeDefinition === true) {
        writeConfig(env.configDir, item.parent!, uuid, {
          mdevType: item.spec!.type,
          start: item.spec!.start,
          attrs: item.spec!.attrs,
        });
      }
      startDevice(env, { uuid, parent: item.parent });
      await report({ item, uuid, ok: true });
    } catch (err) {
      await report(failure(item, uuid, `starting ${uuid}`, err));
    }
  }

  // Adoptions: recorded first (the device exists already), then made persistent.
  const adopts = acting.filter((i) => i.action === 'adopt');
  record.set(
    adopts.map((i) => ({
      uuid: i.uuid!,
      parent: i.parent!,
      type: i.type!,
      owner: plan.owner,
      state: 'owned' as const,
    })),
  );
  for (const item of adopts) {
    const uuid = item.uuid!;
    try {
      for (const a of item.live ?? [])
        env.port.write(deviceAttributePath(env.port, uuid, a.name), a.value);
      if (item.writeDefinition === true) {
        writeConfig(env.configDir, item.parent!, uuid, {
          mdevType: item.spec!.type,
          start: item.spec!.start,
          attrs: item.spec!.attrs,
        });
      }
      if (!isActive(env, uuid)) startDevice(env, { uuid, parent: item.parent });
      await report({ item, uuid, ok: true });
    } catch (err) {
      await report(failure(item, uuid, `adopting ${uuid}`, err));
    }
  }

  // Creates, in batches announced in the record before any is made.
  const creates = acting.filter((i) => i.action === 'create');
  for (let b = 0; b < creates.length; b += batchSize) {
    const batch = creates
      .slice(b, b + batchSize)
      .map((item) => ({ item, uuid: globalThis.crypto.randomUUID() }));
    record.set(
      batch.map(({ item, uuid }) => ({
        uuid,
        parent: item.parent!,
        type: item.type!,
        owner: plan.owner,
        state: 'creating' as const,
      })),
    );
    const made: typeof batch = [];
    const failed: string[] = [];
    for (const { item, uuid } of batch) {
      const r =
        item.kind === 'vf-vgpu'
          ? createVfOne(env, item, uuid, plan.owner)
          : createOne(env, item, uuid);
      // A device that exists is recorded as ours, whatever failed after its
      // create (the next apply finishes it); one that does not is forgotten.
      if (r.ok || isActive(env, uuid)) made.push({ item, uuid });
      else failed.push(uuid);
      await report(r);
    }
    record.forget(failed);
    record.set(
      made.map(({ item, uuid }) => ({
        uuid,
        parent: item.parent!,
        type: item.type!,
        owner: plan.owner,
        state: 'owned' as const,
      })),
    );
  }
  record.maybeCompact();

  const ok = (a: string): number => results.filter((r) => r.ok && r.item.action === a).length;
  const summary: ApplySummary = {
    created: ok('create'),
    removed: ok('remove'),
    modified: ok('modify'),
    started: ok('start'),
    adopted: ok('adopt'),
    forgotten: ok('forget'),
    kept: plan.counts.keep,
    failed: results.filter((r) => !r.ok && r.blocked !== true).length,
    blocked: plan.counts.blocked + results.filter((r) => r.blocked === true).length,
    foreign: plan.counts.foreign,
    stale: plan.counts.stale,
    results,
  };
  onEvent({ kind: 'end', summary });
  return summary;
}

/** An item's vgpu_params: its `nvidia/vgpu_params` attribute ('' for none). */
function vgpuParams(item: PlanItem): string {
  return item.spec?.attrs.filter((a) => a.name === VGPU_PARAMS_ATTR).at(-1)?.value ?? '';
}

/**
 * Create one VF vGPU: defined (pinned to the first VF that is free and
 * not defined for another) and made, with the UUID announced in the record;
 * a failed make leaves no definition. The driver is asked afresh: the
 * write of its type is the final word.
 */
function createVfOne(env: Environment, item: PlanItem, uuid: string, owner: string): StepResult {
  const gpu = item.parent!;
  const type = item.type!;
  try {
    createVgpu(env, {
      gpu,
      type,
      uuid,
      owner,
      start: item.spec!.start,
      params: vgpuParams(item),
    });
  } catch (err) {
    return { ...failure(item, uuid, `creating ${type} on ${gpu}`, err), uuid: undefined };
  }
  return { item, uuid, ok: true };
}

/** Create one device: re-check the type's instances, create, write attributes, define. */
function createOne(env: Environment, item: PlanItem, uuid: string): StepResult {
  const parent = item.parent!;
  const type = item.type!;
  const spec = item.spec!;
  // The generic rule: trust available_instances, read afresh before each create.
  if (readAvailable(env, parent, type) === 0) {
    return {
      item,
      uuid,
      ok: false,
      error: `creating ${type} on ${parent}: no instances left (available_instances is 0)`,
      errno: 'ENOSPC',
    };
  }
  try {
    createDevice(env.port, parent, type, uuid);
  } catch (err) {
    return failure(item, uuid, `creating ${type} on ${parent}`, err);
  }
  try {
    if (item.matrix !== undefined) writeMatrix(env, uuid, item.matrix);
    else
      for (const a of spec.attrs)
        env.port.write(deviceAttributePath(env.port, uuid, a.name), a.value);
  } catch (err) {
    const r = failure(item, uuid, `configuring ${uuid} (${type} on ${parent})`, err);
    try {
      removeDevice(env.port, uuid);
    } catch {
      return { ...r, error: `${r.error}; removing it again failed too` };
    }
    return { ...r, uuid: undefined };
  }
  try {
    writeConfig(env.configDir, parent, uuid, {
      mdevType: type,
      start: spec.start,
      attrs: spec.attrs,
    });
  } catch (err) {
    // The device runs and is recorded; the next apply writes the definition.
    return failure(item, uuid, `writing the definition of ${uuid}`, err);
  }
  return { item, uuid, ok: true };
}

export interface LockedApplyOptions extends ApplyOptions {
  readonly wait?: boolean;
  readonly onWait?: (holder: { pid: number; owner: string }) => void;
}

/** Take the host's apply lock around `fn`. */
export async function withApplyLock<T>(
  stateDir: string,
  owner: string,
  opts: { wait?: boolean; onWait?: (holder: { pid: number; owner: string }) => void },
  fn: () => Promise<T>,
): Promise<T> {
  const lock = await acquireApplyLock(stateDir, {
    owner,
    ...(opts.wait !== undefined && { wait: opts.wait }),
    ...(opts.onWait !== undefined && { onWait: opts.onWait }),
  });
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
