/** Running devices: start (create, then attributes in order), stop, and autostart of a parent. */
import type { SysfsPort } from '../../port/sysfs-port.js';
import type { Environment } from '../environment.js';
import { MDEV_BUS_DEVICES, MDEV_CLASS, checkAttributeName, deviceAttributePath } from '../paths.js';
import { probeActive, type SysfsPresence } from '../sysfs-model.js';
import { checkedNames, newUuid, uuidArg } from './args.js';
import {
  draft,
  freeze,
  invoke,
  isDefined,
  loadFromJson,
  loadFromSysfs,
  readJsonSource,
  toDraft,
  type Draft,
} from './draft.js';
import { AttributeWriteError, MdevError, describeError } from './errors.js';
import { definedCount, listDefinedDevices } from './listing.js';
import { existsInSysfs, isSysfsDir, parseI32, sysfsError } from './sysfs.js';
import { noHooks, type HostHooks, type JsonSource, type MdevDevice } from './types.js';

// ---------------------------------------------------------------- start / stop

export interface StartRequest {
  readonly uuid?: string | undefined;
  readonly parent?: string | undefined;
  readonly type?: string | undefined;
  /** Type, start mode and attributes from a JSON document instead of a definition. */
  readonly json?: JsonSource | undefined;
}

function resolveStart(env: Environment, req: StartRequest, hooks: HostHooks): Draft {
  if (req.json !== undefined) {
    const json = readJsonSource(req.json);
    if (req.type !== undefined) {
      throw new MdevError('CONFLICT', 'Device type cannot be specified separately from json file');
    }
    if (req.parent === undefined) {
      throw new MdevError('NO_PARENT', 'Parent device required to start device via json file');
    }
    const d = draft(req.uuid ?? newUuid());
    try {
      loadFromJson(d, req.parent, json, hooks);
    } catch (err) {
      throw new MdevError('INVALID_CONFIG', `Invalid device definition in "${req.json.name}"`, {
        cause: err,
      });
    }
    return d;
  }
  let d: Draft | undefined;
  if (req.uuid !== undefined) {
    const devs = listDefinedDevices(env, { uuid: req.uuid, parent: req.parent }, hooks);
    const n = definedCount(devs);
    if (n > 1) {
      throw new MdevError(
        'AMBIGUOUS',
        `Multiple definitions found for device ${req.uuid}. Please specify a parent.`,
      );
    }
    if (n === 1) {
      const def = [...devs.values()][0]![0]!;
      if (req.type !== undefined && req.type !== def.type) {
        throw new MdevError(
          'CONFLICT',
          `Device ${def.uuid} already exists on parent ${def.parent} with type ${def.type}`,
        );
      }
      d = toDraft(def);
    }
  }
  if (d === undefined) {
    d = draft(req.uuid ?? newUuid());
    d.parent = req.parent;
    d.type = req.type;
  }
  if (d.type !== undefined && d.parent === undefined) {
    throw new MdevError('UNDERSPECIFIED', "can't provide type without parent");
  }
  if (d.type === undefined || d.parent === undefined) {
    throw new MdevError('UNDERSPECIFIED', 'Device is insufficiently specified');
  }
  return d;
}

function findParentDir(port: SysfsPort, parent: string): string {
  const path = `${MDEV_CLASS}/${parent}`;
  if (!parent.includes('/') && isSysfsDir(port, path)) return path;
  let names: string[];
  try {
    names = port.list(MDEV_CLASS);
  } catch (err) {
    throw sysfsError(`Unable to read ${MDEV_CLASS}`, err);
  }
  const similar = names.find((n) => n.toLowerCase() === parent.toLowerCase());
  if (similar !== undefined) {
    throw new MdevError(
      'NO_PARENT',
      `Unable to find parent device '${parent}'. Did you mean '${similar}'?`,
    );
  }
  throw new MdevError('NO_PARENT', `Unable to find parent device '${parent}'`);
}

/** Write "1" to the device's remove file. */
function removeActive(port: SysfsPort, uuid: string): void {
  try {
    port.write(`${MDEV_BUS_DEVICES}/${uuid}/remove`, '1');
  } catch (err) {
    throw new MdevError('NOT_ACTIVE', `Error removing device ${uuid}`, { cause: err });
  }
}

/** Create the device, then write its attributes in order; undo on failure. */
function createAndConfigure(env: Environment, d: Draft): void {
  const port = env.port;
  const parent = d.parent!;
  const type = d.type!;
  // Refuse hostile attribute names before anything is written.
  for (const a of d.attrs) {
    try {
      checkAttributeName(a.name);
    } catch (err) {
      throw new MdevError(
        'INVALID_ATTRIBUTE',
        `Refusing attribute of mdev ${d.uuid}: ${(err as Error).message}`,
      );
    }
  }
  let existing: SysfsPresence | undefined;
  try {
    existing = probeActive(port, d.uuid);
  } catch {
    existing = undefined;
  }
  if (existing !== undefined) {
    if (existing.parent !== parent)
      throw new MdevError('ALREADY_ACTIVE', 'Device exists under different parent');
    if (existing.type !== type)
      throw new MdevError('ALREADY_ACTIVE', 'Device exists with different type');
    throw new MdevError('ALREADY_ACTIVE', 'Device already exists');
  }
  const parentDir = findParentDir(port, parent);
  const typesDir = `${parentDir}/mdev_supported_types`;
  if (!isSysfsDir(port, typesDir)) {
    throw new MdevError(
      'NO_PARENT',
      `Parent ${parent} is not currently registered for mdev support`,
    );
  }
  const typeDir = `${typesDir}/${type}`;
  if (type.includes('/') || type === '..' || type === '.' || !isSysfsDir(port, typeDir)) {
    throw new MdevError('NO_TYPE', `Parent ${parent} does not support mdev type ${type}`);
  }
  let availText: string;
  try {
    availText = port.read(`${typeDir}/available_instances`);
  } catch (err) {
    throw sysfsError(`Unable to read ${typeDir}/available_instances`, err);
  }
  if (parseI32(availText, `${typeDir}/available_instances`) === 0) {
    throw new MdevError('NO_INSTANCES', `No available instances of ${type} on ${parent}`);
  }
  try {
    port.write(`${typeDir}/create`, d.uuid);
  } catch (err) {
    throw new MdevError('SYSFS', `Failed to create mdev ${d.uuid}, type ${type} on ${parent}`, {
      cause: err,
    });
  }
  d.active = true;
  for (const a of d.attrs) {
    let file = `${MDEV_BUS_DEVICES}/${d.uuid}/${a.name}`;
    let reason: string | undefined;
    try {
      file = deviceAttributePath(port, d.uuid, a.name);
      if (!existsInSysfs(port, file)) reason = 'the device has no such attribute file';
      else port.write(file, a.value);
    } catch (err) {
      reason = describeError(err);
    }
    if (reason === undefined) continue;
    let removeError: unknown;
    try {
      removeActive(port, d.uuid);
      d.active = false;
    } catch (err) {
      removeError = (err as Error).cause ?? err;
    }
    throw new AttributeWriteError(d.uuid, parent, type, a.name, a.value, file, reason, removeError);
  }
}

/**
 * Start a device: a definition (by UUID, parent to disambiguate), a fully
 * specified transient device (parent + type), or a JSON document. Writes the
 * UUID to the type's `create`, then each attribute in order.
 */
export function startDevice(
  env: Environment,
  req: StartRequest,
  hooks: HostHooks = noHooks,
): MdevDevice & { readonly generatedUuid: boolean } {
  req = checkedNames(req);
  const d = resolveStart(env, req, hooks);
  invoke(env, 'start', d, hooks, () => createAndConfigure(env, d));
  return { ...freeze(d, isDefined(env, d)), generatedUuid: req.uuid === undefined };
}

/** Stop (remove) an active device. */
export function stopDevice(env: Environment, uuid: string, hooks: HostHooks = noHooks): void {
  uuid = uuidArg(uuid);
  const d = draft(uuid);
  loadFromSysfs(env.port, d);
  invoke(env, 'stop', d, hooks, () => {
    removeActive(env.port, uuid);
    d.active = false;
  });
}

export interface StartOutcome {
  readonly device: MdevDevice;
  /** Undefined when the device started. */
  readonly error?: unknown;
}

/**
 * Start every start=auto definition of `parent` (udev runs this when a
 * parent registers). One device failing does not stop the others.
 */
export function startParentDevices(
  env: Environment,
  parent: string,
  hooks: HostHooks = noHooks,
): StartOutcome[] {
  const devs = listDefinedDevices(env, { parent }, hooks);
  const outcomes: StartOutcome[] = [];
  for (const list of devs.values()) {
    for (const dev of list) {
      if (dev.start !== 'auto') continue;
      const d = toDraft(dev);
      try {
        invoke(env, 'start', d, hooks, () => createAndConfigure(env, d));
        outcomes.push({ device: freeze(d, true) });
      } catch (error) {
        outcomes.push({ device: dev, error });
      }
    }
  }
  return outcomes;
}
