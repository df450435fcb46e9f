import { ErrnoError } from '../../common/errno.js';
import { isUuid, newUuid } from '../../common/uuid.js';
import type { Environment } from '../environment.js';
import { shortTypeName, typeKey } from './catalogue.js';
import { typeSizeGb, vfGpuCapacity, whyNot, type VfGpuCapacity } from './capacity.js';
import { VfVgpuError, errnoText } from './errors.js';
import {
  findDefinition,
  listDefinitions,
  removeDefinition,
  writeDefinition,
  type ListHooks,
  type VfStartMode,
  type VfVgpuDefinition,
} from './store.js';
import {
  PCI_DEVICES,
  canonicalPciAddress,
  listVfGpus,
  readVfGpu,
  vfOf,
  withPlacements,
  type VfGpu,
  type VfSlot,
} from './sysfs.js';

/**
 * VF vGPUs as one inventory and their lifecycle: what sysfs shows (the
 * slots) joined with mdevkit's definitions, and the operations on them.
 *
 * Identity: a vGPU is its definition's UUID. A VF has none of its own and
 * its path is reused by one vGPU after another, so a VF holding a type that
 * no definition pinned to it names is "foreign" (made by someone else) and
 * is shown by its VF, never adopted. A definition is active while its VF
 * holds its type; a VF holding another type makes it "conflict".
 *
 * Writes go to `nvidia/current_vgpu_type` (then `nvidia/vgpu_params`); the
 * kernel's errno stays in each error's cause chain, and the refusals people
 * meet are said in words: the VFs not enabled, a size that does not fit,
 * the VF in use by a VM, the VF taken and by whom.
 */

export type VgpuState = 'active' | 'inactive' | 'conflict' | 'foreign';

/** One row of the inventory: a defined vGPU, or a VF holding a vGPU nobody defined. */
export interface VgpuEntry {
  /** The definition's UUID; undefined for a foreign vGPU. */
  readonly uuid: string | undefined;
  readonly gpu: string;
  readonly vf: number;
  /** The VF's address; undefined when the GPU's VFs are not enabled. */
  readonly vfAddress: string | undefined;
  /** The type defined (or, for a foreign vGPU, the one the VF holds). */
  readonly typeId: number;
  readonly typeName: string | undefined;
  /** What the VF holds now (0 for none; undefined when it does not exist). */
  readonly currentTypeId: number | undefined;
  readonly state: VgpuState;
  readonly defined: boolean;
  readonly start: VfStartMode | undefined;
  readonly params: string | undefined;
  readonly owner: string | undefined;
  readonly placement: number | undefined;
}

export interface VgpuInventory {
  readonly gpus: readonly VfGpu[];
  readonly capacity: readonly VfGpuCapacity[];
  readonly entries: readonly VgpuEntry[];
  readonly invalidDefinitions: readonly { readonly path: string; readonly message: string }[];
}

export interface InventoryOptions {
  readonly gpu?: string;
  /**
   * Read placement_id and vgpu_params of every VF holding a vGPU. Without
   * it, placements are read only for a GPU whose sizes mix (capacity needs
   * them there) and a defined vGPU's vgpu_params are its definition's.
   */
  readonly details?: boolean;
}

/** Names a type of a GPU: "L40S-12Q", falling back to a definition's name, then "nvidia-<id>". */
function typeNameOf(gpu: VfGpu | undefined, id: number, fallback?: string): string | undefined {
  return gpu?.typeNames.get(id) ?? fallback;
}

/** The slots of every GPU joined with the definitions. */
export function readVgpuInventory(env: Environment, options: InventoryOptions = {}): VgpuInventory {
  const invalid: { path: string; message: string }[] = [];
  const hooks: ListHooks = {
    invalid: (path, error) => invalid.push({ path, message: error.message }),
  };
  const gpus = listVfGpus(env.port, {
    details: options.details === true,
    ...(options.gpu !== undefined ? { gpu: options.gpu } : {}),
  }).map((g) => (sizesMix(g) ? withPlacements(env.port, g) : g));
  const defs = listDefinitions(env, options.gpu !== undefined ? { gpu: options.gpu } : {}, hooks);
  const byGpu = new Map(gpus.map((g) => [g.address, g]));
  const entries: VgpuEntry[] = [];
  const claimed = new Set<string>();
  for (const d of defs) {
    const gpu = byGpu.get(d.gpu);
    const slot = gpu?.vfs.find((v) => v.index === d.vf);
    const current = slot?.typeId;
    const mine = current === d.typeId && !claimed.has(`${d.gpu}/${d.vf}`);
    if (mine) claimed.add(`${d.gpu}/${d.vf}`);
    entries.push({
      uuid: d.uuid,
      gpu: d.gpu,
      vf: d.vf,
      vfAddress: slot?.address,
      typeId: d.typeId,
      typeName: typeNameOf(gpu, d.typeId, d.typeName),
      currentTypeId: current,
      state: mine ? 'active' : current !== undefined && current !== 0 ? 'conflict' : 'inactive',
      defined: true,
      start: d.start,
      params: mine ? (slot?.params ?? d.params) : d.params,
      owner: d.owner,
      placement: mine ? slot?.placement : undefined,
    });
  }
  for (const gpu of gpus) {
    for (const slot of gpu.vfs) {
      if (slot.typeId === 0 || claimed.has(`${gpu.address}/${slot.index}`)) continue;
      entries.push({
        uuid: undefined,
        gpu: gpu.address,
        vf: slot.index,
        vfAddress: slot.address,
        typeId: slot.typeId,
        typeName: typeNameOf(gpu, slot.typeId),
        currentTypeId: slot.typeId,
        state: 'foreign',
        defined: false,
        start: undefined,
        params: slot.params,
        owner: undefined,
        placement: slot.placement,
      });
    }
  }
  entries.sort((a, b) => (a.gpu !== b.gpu ? (a.gpu < b.gpu ? -1 : 1) : a.vf - b.vf));
  return { gpus, capacity: gpus.map(vfGpuCapacity), entries, invalidDefinitions: invalid };
}

/** Does the GPU hold, or offer now, more than one framebuffer size? */
function sizesMix(gpu: VfGpu): boolean {
  const sizes = new Set<number>();
  for (const v of gpu.vfs) if (v.typeId !== 0) sizes.add(typeSizeGb(gpu, v.typeId) ?? -1);
  if (sizes.size > 1) return true;
  if (sizes.size === 0) return false;
  return (gpu.creatableNow ?? []).some((id) => !sizes.has(typeSizeGb(gpu, id) ?? -1));
}

// ---- requests --------------------------------------------------------------------

/** An owner name: "KIND:NAME" on one line. */
export function checkOwner(owner: string): string {
  if (!/^[a-z]+:[A-Za-z0-9@._:-]{1,128}$/.test(owner)) {
    throw new VfVgpuError(
      'invalid-argument',
      `invalid owner ${JSON.stringify(owner)}: expected KIND:NAME such as user:alice or config:default`,
      { context: { owner } },
    );
  }
  return owner;
}

/** vgpu_params: key=value[,key=value...] or empty. */
export function checkParams(params: string): string {
  const p = params.trim();
  if (
    p !== '' &&
    !/^[a-z][a-z0-9_]*=[A-Za-z0-9_.:-]+(,[a-z][a-z0-9_]*=[A-Za-z0-9_.:-]+)*$/.test(p)
  ) {
    throw new VfVgpuError(
      'invalid-argument',
      `invalid vgpu_params ${JSON.stringify(params)}: expected key=value[,key=value...]`,
      { context: { value: params } },
    );
  }
  return p;
}

/** The GPU at `address` (PF address); the errors people meet when it is not usable. */
export function requireGpu(env: Environment, address: string, details = true): VfGpu {
  const a = canonicalPciAddress(address);
  if (a === undefined) {
    throw new VfVgpuError('invalid-argument', `'${address}' is not a PCI address (0000:41:00.0)`);
  }
  const gpu = readVfGpu(env.port, a, { details });
  if (gpu === undefined) {
    const vf = vfOf(env.port, a);
    throw new VfVgpuError(
      'not-vgpu-gpu',
      vf !== undefined
        ? `${a} is VF ${vf.index} of ${vf.gpu}; name the GPU (${vf.gpu}) or use --vf`
        : `${a} is not an NVIDIA GPU with SR-IOV vGPUs (no such GPU, or it uses the mdev bus)`,
      { context: { gpu: a } },
    );
  }
  if (gpu.numVfs === 0 || gpu.vfs.length === 0) {
    throw new VfVgpuError('vf-not-enabled', `VFs are not enabled on ${a}: run sriov-manage -e`, {
      context: { gpu: a },
    });
  }
  return gpu;
}

/** A type as people write it: 1153, "nvidia-1153", "L40S-12Q", "NVIDIA L40S-12Q". */
export function resolveType(
  gpu: VfGpu,
  type: string | number,
): { id: number; name: string | undefined } {
  const text = String(type).trim();
  const m = /^(?:nvidia-)?(\d+)$/.exec(text);
  if (m !== null) {
    const id = Number(m[1]);
    const name = gpu.typeNames.get(id);
    if (name === undefined && !(gpu.creatableNow ?? []).includes(id)) {
      throw new VfVgpuError('unknown-vgpu-type', `${gpu.address} offers no vGPU type ${id}`, {
        context: { gpu: gpu.address, type: id },
      });
    }
    return { id, name };
  }
  const want = text.toLowerCase();
  for (const [id, name] of gpu.typeNames) {
    if (name.toLowerCase() === want || shortTypeName(name).toLowerCase() === want) {
      return { id, name };
    }
  }
  const known = [...gpu.typeNames.values()].map(shortTypeName).slice(0, 6).join(', ');
  throw new VfVgpuError(
    'unknown-vgpu-type',
    `${gpu.address} offers no vGPU type '${text}'${known === '' ? '' : ` (it has ${known}, ...)`}`,
    { context: { gpu: gpu.address, type: text } },
  );
}

function slotOf(gpu: VfGpu, index: number): VfSlot {
  const slot = gpu.vfs.find((v) => v.index === index);
  if (slot === undefined) {
    throw new VfVgpuError(
      'no-such-vf',
      `${gpu.address} has no VF ${index} (it has ${gpu.vfs.length}: 0..${gpu.vfs.length - 1})`,
      { context: { gpu: gpu.address, value: index } },
    );
  }
  return slot;
}

/** Who holds a VF, in words: a definition, or a vGPU made outside mdevkit. */
function holderOf(
  env: Environment,
  gpu: VfGpu,
  slot: VfSlot,
  except?: string,
): { text: string; uuid: string | undefined } {
  const def = listDefinitions(env, { gpu: gpu.address }).find(
    (d) => d.vf === slot.index && d.typeId === slot.typeId && d.uuid !== except,
  );
  const type = gpu.typeNames.get(slot.typeId);
  const typeText = type === undefined ? `type ${slot.typeId}` : shortTypeName(type);
  if (def !== undefined) {
    return { text: `vGPU ${def.uuid} (${typeText}, owner ${def.owner})`, uuid: def.uuid };
  }
  return { text: `a ${typeText} vGPU that mdevkit did not make`, uuid: undefined };
}

// ---- create, start, stop, remove ------------------------------------------------

export interface CreateRequest {
  readonly gpu: string;
  readonly type: string | number;
  /** The VF (index); placed on the first free one when absent. */
  readonly vf?: number;
  readonly params?: string;
  readonly owner: string;
  readonly start?: VfStartMode;
  readonly uuid?: string;
  /** Only define it (the vGPU is made by `start` or at autostart). */
  readonly defineOnly?: boolean;
}

export interface CreateResult {
  readonly definition: VfVgpuDefinition;
  readonly vfAddress: string;
  readonly started: boolean;
}

/**
 * Define a vGPU on a chosen VF or a placed one, and (unless defineOnly)
 * make it. A failed start leaves no definition behind.
 */
export function createVgpu(env: Environment, req: CreateRequest): CreateResult {
  const owner = checkOwner(req.owner);
  const params = checkParams(req.params ?? '');
  const uuid = (req.uuid ?? newUuid()).toLowerCase();
  if (!isUuid(uuid))
    throw new VfVgpuError('invalid-argument', `invalid UUID ${JSON.stringify(req.uuid)}`);
  if (findDefinition(env, uuid) !== undefined) {
    throw new VfVgpuError('already-defined', `a VF vGPU ${uuid} is defined already`, {
      context: { uuid },
    });
  }
  const gpu = requireGpu(env, req.gpu);
  const type = resolveType(gpu, req.type);
  const defs = listDefinitions(env, { gpu: gpu.address });
  const pinned = new Map(defs.map((d) => [d.vf, d]));
  let slot: VfSlot;
  if (req.vf !== undefined) {
    slot = slotOf(gpu, req.vf);
    const other = pinned.get(slot.index);
    if (other !== undefined) {
      throw new VfVgpuError(
        'vf-pinned',
        `VF ${slot.index} (${slot.address}) of ${gpu.address} is defined for vGPU ${other.uuid} (owner ${other.owner})`,
        { context: { gpu: gpu.address, vf: slot.address, holder: other.uuid } },
      );
    }
    if (slot.typeId !== 0 && !req.defineOnly) {
      throw new VfVgpuError(
        'vf-taken',
        `VF ${slot.address} is taken: it holds ${holderOf(env, gpu, slot).text}`,
        { context: { gpu: gpu.address, vf: slot.address } },
      );
    }
  } else {
    const free = gpu.vfs.find((v) => v.typeId === 0 && !pinned.has(v.index));
    if (free === undefined) {
      throw new VfVgpuError(
        'no-free-vf',
        `${shortTypeName(type.name ?? typeKey(type.id))} does not fit: every VF of ${gpu.address} holds a vGPU or is defined for one`,
        { context: { gpu: gpu.address, type: type.id } },
      );
    }
    slot = free;
  }
  if (!req.defineOnly) refuseIfItDoesNotFit(gpu, type.id);
  const definition: VfVgpuDefinition = {
    uuid,
    gpu: gpu.address,
    vf: slot.index,
    typeId: type.id,
    typeName: type.name,
    start: req.start ?? 'manual',
    params,
    owner,
  };
  writeDefinition(env, definition);
  if (req.defineOnly) return { definition, vfAddress: slot.address, started: false };
  try {
    startDefinition(env, definition, gpu);
  } catch (err) {
    removeDefinition(env, definition); // pairs with the write above
    throw err;
  }
  return { definition, vfAddress: slot.address, started: true };
}

function refuseIfItDoesNotFit(gpu: VfGpu, typeId: number): void {
  const why = whyNot(vfGpuCapacity(gpu), typeId);
  if (why === undefined) return;
  const cap = vfGpuCapacity(gpu);
  throw new VfVgpuError(why.code, why.message, {
    context: {
      gpu: gpu.address,
      type: typeKey(typeId),
      value: why.code === 'vgpu-size-mismatch' ? cap.runningSizeGb : undefined,
    },
  });
}

function requireDefinition(env: Environment, uuid: string): VfVgpuDefinition {
  if (!isUuid(uuid))
    throw new VfVgpuError('invalid-argument', `invalid UUID ${JSON.stringify(uuid)}`);
  const def = findDefinition(env, uuid);
  if (def === undefined) {
    throw new VfVgpuError('not-defined', `VF vGPU ${uuid.toLowerCase()} is not defined`, {
      context: { uuid },
    });
  }
  return def;
}

/** Make a defined vGPU: write its type to its VF, then its vgpu_params. */
export function startVgpu(
  env: Environment,
  uuid: string,
): { definition: VfVgpuDefinition; vfAddress: string } {
  const def = requireDefinition(env, uuid);
  const gpu = requireGpu(env, def.gpu);
  const slot = startDefinition(env, def, gpu);
  return { definition: def, vfAddress: slot.address };
}

function startDefinition(env: Environment, def: VfVgpuDefinition, gpu: VfGpu): VfSlot {
  const slot = slotOf(gpu, def.vf);
  const label = shortTypeName(def.typeName ?? gpu.typeNames.get(def.typeId) ?? typeKey(def.typeId));
  const ctx = { gpu: gpu.address, vf: slot.address, uuid: def.uuid, type: def.typeId };
  if (slot.typeId === def.typeId) {
    throw new VfVgpuError(
      'already-active',
      `vGPU ${def.uuid} (${label}) exists already on ${slot.address}`,
      {
        context: ctx,
      },
    );
  }
  if (slot.typeId !== 0) {
    const holder = holderOf(env, gpu, slot, def.uuid);
    throw new VfVgpuError(
      'vf-taken',
      `cannot make vGPU ${def.uuid} (${label}): VF ${slot.address} is taken by ${holder.text}`,
      { context: { ...ctx, holder: holder.uuid ?? `vf:${slot.address}` } },
    );
  }
  const typeFile = `${PCI_DEVICES}/${slot.address}/nvidia/current_vgpu_type`;
  try {
    env.port.write(typeFile, `${def.typeId}\n`);
  } catch (err) {
    throw explainWrite(env, err, gpu, def, slot, label, 'make');
  }
  if (def.params !== '') {
    const paramsFile = `${PCI_DEVICES}/${slot.address}/nvidia/vgpu_params`;
    try {
      env.port.write(paramsFile, `${def.params}\n`);
    } catch (err) {
      // Undo: a vGPU without the parameters it was defined with is not this vGPU.
      let undo = '';
      try {
        env.port.write(typeFile, '0\n');
      } catch (e) {
        undo = `; destroying it again failed too (${e instanceof ErrnoError ? errnoText(e.code) : String(e)})`;
      }
      throw new VfVgpuError(
        'invalid-argument',
        `vGPU ${def.uuid} on ${slot.address}: writing vgpu_params ${JSON.stringify(def.params)} failed: ${err instanceof ErrnoError ? errnoText(err.code) : String(err)}${undo === '' ? '; the vGPU was destroyed again' : undo}`,
        { cause: err, context: { ...ctx, file: paramsFile, value: def.params } },
      );
    }
  }
  return slot;
}

/** A refused write in words; the kernel's error stays the cause. */
function explainWrite(
  env: Environment,
  err: unknown,
  gpu: VfGpu,
  def: VfVgpuDefinition,
  slot: VfSlot,
  label: string,
  what: 'make' | 'destroy' | 'change',
): VfVgpuError {
  if (!(err instanceof ErrnoError)) throw err;
  const ctx = { gpu: gpu.address, vf: slot.address, uuid: def.uuid, type: def.typeId };
  if (err.code === 'EBUSY') {
    return new VfVgpuError(
      'vf-in-use',
      `cannot ${what} vGPU ${def.uuid} (${label}): the VF ${slot.address} is in use by a VM`,
      { cause: err, context: ctx },
    );
  }
  if (err.code === 'ENOENT' || err.code === 'ENODEV') {
    return new VfVgpuError(
      'vf-not-enabled',
      `VFs are not enabled on ${gpu.address}: run sriov-manage -e`,
      {
        cause: err,
        context: ctx,
      },
    );
  }
  if (what === 'make' && err.code === 'EIO') {
    // Read again: someone may have taken the room since we looked.
    const now = readVfGpu(env.port, gpu.address, { details: true });
    const why = now === undefined ? undefined : whyNot(vfGpuCapacity(now), def.typeId);
    if (why !== undefined) {
      return new VfVgpuError(why.code, why.message, { cause: err, context: ctx });
    }
  }
  return new VfVgpuError(
    'vgpu-refused',
    `cannot ${what} vGPU ${def.uuid} (${label}) on ${slot.address}: ${errnoText(err.code)}${err.detail === undefined ? '' : ` (${err.detail})`}`,
    { cause: err, context: ctx },
  );
}

/** Destroy a defined vGPU (write 0); the definition stays. */
export function stopVgpu(
  env: Environment,
  uuid: string,
): { definition: VfVgpuDefinition; vfAddress: string } {
  const def = requireDefinition(env, uuid);
  const gpu = requireGpu(env, def.gpu, false);
  const slot = slotOf(gpu, def.vf);
  const label = shortTypeName(def.typeName ?? gpu.typeNames.get(def.typeId) ?? typeKey(def.typeId));
  if (slot.typeId !== def.typeId) {
    throw new VfVgpuError('not-active', `vGPU ${def.uuid} (${label}) does not exist now`, {
      context: { gpu: gpu.address, vf: slot.address, uuid: def.uuid },
    });
  }
  try {
    env.port.write(`${PCI_DEVICES}/${slot.address}/nvidia/current_vgpu_type`, '0\n');
  } catch (err) {
    throw explainWrite(env, err, gpu, def, slot, label, 'destroy');
  }
  return { definition: def, vfAddress: slot.address };
}

export interface RemoveOptions {
  /** Who asks: another owner's vGPU (or a foreign one) needs `force`. */
  readonly as?: string;
  readonly force?: boolean;
}

export interface RemoveResult {
  readonly uuid: string | undefined;
  readonly gpu: string;
  readonly vfAddress: string | undefined;
  /** The vGPU was destroyed (it existed). */
  readonly destroyed: boolean;
  /** A definition was removed. */
  readonly undefined: boolean;
}

/**
 * Remove a vGPU: by UUID (destroyed if it exists, then undefined), or by
 * its VF's address (a foreign vGPU: destroyed, only with `force`). Another
 * owner's vGPU is refused unless forced.
 */
export function removeVgpu(
  env: Environment,
  target: string,
  opts: RemoveOptions = {},
): RemoveResult {
  const address = canonicalPciAddress(target);
  if (address !== undefined) return removeByVf(env, address, opts);
  const def = requireDefinition(env, target);
  refuseOtherOwner(def, opts);
  let destroyed = false;
  const gpu = readVfGpu(env.port, def.gpu);
  const slot = gpu?.vfs.find((v) => v.index === def.vf);
  if (gpu !== undefined && slot !== undefined && slot.typeId === def.typeId) {
    stopVgpu(env, def.uuid);
    destroyed = true;
  }
  removeDefinition(env, def);
  return { uuid: def.uuid, gpu: def.gpu, vfAddress: slot?.address, destroyed, undefined: true };
}

function refuseOtherOwner(def: VfVgpuDefinition, opts: RemoveOptions): void {
  if (opts.force === true || opts.as === undefined || opts.as === def.owner) return;
  throw new VfVgpuError(
    'foreign-vgpu',
    `vGPU ${def.uuid} belongs to ${def.owner}, not ${opts.as}; use --force to remove it anyway`,
    { context: { uuid: def.uuid, owner: def.owner, gpu: def.gpu } },
  );
}

function removeByVf(env: Environment, address: string, opts: RemoveOptions): RemoveResult {
  const where = vfOf(env.port, address);
  if (where === undefined) {
    throw new VfVgpuError('no-such-vf', `${address} is not a VF of an NVIDIA vGPU GPU`, {
      context: { vf: address },
    });
  }
  const gpu = requireGpu(env, where.gpu, false);
  const slot = slotOf(gpu, where.index);
  const def = listDefinitions(env, { gpu: gpu.address }).find((d) => d.vf === slot.index);
  if (def !== undefined && (slot.typeId === 0 || slot.typeId === def.typeId)) {
    return removeVgpu(env, def.uuid, opts);
  }
  if (slot.typeId === 0) {
    throw new VfVgpuError('not-active', `VF ${address} holds no vGPU`, {
      context: { vf: address },
    });
  }
  if (opts.force !== true) {
    throw new VfVgpuError(
      'foreign-vgpu',
      `VF ${address} holds ${holderOf(env, gpu, slot).text}; use --force to destroy it`,
      { context: { gpu: gpu.address, vf: address } },
    );
  }
  try {
    env.port.write(`${PCI_DEVICES}/${address}/nvidia/current_vgpu_type`, '0\n');
  } catch (err) {
    const label = shortTypeName(gpu.typeNames.get(slot.typeId) ?? typeKey(slot.typeId));
    const pseudo: VfVgpuDefinition = {
      uuid: `vf:${address}`,
      gpu: gpu.address,
      vf: slot.index,
      typeId: slot.typeId,
      typeName: undefined,
      start: 'manual',
      params: '',
      owner: '',
    };
    throw explainWrite(env, err, gpu, pseudo, slot, label, 'destroy');
  }
  return {
    uuid: undefined,
    gpu: gpu.address,
    vfAddress: address,
    destroyed: true,
    undefined: false,
  };
}

// ---- autostart -------------------------------------------------------------------

export interface VfAutostartRun {
  readonly gpu: string;
  readonly started: readonly VfVgpuDefinition[];
  readonly failed: readonly { readonly definition: VfVgpuDefinition; readonly error: unknown }[];
}

/**
 * Make every start=auto vGPU of a GPU that does not exist yet: what runs
 * once the GPU's VFs are enabled (at boot, after sriov-manage -e). A vGPU
 * that exists already counts as neither started nor failed.
 */
export function autostartGpu(env: Environment, gpuAddress: string): VfAutostartRun {
  const defs = listDefinitions(env, { gpu: gpuAddress }).filter((d) => d.start === 'auto');
  const started: VfVgpuDefinition[] = [];
  const failed: { definition: VfVgpuDefinition; error: unknown }[] = [];
  if (defs.length === 0) return { gpu: gpuAddress, started, failed };
  let gpu: VfGpu;
  try {
    gpu = requireGpu(env, gpuAddress, false);
  } catch (err) {
    return {
      gpu: gpuAddress,
      started,
      failed: defs.map((definition) => ({ definition, error: err })),
    };
  }
  for (const def of defs) {
    try {
      startDefinition(env, def, gpu);
      started.push(def);
    } catch (err) {
      if (err instanceof VfVgpuError && err.code === 'already-active') continue;
      failed.push({ definition: def, error: err });
    }
  }
  return { gpu: gpuAddress, started, failed };
}

/** The definition pinned to a VF (by its address), if any. */
export function definitionOfVf(env: Environment, vfAddress: string): VfVgpuDefinition | undefined {
  const where = vfOf(env.port, vfAddress);
  if (where === undefined) return undefined;
  return listDefinitions(env, { gpu: where.gpu }).find((d) => d.vf === where.index);
}

export { findDefinition, listDefinitions, type VfVgpuDefinition } from './store.js';

// ---- changes of a definition ----------------------------------------------------

export interface ModifyRequest {
  readonly start?: VfStartMode;
  /** New vgpu_params ('' clears): stored, and written to the vGPU when it exists. */
  readonly params?: string;
}

/**
 * Change a definition's start mode or vgpu_params. New parameters go to
 * the running vGPU too (the driver applies them when a VM next opens it;
 * EBUSY while one has it open — then nothing changes); then the
 * definition is rewritten.
 */
export function modifyVgpu(env: Environment, uuid: string, req: ModifyRequest): VfVgpuDefinition {
  const def = requireDefinition(env, uuid);
  const params = req.params === undefined ? def.params : checkParams(req.params);
  if (params !== def.params) {
    const gpu = readVfGpu(env.port, def.gpu);
    const slot = gpu?.vfs.find((v) => v.index === def.vf);
    if (gpu !== undefined && slot !== undefined && slot.typeId === def.typeId) {
      const file = `${PCI_DEVICES}/${slot.address}/nvidia/vgpu_params`;
      try {
        env.port.write(file, params === '' ? ' \n' : `${params}\n`);
      } catch (err) {
        const label = shortTypeName(def.typeName ?? typeKey(def.typeId));
        throw explainWrite(env, err, gpu, def, slot, label, 'change');
      }
    }
  }
  const next: VfVgpuDefinition = { ...def, start: req.start ?? def.start, params };
  writeDefinition(env, next);
  return next;
}
