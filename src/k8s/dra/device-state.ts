import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { errnoCodeIn } from '../../common/errno.js';
import { changeMatrix } from '../../host/ap/edit.js';
import { apqnName } from '../../host/ap/model.js';
import { deviceDir } from '../../host/paths.js';
import { createDevice, readActiveDevice, removeDevice } from '../../host/sysfs-model.js';
import type { SysfsPort } from '../../port/sysfs-port.js';
import { CdiWriter, POD_CLAIM_NAME_ANNOTATION, type CdiDevice, type ClaimRef } from './cdi.js';
import { buildCatalog, sizeWords, type Catalog, type CatalogDevice } from './catalog.js';
import { Checkpoint, type PreparedClaim, type PreparedDevice } from './checkpoint.js';
import {
  claimOwner,
  type DraEngine,
  type EngineCapacity,
  type HostView,
  type OwnerEntry,
} from './engine.js';

/**
 * Prepare and Unprepare: what a claim's allocation becomes on the host.
 *
 * **Prepare** reads the claim (kubelet names it; the allocation is in its
 * status), keeps the results of this driver and this node's pool, and
 * makes each device in one step: an mdev of the allocated type on the
 * allocated parent, or — for AP queues — one vfio_ap matrix device holding
 * them. The first device's UUID is the claim's UID (what KubeVirt and
 * people see: the claim and its device share a name); further devices of
 * the same claim get a name-based UUID (RFC 4122 version 5) derived from
 * the claim's UID and the allocated device, so every retry, after any
 * crash, arrives at the same UUIDs.
 *
 * The order makes a crash harmless at every point:
 *   1. the ownership record says `creating` for each UUID (fsynced);
 *   2. the devices are created through sysfs;
 *   3. CDI specs and device metadata are written, then the checkpoint;
 *   4. the record says `owned`.
 * A Prepare that finds a device with its UUID already there — on the
 * parent and type it would create — adopts it (a retry after a crash
 * between 2 and 3, or simply a second call); one on another parent or
 * type is refused. Before creating, each device is checked against the
 * host as sysfs shows it now, with the vendor's rules (one type per GRID
 * GPU, framebuffer and aperture budgets, queue pools, the AP masks and the
 * queues other matrix devices hold): a claim that cannot be satisfied is
 * refused with the reason, which also becomes an Event on the claim.
 *
 * **Unprepare** removes the devices the record says the claim made (and
 * only those: a device with the claim's UUID that the record does not name
 * is someone else's), then the claim's files and checkpoint entry. A
 * device a VM still holds open makes it fail (kubelet tries again).
 *
 * Calls are serialized: each sees the host as the previous one left it.
 */

export interface ClaimSource {
  /** The ResourceClaim as the API server has it now. */
  get(namespace: string, name: string): Promise<ResourceClaimLike>;
}

/** The parts of a ResourceClaim Prepare reads. */
export interface ResourceClaimLike {
  readonly metadata?: {
    readonly uid?: string;
    readonly name?: string;
    readonly namespace?: string;
    readonly annotations?: Readonly<Record<string, string>>;
  };
  readonly status?: {
    readonly allocation?: {
      readonly devices?: {
        readonly results?: readonly {
          readonly request: string;
          readonly driver: string;
          readonly pool: string;
          readonly device: string;
        }[];
      };
    };
  };
}

export interface ClaimKey {
  readonly namespace: string;
  readonly uid: string;
  readonly name: string;
}

export interface PrepareResult {
  readonly devices: readonly {
    readonly request: string;
    readonly pool: string;
    readonly device: string;
    readonly cdiDeviceIds: readonly string[];
  }[];
}

/**
 * Why a claim was not prepared or unprepared, by stable code. `true`: the
 * claim cannot be satisfied on this node as it is now (the allocation was
 * made from slices the host has moved past) — worth an Event on the
 * claim; `false`: the request or the host failed otherwise.
 */
export const CLAIM_ERRORS = {
  'claim-uid-invalid': false,
  'claim-replaced': false,
  'claim-not-allocated': false,
  'claim-other-pool': false,
  'device-unknown': true,
  'not-a-matrix': true,
  'parent-gone': true,
  'no-capacity': true,
  'matrix-refused': true,
  'uuid-taken': true,
  'device-not-ours': true,
  'create-failed': false,
  'no-iommu-group': false,
  'remove-failed': false,
} as const;

export type ClaimErrorCode = keyof typeof CLAIM_ERRORS;

/** A refusal to prepare or unprepare a claim: a stable code, words for kubelet and the Event, context. */
export class ClaimError extends Error {
  override readonly name = 'ClaimError';
  constructor(
    readonly code: ClaimErrorCode,
    message: string,
    readonly context: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }

  /** Does it say the claim cannot be satisfied here (an Event on the claim)? A kernel refusal of a create does. */
  get unsatisfiable(): boolean {
    return CLAIM_ERRORS[this.code] || (this.code === 'create-failed' && 'errno' in this.context);
  }
}

export interface DeviceStateOptions {
  readonly driver: string;
  /** The node's pool (its name). */
  readonly pool: string;
  readonly port: SysfsPort;
  readonly engine: DraEngine;
  readonly claims: ClaimSource;
  readonly cdi: CdiWriter;
  readonly checkpoint: Checkpoint;
  /** Called after a change the slices should show. */
  readonly changed?: () => void;
  /** Test hook: runs after the devices exist, before the checkpoint (a crash there). */
  readonly afterCreate?: (claim: ClaimKey) => void;
  readonly log?: (line: string) => void;
}

interface Creation {
  readonly kind: 'mdev' | 'matrix';
  readonly uuid: string;
  readonly parent: string;
  readonly type: string;
  /** The allocation results it serves. */
  readonly results: readonly { request: string; pool: string; device: CatalogDevice }[];
  readonly adapters?: readonly number[];
  readonly domains?: readonly number[];
}

export class DeviceState {
  #queue: Promise<unknown> = Promise.resolve();
  readonly #log: (line: string) => void;

  constructor(readonly options: DeviceStateOptions) {
    this.#log = options.log ?? (() => {});
  }

  /** One call at a time, in order of arrival. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  prepare(claim: ClaimKey): Promise<PrepareResult> {
    return this.#serial(() => this.#prepare(claim));
  }

  unprepare(claim: ClaimKey): Promise<void> {
    return this.#serial(() => this.#unprepare(claim));
  }

  // ---------------------------------------------------------------- prepare

  async #prepare(key: ClaimKey): Promise<PrepareResult> {
    const { port, engine, driver } = this.options;
    const done = this.options.checkpoint.get(key.uid);
    if (done !== undefined && done.devices.every((d) => this.#exists(d.uuid, d.parent, d.type))) {
      return resultOf(done);
    }
    if (!UUID.test(key.uid)) {
      throw new ClaimError(
        'claim-uid-invalid',
        `claim UID ${JSON.stringify(key.uid)} is not a UUID`,
        {
          uid: key.uid,
        },
      );
    }
    const rc = await this.options.claims.get(key.namespace, key.name);
    if (rc.metadata?.uid !== key.uid) {
      throw new ClaimError(
        'claim-replaced',
        `ResourceClaim ${key.namespace}/${key.name} has UID ${rc.metadata?.uid ?? '(none)'}, not ${key.uid}: it was deleted and made again`,
        { uid: key.uid },
      );
    }
    const results = (rc.status?.allocation?.devices?.results ?? []).filter(
      (r) => r.driver === driver,
    );
    if (rc.status?.allocation === undefined) {
      throw new ClaimError(
        'claim-not-allocated',
        `ResourceClaim ${key.namespace}/${key.name} is not allocated`,
      );
    }
    const elsewhere = results.find((r) => r.pool !== this.options.pool);
    if (elsewhere !== undefined) {
      throw new ClaimError(
        'claim-other-pool',
        `ResourceClaim ${key.namespace}/${key.name} has device ${elsewhere.device} of pool ${elsewhere.pool}; this node's pool is ${this.options.pool}`,
        { pool: elsewhere.pool, device: elsewhere.device },
      );
    }
    const view = engine.read();
    const catalog = buildCatalog(view, { driver, owners: engine.owners() });
    const creations = this.#plan(key, results, catalog);
    const owner = claimOwner(driver, key.uid);
    const ref: ClaimRef = {
      uid: key.uid,
      namespace: key.namespace,
      name: key.name,
      podClaimName: rc.metadata?.annotations?.[POD_CLAIM_NAME_ANNOTATION],
    };

    // What is there already (a retry, or a crash between create and checkpoint)?
    const adopted = new Set<string>();
    for (const c of creations) {
      const found = readActiveDevice(port, c.uuid);
      if (found === undefined) continue;
      if (found.parent !== c.parent || found.type !== c.type) {
        throw new ClaimError(
          'uuid-taken',
          `device ${c.uuid} exists already, as ${found.type} on ${found.parent}; ResourceClaim ${key.namespace}/${key.name} needs ${c.type} on ${c.parent}`,
          { uuid: c.uuid, parent: found.parent, type: found.type },
        );
      }
      adopted.add(c.uuid);
    }
    const records = engine.owners();
    for (const uuid of adopted) {
      const e = records.find((x) => x.uuid === uuid);
      if (e === undefined || e.owner !== owner) {
        throw new ClaimError(
          'device-not-ours',
          `device ${uuid} exists already and ${e === undefined ? 'mdevkit did not make it' : `belongs to ${e.owner}`}; it is left alone`,
          { uuid, ...(e !== undefined && { owner: e.owner }) },
        );
      }
    }
    this.#check(
      key,
      creations.filter((c) => !adopted.has(c.uuid)),
      view,
    );

    // 1. write ahead
    await engine.withOwnership(owner, (r) =>
      r.set(
        creations
          .filter((c) => !adopted.has(c.uuid))
          .map((c) => ({ uuid: c.uuid, parent: c.parent, type: c.type, owner, state: 'creating' })),
      ),
    );
    // 2. create, undoing in reverse on failure
    const made: Creation[] = [];
    try {
      for (const c of creations) {
        if (adopted.has(c.uuid)) continue;
        this.#create(c);
        made.push(c);
      }
    } catch (err) {
      for (const c of made.reverse()) {
        try {
          removeDevice(port, c.uuid);
        } catch (undoErr) {
          this.#log(`undoing ${c.uuid}: ${(undoErr as Error).message}`);
        }
      }
      await engine.withOwnership(owner, (r) => r.forget(creations.map((c) => c.uuid)));
      this.options.changed?.();
      const errno = errnoCodeIn(err);
      throw new ClaimError(
        'create-failed',
        `preparing ResourceClaim ${key.namespace}/${key.name}: ${(err as Error).message}`,
        errno === undefined ? {} : { errno },
      );
    }
    this.options.afterCreate?.(key);
    // 3. what the container gets, then the checkpoint
    const cdiDevices: CdiDevice[] = [];
    const prepared: PreparedDevice[] = [];
    for (const c of creations) {
      const group = this.#iommuGroup(c.uuid);
      for (const r of c.results) {
        cdiDevices.push({
          request: r.request,
          pool: r.pool,
          device: r.device.name,
          iommuGroup: group,
          attributes: { ...r.device.attributes, mdevUUID: { string: c.uuid } },
        });
      }
    }
    const written = this.options.cdi.write(ref, cdiDevices);
    let i = 0;
    for (const c of creations) {
      for (const r of c.results) {
        prepared.push({
          request: r.request,
          pool: r.pool,
          device: r.device.name,
          kind: c.kind,
          uuid: c.uuid,
          parent: c.parent,
          type: c.type,
          cdiDeviceIds: written.ids[i++] ?? [],
        });
      }
    }
    const entry: PreparedClaim = {
      uid: key.uid,
      namespace: key.namespace,
      name: key.name,
      devices: prepared,
      files: written.files,
      preparedAt: new Date().toISOString(),
    };
    this.options.checkpoint.put(entry);
    // 4. owned
    await engine.withOwnership(owner, (r) =>
      r.set(
        creations.map((c) => ({
          uuid: c.uuid,
          parent: c.parent,
          type: c.type,
          owner,
          state: 'owned',
        })),
      ),
    );
    this.options.changed?.();
    return resultOf(entry);
  }

  /** The devices to make for a claim's results, in allocation order; queues become one matrix. */
  #plan(
    key: ClaimKey,
    results: readonly { request: string; pool: string; device: string }[],
    catalog: Catalog,
  ): Creation[] {
    const mdevs: Omit<Creation, 'uuid'>[] = [];
    const queues: { request: string; pool: string; device: CatalogDevice }[] = [];
    for (const r of results) {
      const d = catalog.byName.get(r.device);
      if (d === undefined) {
        throw new ClaimError(
          'device-unknown',
          `device ${r.device} of ResourceClaim ${key.namespace}/${key.name} is not on this node (its parent is gone, or the slices were stale)`,
          { device: r.device },
        );
      }
      if (d.kind === 'ap-queue') queues.push({ request: r.request, pool: r.pool, device: d });
      else
        mdevs.push({
          kind: 'mdev',
          parent: d.parent,
          type: d.type,
          results: [{ request: r.request, pool: r.pool, device: d }],
        });
    }
    const planned: Omit<Creation, 'uuid'>[] = [...mdevs];
    if (queues.length > 0) {
      const adapters = [...new Set(queues.map((q) => q.device.adapter!))].sort((a, b) => a - b);
      const domains = [...new Set(queues.map((q) => q.device.domain!))].sort((a, b) => a - b);
      const have = new Set(queues.map((q) => apqnName(q.device.adapter!, q.device.domain!)));
      const missing: string[] = [];
      for (const a of adapters)
        for (const d of domains) if (!have.has(apqnName(a, d))) missing.push(apqnName(a, d));
      if (missing.length > 0) {
        throw new ClaimError(
          'not-a-matrix',
          `the queues allocated to ResourceClaim ${key.namespace}/${key.name} (${[...have].sort().join(', ')}) do not form a matrix: ` +
            `a matrix device holds every adapter × domain, so it would also take ${missing.join(', ')}, which the claim was not given; ` +
            `ask for queues of one adapter or one domain (a matchAttribute constraint on adapter or domain)`,
          { missing: missing.join(',') },
        );
      }
      planned.push({
        kind: 'matrix',
        parent: queues[0]!.device.parent,
        type: queues[0]!.device.type,
        results: queues,
        adapters,
        domains,
      });
    }
    return planned.map((c, i) => ({
      ...c,
      uuid:
        i === 0
          ? key.uid.toLowerCase()
          : nameUuid(
              key.uid,
              c.kind === 'matrix' ? 'matrix' : `${c.results[0]!.pool}/${c.results[0]!.device.name}`,
            ),
    }));
  }

  /** Would these devices fit on the host as it is now? Throws the reason when not. */
  #check(key: ClaimKey, creations: readonly Creation[], view: HostView): void {
    const states = new Map<string, EngineCapacity>();
    const stateOf = (parent: string): EngineCapacity | undefined => {
      let s = states.get(parent);
      if (s === undefined) {
        const base = view.capacity.get(parent);
        if (base === undefined) return undefined;
        states.set(parent, (s = base.clone()));
      }
      return s;
    };
    for (const c of creations) {
      const st = stateOf(c.parent);
      if (st === undefined) {
        throw new ClaimError('parent-gone', `parent ${c.parent} is gone from this node`, {
          parent: c.parent,
        });
      }
      if (c.kind === 'matrix') {
        const refusals =
          st.checkMatrix?.({
            adapters: c.adapters ?? [],
            domains: c.domains ?? [],
            controlDomains: [],
          }) ?? [];
        if (refusals.length > 0) {
          throw new ClaimError(
            'matrix-refused',
            `ResourceClaim ${key.namespace}/${key.name} cannot have its matrix device here: ${refusals.map((r) => r.reason).join('; ')}`,
            { refusal: refusals[0]!.code },
          );
        }
      }
      const refusal = st.check(c.type);
      if (refusal !== undefined) {
        throw new ClaimError(
          'no-capacity',
          `ResourceClaim ${key.namespace}/${key.name} cannot be prepared here: ${this.#explain(view, st, c, refusal.code, refusal.reason)}`,
          { parent: c.parent, type: c.type, refusal: refusal.code },
        );
      }
      st.add(c.type);
    }
  }

  /** The reason in the words people use for it. */
  #explain(view: HostView, st: EngineCapacity, c: Creation, code: string, reason: string): string {
    if (code !== 'exclusive-type') return reason;
    const p = view.parents.find((x) => x.name === c.parent);
    const running = st.runningTypes().map((id) => p?.types.find((t) => t.id === id));
    const wanted = p?.types.find((t) => t.id === c.type);
    const fb = running.find((t) => t?.framebufferMb !== undefined)?.framebufferMb;
    const names = running.map((t) => t?.name ?? t?.id ?? '?').join(', ');
    return (
      `GPU ${c.parent} runs ${fb === undefined ? '' : `${sizeWords(fb)} profiles `}(${names}); ` +
      `${wanted?.name ?? c.type}${wanted?.framebufferMb === undefined ? '' : ` (${sizeWords(wanted.framebufferMb)})`} ` +
      `needs a GPU with no vGPUs of another type`
    );
  }

  #create(c: Creation): void {
    const { port } = this.options;
    createDevice(port, c.parent, c.type, c.uuid);
    if (c.kind !== 'matrix') return;
    try {
      changeMatrix(port, c.uuid, 'assign', { adapters: c.adapters, domains: c.domains });
    } catch (err) {
      // Pairs with the create above: the matrix is one step, all or nothing.
      try {
        removeDevice(port, c.uuid);
      } catch {
        // reported by the caller's undo
      }
      throw err;
    }
  }

  #exists(uuid: string, parent: string, type: string): boolean {
    const d = readActiveDevice(this.options.port, uuid);
    return d !== undefined && d.parent === parent && d.type === type;
  }

  #iommuGroup(uuid: string): string {
    const link = this.options.port.readlink(`${deviceDir(uuid)}/iommu_group`);
    const group = link.slice(link.lastIndexOf('/') + 1);
    if (!/^\d+$/.test(group))
      throw new ClaimError(
        'no-iommu-group',
        `device ${uuid} has IOMMU group ${JSON.stringify(group)}`,
        {
          uuid,
        },
      );
    return group;
  }

  // ---------------------------------------------------------------- unprepare

  async #unprepare(key: ClaimKey): Promise<void> {
    const { port, engine, driver } = this.options;
    const owner = claimOwner(driver, key.uid);
    const failures: string[] = [];
    const errnos = new Set<string>();
    await engine.withOwnership(owner, (r) => {
      const mine: OwnerEntry[] = r.entries().filter((e) => e.owner === owner);
      const gone: string[] = [];
      for (const e of [...mine].reverse()) {
        if (port.kind(deviceDir(e.uuid)) === null) {
          gone.push(e.uuid);
          continue;
        }
        try {
          removeDevice(port, e.uuid);
          gone.push(e.uuid);
        } catch (err) {
          const code = errnoCodeIn(err);
          if (code !== undefined) errnos.add(code);
          failures.push(
            code === 'EBUSY'
              ? `device ${e.uuid} is open (a VM still uses it): EBUSY`
              : `removing device ${e.uuid}: ${(err as Error).message}`,
          );
        }
      }
      r.forget(gone);
    });
    if (failures.length > 0) {
      this.options.changed?.();
      throw new ClaimError(
        'remove-failed',
        `unpreparing ResourceClaim ${key.namespace}/${key.name}: ${failures.join('; ')}`,
        errnos.size === 0 ? {} : { errno: [...errnos].join(',') },
      );
    }
    const cp = this.options.checkpoint.get(key.uid);
    this.options.cdi.remove(cp?.files ?? this.#filesOf(key));
    this.options.checkpoint.delete(key.uid);
    this.options.changed?.();
  }

  /** A claim's files when the checkpoint lost them: derived from its UID, namespace and name. */
  #filesOf(key: ClaimKey): string[] {
    const { cdi } = this.options;
    const files = [cdi.specPath('vfio', key.uid), cdi.specPath('metadata', key.uid)];
    const claimDir = nodePath.dirname(
      nodePath.dirname(
        cdi.metadataPath({ uid: key.uid, namespace: key.namespace, name: key.name }, 'x'),
      ),
    );
    try {
      for (const request of fs.readdirSync(claimDir))
        files.push(nodePath.join(claimDir, request, 'metadata.json'));
    } catch {
      // no metadata written
    }
    return files;
  }

  /**
   * After a restart: forget `creating` entries whose device never came
   * (the crash was before the create), so the record holds only devices
   * that exist or existed.
   */
  async recover(): Promise<void> {
    const { port, engine, driver } = this.options;
    await this.#serial(() =>
      engine.withOwnership(`dra:${driver}:recover`, (r) => {
        const stale = r
          .entries()
          .filter(
            (e) =>
              e.state === 'creating' &&
              e.owner.startsWith(`dra:${driver}:`) &&
              port.kind(deviceDir(e.uuid)) === null,
          )
          .map((e) => e.uuid);
        if (stale.length > 0)
          this.#log(`forgetting ${stale.length} device(s) a crash left uncreated`);
        r.forget(stale);
      }),
    );
  }
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

function resultOf(c: PreparedClaim): PrepareResult {
  return {
    devices: c.devices.map((d) => ({
      request: d.request,
      pool: d.pool,
      device: d.device,
      cdiDeviceIds: d.cdiDeviceIds,
    })),
  };
}

/**
 * A name-based UUID (RFC 4122 version 5: SHA-1 of the namespace UUID's
 * bytes and the name), lower case as sysfs prints UUIDs.
 */
export function nameUuid(namespace: string, name: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  const h = createHash('sha1').update(ns).update(name).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
