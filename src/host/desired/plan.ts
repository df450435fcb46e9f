/**
 * The plan: what applying a configuration would change on a host, item by
 * item, each with its reason. Pure: inventory, ownership record and
 * configuration in, plan out — the same input gives the same plan (UUIDs
 * of new devices are chosen when they are created, not here).
 *
 * How a plan is made:
 *  1. Each entry's selector picks parents; each request's constraints
 *     narrow them; a request no selected parent could ever satisfy (a type
 *     none of them has) is an error naming the file, line and field.
 *  2. Devices that already serve a request are claimed, this owner's first
 *     (and, with adopt, devices no one recorded), so matching devices and
 *     their UUIDs are kept: `keep`, or `modify` when the definition or a
 *     live attribute differs, `start` when only the definition exists,
 *     `adopt` for a foreign device taken over.
 *  3. This owner's devices no request claims are `stale`; with prune they
 *     are `remove`d (an open device is `blocked` instead), which frees
 *     their capacity for what follows.
 *  4. The rest is placed (./placement.ts) on the capacity models
 *     (./capacity.ts): `create`, or `blocked` with the reason.
 *  5. Devices on the selected parents that are someone else's are listed
 *     as `foreign` and left alone.
 */
import type { MdevAttribute, StartMode } from '../config-store.js';
import { capacityOf, typeTraits, type CapacityState, type MatrixShape } from './capacity.js';
import {
  globMatch,
  type ConfigEntry,
  type ConfigFile,
  type DeviceRequest,
  type HostConfig,
  type MatrixRequest,
  type ParentSelector,
} from './config.js';
import { DesiredError } from './errors.js';
import type { Inventory, InventoryDevice, InventoryParent } from './inventory.js';
import type { OwnerEntry } from './ownership.js';
import { explainShortfall, place, type PlacementCandidate } from './placement.js';

export type PlanAction =
  | 'forget'
  | 'remove'
  | 'stale'
  | 'modify'
  | 'start'
  | 'adopt'
  | 'keep'
  | 'create'
  | 'blocked'
  | 'foreign';

/** Order in which apply carries out actions (removals first: they free capacity). */
export const ACTION_ORDER: readonly PlanAction[] = [
  'forget',
  'remove',
  'modify',
  'start',
  'adopt',
  'create',
  'keep',
  'stale',
  'blocked',
  'foreign',
];

/** What a device should be: its definition's content. */
export interface DeviceSpec {
  readonly type: string;
  readonly start: StartMode;
  readonly attrs: readonly MdevAttribute[];
}

export interface PlanItem {
  readonly action: PlanAction;
  /** `vf-vgpu`: an NVIDIA SR-IOV vGPU (apply writes a VF's current_vgpu_type, not `create`). */
  readonly kind?: 'vf-vgpu';
  /** In words: why this action. */
  readonly reason: string;
  readonly uuid?: string;
  readonly parent?: string;
  readonly type?: string;
  /** The request it serves ("configs.default.entries[0].devices[1]"). */
  readonly field?: string;
  /** create, modify, start, adopt: the definition to write. */
  readonly spec?: DeviceSpec;
  /** modify: attributes to write to the running device now. */
  readonly live?: readonly MdevAttribute[];
  /** The definition must be (re)written. */
  readonly writeDefinition?: boolean;
  /** vfio-ap matrix devices: the matrix it holds (create) or should hold. */
  readonly matrix?: MatrixShape;
  /** foreign: its owner when mdevkit knows one. */
  readonly owner?: string;
  /** remove: whether it is active / defined now. */
  readonly active?: boolean;
  readonly defined?: boolean;
}

export interface Plan {
  readonly file: string;
  readonly config: string;
  readonly owner: string;
  readonly policy: 'pack' | 'spread';
  readonly prune: boolean;
  readonly adopt: boolean;
  /** In ACTION_ORDER, then by parent, type and UUID. */
  readonly items: readonly PlanItem[];
  readonly counts: Readonly<Record<PlanAction, number>>;
}

export interface PlanOptions {
  /** This plan's owner: "config:NAME". */
  readonly owner: string;
  readonly prune?: boolean;
  readonly adopt?: boolean;
  /** Parents taken out of placement (mdevkit drain). */
  readonly drained?: ReadonlySet<string>;
  /** Who holds a device open, when known; undefined: not open. */
  readonly inUse?: (uuid: string) => string | undefined;
}

const AGG = 'mdev/aggregation/value';

function selects(sel: ParentSelector, p: InventoryParent): boolean {
  if (sel.address !== undefined && !sel.address.some((g) => globMatch(g, p.name))) return false;
  if (sel.driver !== undefined && p.driver !== sel.driver) return false;
  if (
    sel.vendorDevice !== undefined &&
    (p.vendor !== sel.vendorDevice.vendor || p.device !== sel.vendorDevice.device)
  )
    return false;
  if (sel.numaNode !== undefined && (p.numaNode ?? -1) !== sel.numaNode) return false;
  return true;
}

function allowedBy(req: DeviceRequest, p: InventoryParent): boolean {
  if (req.numaNode !== undefined && (p.numaNode ?? -1) !== req.numaNode) return false;
  if (req.parents !== undefined && !req.parents.some((g) => globMatch(g, p.name))) return false;
  return true;
}

/** Types of `p` a request accepts, most preferred first. */
function acceptableTypes(
  req: DeviceRequest,
  p: InventoryParent,
  state: CapacityState | undefined,
): string[] {
  if (req.type !== undefined) {
    const t = p.types.find((x) => x.id === req.type) ?? p.types.find((x) => x.name === req.type);
    return t === undefined ? [] : [t.id];
  }
  const s = req.select!;
  const running = new Set(state?.runningTypes() ?? []);
  const ok = p.types
    .map((t) => ({ t, fb: typeTraits(t).framebufferMb }))
    .filter(({ t, fb }) => {
      if (s.minFramebufferMb !== undefined && (fb === undefined || fb < s.minFramebufferMb))
        return false;
      if (s.deviceApi !== undefined && t.deviceApi !== s.deviceApi) return false;
      if (s.name !== undefined && !globMatch(s.name, t.id) && !globMatch(s.name, t.name ?? ''))
        return false;
      return true;
    });
  ok.sort((a, b) => {
    const ra = running.has(a.t.id) ? 0 : 1;
    const rb = running.has(b.t.id) ? 0 : 1;
    if (ra !== rb) return ra - rb;
    const fa = a.fb ?? Infinity;
    const fb = b.fb ?? Infinity;
    if (fa !== fb) return fa - fb;
    return a.t.id < b.t.id ? -1 : 1;
  });
  return ok.map(({ t }) => t.id);
}

function desiredAttrs(req: DeviceRequest): MdevAttribute[] {
  const out: MdevAttribute[] = [];
  if (req.aggregation !== undefined) out.push({ name: AGG, value: String(req.aggregation) });
  for (const a of req.attrs) if (!(a.name === AGG && req.aggregation !== undefined)) out.push(a);
  return out;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** A matrix as mdevctl definition attributes, applied in order by `mdevctl start`. */
export function matrixAttrs(m: MatrixShape): MdevAttribute[] {
  return [
    ...m.adapters.map((a) => ({ name: 'assign_adapter', value: hex(a) })),
    ...m.domains.map((d) => ({ name: 'assign_domain', value: hex(d) })),
    ...m.controlDomains.map((d) => ({ name: 'assign_control_domain', value: hex(d) })),
  ];
}

/** The matrix a definition's assign_* attributes build. */
function matrixOfAttrs(attrs: readonly MdevAttribute[]): MatrixShape {
  const pick = (name: string): number[] =>
    [...new Set(attrs.filter((a) => a.name === name).map((a) => Number(a.value)))]
      .filter((n) => Number.isSafeInteger(n))
      .sort((x, y) => x - y);
  return {
    adapters: pick('assign_adapter'),
    domains: pick('assign_domain'),
    controlDomains: pick('assign_control_domain'),
  };
}

const sameList = (a: readonly number[], b: readonly number[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);
const sameMatrix = (a: MatrixShape, b: MatrixShape): boolean =>
  sameList(a.adapters, b.adapters) &&
  sameList(a.domains, b.domains) &&
  sameList(a.controlDomains, b.controlDomains);

const sameAttrs = (a: readonly MdevAttribute[], b: readonly MdevAttribute[]): boolean =>
  a.length === b.length && a.every((x, i) => x.name === b[i]!.name && x.value === b[i]!.value);

function describeAttrs(attrs: readonly MdevAttribute[]): string {
  return attrs.length === 0 ? 'none' : attrs.map((a) => `${a.name}=${a.value}`).join(', ');
}

interface Claim {
  readonly device: InventoryDevice;
  readonly mine: boolean;
}

/** Plan `config` against `inventory`. Throws DesiredError `request-impossible` for requests no parent can ever satisfy. */
export function computePlan(
  file: ConfigFile,
  config: HostConfig,
  inventory: Inventory,
  record: ReadonlyMap<string, OwnerEntry> | ((uuid: string) => OwnerEntry | undefined),
  options: PlanOptions,
): Plan {
  // Determinism does not rest on the caller: parents by name, devices by UUID.
  const byName = <T extends { name: string }>(a: T, b: T): number =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  inventory = {
    ...inventory,
    parents: [...inventory.parents].sort(byName),
    devices: [...inventory.devices].sort((a, b) =>
      a.uuid < b.uuid
        ? -1
        : a.uuid > b.uuid
          ? 1
          : a.parent < b.parent
            ? -1
            : a.parent > b.parent
              ? 1
              : 0,
    ),
  };
  const ownerOf =
    typeof record === 'function' ? record : (u: string): OwnerEntry | undefined => record.get(u);
  const owner = options.owner;
  const prune = options.prune === true;
  const adopt = options.adopt === true;
  const drained = options.drained ?? new Set<string>();
  const states = capacityOf(inventory);
  const items: PlanItem[] = [];
  const impossible = (field: string, message: string): never => {
    const at = file.locate(field);
    const where = at === undefined ? file.file : `${file.file}:${at.line}:${at.column}`;
    throw new DesiredError('request-impossible', `${where}: ${field}: ${message}`, {
      file: file.file,
      field,
      config: config.name,
      ...(at !== undefined && { line: at.line, column: at.column }),
    });
  };

  // Devices by who they belong to. A record entry counts only for the
  // device on the parent it names.
  const isMine = (d: InventoryDevice): boolean => {
    const e = ownerOf(d.uuid);
    return e !== undefined && e.owner === owner && e.parent === d.parent;
  };
  const recordedOwner = (d: InventoryDevice): string | undefined => {
    const e = ownerOf(d.uuid);
    return e !== undefined && e.parent === d.parent ? e.owner : undefined;
  };
  const claimed = new Set<InventoryDevice>();
  const matrixShapeOf = (d: InventoryDevice): MatrixShape => {
    const live = inventory.ap?.devices.find((m) => m.uuid === d.uuid);
    return d.active && live !== undefined ? live : matrixOfAttrs(d.attrs ?? []);
  };

  // ---- 1. requests, their candidates, and the static checks
  interface Prepared {
    readonly req: DeviceRequest;
    readonly entry: ConfigEntry;
    readonly parents: InventoryParent[];
  }
  const prepared: Prepared[] = [];
  const matrixReqs: { req: MatrixRequest; parent: InventoryParent | undefined }[] = [];
  const selectedParents = new Set<string>();
  for (const entry of config.entries) {
    const selected = inventory.parents.filter((p) => selects(entry.parents, p));
    for (const p of selected) selectedParents.add(p.name);
    if (selected.length === 0) {
      items.push({
        action: 'blocked',
        field: entry.field,
        reason: `${entry.name ?? entry.field} selects no parent on this host`,
      });
      continue;
    }
    for (const req of entry.devices) {
      const ps = selected.filter((p) => allowedBy(req, p));
      const typed = ps.filter((p) => acceptableTypes(req, p, states.get(p.name)).length > 0);
      if (typed.length === 0) {
        if (req.type !== undefined) {
          const have = [...new Set(selected.flatMap((p) => p.types.map((t) => t.id)))].sort();
          impossible(
            `${req.field}.type`,
            `no parent this entry selects has type ${JSON.stringify(req.type)}` +
              (ps.length < selected.length ? ' (within its constraints)' : '') +
              ` (types there: ${have.slice(0, 12).join(', ')}${have.length > 12 ? ', ...' : ''})`,
          );
        }
        impossible(
          `${req.field}.select`,
          'no type of the selected parents satisfies these constraints',
        );
      }
      if (req.aggregation !== undefined && req.aggregation > 1) {
        const aggregating = typed.some((p) =>
          p.types.some(
            (t) =>
              acceptableTypes(req, p, states.get(p.name)).includes(t.id) &&
              t.aggregation !== undefined,
          ),
        );
        if (!aggregating) {
          impossible(
            `${req.field}.aggregation`,
            `the requested type does not aggregate on any selected parent (no \`aggregation\` attribute)`,
          );
        }
      }
      prepared.push({ req, entry, parents: typed });
    }
    for (const req of entry.matrix) {
      const mp = selected.find((p) => p.types.some((t) => t.deviceApi === 'vfio-ap'));
      if (mp === undefined)
        impossible(req.field, 'no parent this entry selects makes vfio-ap matrix devices');
      matrixReqs.push({ req, parent: mp });
    }
  }

  // ---- 2. claim existing devices
  const pool = inventory.devices.filter((d) => {
    if (isMine(d)) return true;
    return adopt && recordedOwner(d) === undefined;
  });
  const byParent = new Map<string, InventoryDevice[]>();
  for (const d of pool) {
    let l = byParent.get(d.parent);
    if (l === undefined) byParent.set(d.parent, (l = []));
    l.push(d);
  }
  interface Claimed {
    readonly prep: Prepared;
    readonly claims: Claim[];
    readonly perParent: Map<string, number>;
  }
  const claimedByReq: Claimed[] = [];
  for (const prep of prepared) {
    const { req } = prep;
    const want = desiredAttrs(req);
    const candidates: Claim[] = [];
    for (const p of prep.parents) {
      const types = new Set(acceptableTypes(req, p, states.get(p.name)));
      for (const d of byParent.get(p.name) ?? []) {
        if (claimed.has(d) || !types.has(d.type)) continue;
        if ((req.aggregation ?? 1) !== d.aggregation && !isMine(d)) continue; // adopt only exact
        candidates.push({ device: d, mine: isMine(d) });
      }
    }
    // Keep this owner's devices first, then those a VM holds (they could
    // not be removed anyway), then those already as wanted, then running.
    const rank = (c: Claim): number =>
      (c.mine ? 0 : 8) +
      (c.device.active && options.inUse?.(c.device.uuid) !== undefined ? 0 : 4) +
      (c.device.attrs !== undefined && sameAttrs(c.device.attrs, want) ? 0 : 2) +
      (c.device.active ? 0 : 1);
    const ranked = candidates.map((c) => ({ c, r: rank(c) }));
    ranked.sort((a, b) => {
      if (a.r !== b.r) return a.r - b.r;
      return a.c.device.uuid < b.c.device.uuid ? -1 : a.c.device.uuid > b.c.device.uuid ? 1 : 0;
    });
    const perParent = new Map<string, number>();
    const claims: Claim[] = [];
    let total = 0;
    for (const { c } of ranked) {
      const onParent = perParent.get(c.device.parent) ?? 0;
      if (req.count !== 'fill') {
        if (req.per === 'parent' ? onParent >= req.count : total >= req.count) continue;
      }
      claimed.add(c.device);
      claims.push(c);
      perParent.set(c.device.parent, onParent + 1);
      total++;
    }
    claimedByReq.push({ prep, claims, perParent });
  }
  const matrixClaims = new Map<MatrixRequest, Claim>();
  for (const { req, parent } of matrixReqs) {
    if (parent === undefined) continue;
    const c = (byParent.get(parent.name) ?? [])
      .filter((d) => !claimed.has(d))
      .find((d) => sameMatrix(matrixShapeOf(d), req));
    if (c !== undefined) {
      claimed.add(c);
      matrixClaims.set(req, { device: c, mine: isMine(c) });
    }
  }

  // ---- 3. this owner's unclaimed devices: stale, or removed with prune
  for (const d of inventory.devices) {
    if (claimed.has(d) || !isMine(d)) continue;
    const base = {
      uuid: d.uuid,
      parent: d.parent,
      type: d.type,
      active: d.active,
      defined: d.defined,
    };
    if (!prune) {
      items.push({
        ...base,
        action: 'stale',
        reason: `no request of ${config.name} wants it any more: kept (apply --prune removes it)`,
      });
      continue;
    }
    const holder = d.active ? options.inUse?.(d.uuid) : undefined;
    if (holder !== undefined) {
      items.push({
        ...base,
        action: 'blocked',
        reason: `device ${d.uuid} is open (${holder}): not removed`,
      });
      continue;
    }
    items.push({
      ...base,
      action: 'remove',
      reason: `no request of ${config.name} wants it any more`,
    });
    if (d.active) {
      const st = states.get(d.parent);
      st?.remove(d.type, d.aggregation);
      st?.removeMatrix?.(d.uuid);
    }
  }

  // ---- claimed devices: keep, modify, start, adopt
  const affinity = new Map<string, Set<string>>();
  const serve = (
    c: Claim,
    field: string,
    spec: DeviceSpec,
    aggregation: number,
    matrix?: MatrixShape,
  ): void => {
    const d = c.device;
    const base = { uuid: d.uuid, parent: d.parent, type: d.type, field, spec };
    const differences: string[] = [];
    if (!d.defined) differences.push(`running but not defined: define it (start=${spec.start})`);
    else {
      if (d.start !== spec.start) differences.push(`start ${d.start} -> ${spec.start}`);
      if (!sameAttrs(d.attrs ?? [], spec.attrs))
        differences.push(
          `attributes ${describeAttrs(d.attrs ?? [])} -> ${describeAttrs(spec.attrs)}`,
        );
    }
    const writeDefinition = !d.defined || differences.length > 0;
    if (!d.active) {
      const st = states.get(d.parent);
      const refusal = st?.check(d.type, aggregation);
      if (refusal !== undefined) {
        items.push({
          ...base,
          action: 'blocked',
          reason: `defined, not running; cannot start: ${refusal.reason}`,
        });
        return;
      }
      st?.add(d.type, aggregation);
      if (matrix !== undefined) st?.addMatrix?.(d.uuid, matrix);
      items.push({
        ...base,
        action: c.mine ? 'start' : 'adopt',
        writeDefinition,
        reason: c.mine
          ? `defined, not running: start it${differences.length > 0 ? `; ${differences.join('; ')}` : ''}`
          : `foreign device matching ${field}: adopt and start it`,
      });
      return;
    }
    // Live attributes: the aggregation value (others apply at the next start).
    const live: MdevAttribute[] = [];
    if (aggregation !== d.aggregation) {
      const holder = options.inUse?.(d.uuid);
      if (holder !== undefined) {
        items.push({
          ...base,
          action: 'blocked',
          reason: `device ${d.uuid} is open (${holder}): aggregation ${d.aggregation} -> ${aggregation} must wait`,
        });
        return;
      }
      const st = states.get(d.parent);
      st?.remove(d.type, d.aggregation);
      const refusal = st?.check(d.type, aggregation);
      if (refusal !== undefined) {
        st?.add(d.type, d.aggregation);
        items.push({
          ...base,
          action: 'blocked',
          reason: `aggregation ${d.aggregation} -> ${aggregation} does not fit: ${refusal.reason}`,
        });
        return;
      }
      st?.add(d.type, aggregation);
      live.push({ name: AGG, value: String(aggregation) });
      differences.push(`aggregation ${d.aggregation} -> ${aggregation} (live)`);
    }
    if (!c.mine) {
      items.push({
        ...base,
        action: 'adopt',
        writeDefinition,
        live,
        reason: `foreign device matching ${field}: adopt it${differences.length > 0 ? `; ${differences.join('; ')}` : ''}`,
      });
      return;
    }
    if (differences.length > 0) {
      items.push({
        ...base,
        action: 'modify',
        writeDefinition,
        live,
        reason: differences.join('; '),
      });
      return;
    }
    items.push({
      action: 'keep',
      uuid: d.uuid,
      parent: d.parent,
      type: d.type,
      field,
      reason: `matches ${field}`,
    });
  };

  for (const { prep, claims } of claimedByReq) {
    const spec = (type: string): DeviceSpec => ({
      type,
      start: prep.req.start,
      attrs: desiredAttrs(prep.req),
    });
    for (const c of claims) {
      serve(c, prep.req.field, spec(c.device.type), prep.req.aggregation ?? 1);
      if (prep.req.antiAffinity !== undefined) {
        const s = affinity.get(prep.req.antiAffinity) ?? new Set<string>();
        s.add(c.device.parent);
        affinity.set(prep.req.antiAffinity, s);
      }
    }
  }
  for (const [req, c] of matrixClaims) {
    serve(c, req.field, { type: c.device.type, start: req.start, attrs: matrixAttrs(req) }, 1, req);
  }

  // ---- 4. place what is still missing
  const placementStates = states;
  const requests = claimedByReq.map(({ prep, claims, perParent }) => {
    const { req } = prep;
    const candidates: PlacementCandidate[] = prep.parents
      .filter((p) => !drained.has(p.name))
      .map((p) => ({
        parent: p.name,
        numaNode: p.numaNode,
        types: acceptableTypes(req, p, placementStates.get(p.name)),
        existing: perParent.get(p.name) ?? 0,
      }));
    const count =
      req.count === 'fill'
        ? 'fill'
        : req.per === 'parent'
          ? req.count
          : Math.max(0, req.count - claims.length);
    return {
      id: req.field,
      count,
      per: req.per,
      aggregation: req.aggregation ?? 1,
      ...(req.antiAffinity !== undefined && { antiAffinity: req.antiAffinity }),
      candidates,
    } as const;
  });
  const reqByField = new Map(prepared.map((p) => [p.req.field, p.req]));
  const placed = place(requests, { states: placementStates, policy: config.policy, affinity });
  // Thousands of creates share a few specs and reasons: one object each.
  const specs = new Map<string, { spec: DeviceSpec; reason: string }>();
  for (const a of placed.assignments) {
    const k = `${a.request}\0${a.type}`;
    let shared = specs.get(k);
    if (shared === undefined) {
      const req = reqByField.get(a.request)!;
      shared = {
        spec: { type: a.type, start: req.start, attrs: desiredAttrs(req) },
        reason: `wanted by ${a.request}`,
      };
      specs.set(k, shared);
    }
    items.push({
      action: 'create',
      parent: a.parent,
      type: a.type,
      field: a.request,
      spec: shared.spec,
      writeDefinition: true,
      reason: shared.reason,
    });
  }
  for (const s of placed.shortfalls) {
    const req = reqByField.get(s.request)!;
    const what = req.type ?? 'a device';
    items.push({
      action: 'blocked',
      field: s.request,
      ...(req.type !== undefined && { type: req.type }),
      reason: `${what}: ${explainShortfall(s)}`,
    });
  }

  // ---- matrix devices still missing
  let pending = 0;
  for (const { req, parent } of matrixReqs) {
    if (parent === undefined || matrixClaims.has(req)) continue;
    const st = states.get(parent.name);
    const type = parent.types.find((t) => t.deviceApi === 'vfio-ap')!.id;
    const refusals = st?.checkMatrix?.(req) ?? [];
    const typeRefusal = st?.check(type);
    if (typeRefusal !== undefined) refusals.push(typeRefusal);
    if (refusals.length > 0) {
      const shown = refusals.slice(0, 3).map((r) => r.reason);
      items.push({
        action: 'blocked',
        parent: parent.name,
        type,
        field: req.field,
        matrix: req,
        reason: `matrix device does not fit: ${shown.join('; ')}${refusals.length > 3 ? `; and ${refusals.length - 3} more` : ''}`,
      });
      continue;
    }
    st?.add(type);
    st?.addMatrix?.(`(new ${pending++})`, req);
    items.push({
      action: 'create',
      parent: parent.name,
      type,
      field: req.field,
      matrix: req,
      spec: { type, start: req.start, attrs: matrixAttrs(req) },
      writeDefinition: true,
      reason: `wanted by ${req.field}`,
    });
  }

  // ---- 5. foreign devices on the parents this configuration touches; dead record entries
  for (const d of inventory.devices) {
    if (claimed.has(d) || isMine(d) || !selectedParents.has(d.parent)) continue;
    const who = recordedOwner(d);
    items.push({
      action: 'foreign',
      uuid: d.uuid,
      parent: d.parent,
      type: d.type,
      ...(who !== undefined && { owner: who }),
      reason: `${who === undefined ? 'made by another tool (libvirt, mdevctl, ...)' : `owned by ${who}`}: left alone${adopt || who !== undefined ? '' : ' (apply --adopt takes over matching ones)'}`,
    });
  }
  const present = new Set(inventory.devices.map((d) => `${d.parent}/${d.uuid}`));
  if (typeof record !== 'function') {
    for (const e of record.values()) {
      if (e.owner !== owner || present.has(`${e.parent}/${e.uuid}`)) continue;
      items.push({
        action: 'forget',
        uuid: e.uuid,
        parent: e.parent,
        type: e.type,
        reason:
          e.state === 'creating'
            ? 'an interrupted create left no device: drop the record'
            : 'the device is gone: drop the record',
      });
    }
  }

  const rank = new Map(ACTION_ORDER.map((a, i) => [a, i]));
  const cmp = (x: string | undefined, y: string | undefined): number => {
    const a = x ?? '';
    const b = y ?? '';
    return a < b ? -1 : a > b ? 1 : 0;
  };
  // Stable (Array.prototype.sort is): equal items keep the order they were made in.
  const sorted = items.sort(
    (a, b) =>
      rank.get(a.action)! - rank.get(b.action)! ||
      cmp(a.parent, b.parent) ||
      cmp(a.type, b.type) ||
      cmp(a.uuid, b.uuid) ||
      cmp(a.field, b.field),
  );
  const counts = Object.fromEntries(ACTION_ORDER.map((a) => [a, 0])) as Record<PlanAction, number>;
  for (const i of sorted) counts[i.action]++;
  // Items on NVIDIA SR-IOV GPUs are carried out through their VFs.
  const vfGpus = new Set(inventory.parents.filter((p) => p.kind === 'vf-gpu').map((p) => p.name));
  return {
    file: file.file,
    config: config.name,
    owner,
    policy: config.policy,
    prune,
    adopt,
    items:
      vfGpus.size === 0
        ? sorted
        : sorted.map((i) =>
            i.parent !== undefined && vfGpus.has(i.parent) ? { ...i, kind: 'vf-vgpu' as const } : i,
          ),
    counts,
  };
}

/** Does applying this plan change anything? */
export function planChanges(plan: Plan): boolean {
  const c = plan.counts;
  return c.forget + c.remove + c.modify + c.start + c.adopt + c.create > 0;
}
