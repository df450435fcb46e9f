/** Running devices: start (create, then attributes in order), stop, and autostart of a parent. */
import type { SysfsPort } from '../../port/sysfs-port.js';
import type { CalloutContext } from '../callouts.js';
import type { Environment } from '../environment.js';
import { MDEV_BUS_DEVICES, MDEV_CLASS, checkAttribute, deviceAttributePath } from '../paths.js';
import type { SysfsPresence } from '../sysfs-model.js';
import { runAsync, runSync, type Steps } from '../script-runner.js';
import { checkedNames, newUuid, uuidArg } from './args.js';
import {
  applySysfs,
  calloutContext,
  checkRequestAttributes,
  draft,
  freeze,
  invoke,
  isDefined,
  loadFromJson,
  readJsonSource,
  runnerOptions,
  sysfsState,
  toDraft,
  type Draft,
} from './draft.js';
import { MdevError, codeOf } from '../errors.js';
import { AttributeWriteError, osErrorText, sysfsLookupError } from './errors.js';
import { definedCount, definitionsInDirectoryOrder, listDefinedDevices } from './listing.js';
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
      throw new MdevError(
        'invalid-argument',
        'Device type cannot be specified separately from json file',
      );
    }
    if (req.parent === undefined) {
      throw new MdevError(
        'invalid-argument',
        'Parent device required to start device via json file',
      );
    }
    const d = draft(req.uuid ?? newUuid());
    try {
      loadFromJson(d, req.parent, json, hooks);
    } catch (err) {
      throw new MdevError(
        codeOf(err) === 'control-character' ? 'control-character' : 'invalid-config',
        `Invalid device definition in "${req.json.name}"`,
        { cause: err, context: { path: req.json.name, uuid: d.uuid, parent: req.parent } },
      );
    }
    checkRequestAttributes(d, d.attrs);
    return d;
  }
  let d: Draft | undefined;
  if (req.uuid !== undefined) {
    const devs = listDefinedDevices(env, { uuid: req.uuid, parent: req.parent }, hooks);
    const n = definedCount(devs);
    if (n > 1) {
      throw new MdevError(
        'ambiguous',
        `Multiple definitions found for device ${req.uuid}. Please specify a parent.`,
        { context: { uuid: req.uuid } },
      );
    }
    if (n === 1) {
      const def = [...devs.values()][0]![0]!;
      if (req.type !== undefined && req.type !== def.type) {
        throw new MdevError(
          'type-mismatch',
          `Device ${def.uuid} already exists on parent ${def.parent} with type ${def.type}`,
          { context: { uuid: def.uuid, parent: def.parent, type: def.type } },
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
  const context = { uuid: d.uuid, parent: d.parent, type: d.type };
  if (d.type !== undefined && d.parent === undefined) {
    throw new MdevError('invalid-argument', "can't provide type without parent", { context });
  }
  if (d.type === undefined || d.parent === undefined) {
    throw new MdevError('invalid-argument', 'Device is insufficiently specified', { context });
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
      'parent-missing',
      `Unable to find parent device '${parent}'. Did you mean '${similar}'?`,
      { context: { parent } },
    );
  }
  throw new MdevError('parent-missing', `Unable to find parent device '${parent}'`, {
    context: { parent },
  });
}

/** Write "1" to the device's remove file. */
function removeActive(port: SysfsPort, uuid: string): void {
  try {
    port.write(`${MDEV_BUS_DEVICES}/${uuid}/remove`, '1');
  } catch (err) {
    throw MdevError.causedBy(err, `Error removing device ${uuid}`, { uuid }, 'not-active');
  }
}

/** Create the device, then write its attributes in order; undo on failure. */
function createAndConfigure(env: Environment, d: Draft, hooks: HostHooks): void {
  const port = env.port;
  const parent = d.parent!;
  const type = d.type!;
  // Refuse hostile attributes before anything is written (a definition
  // may have been written by hand): the check's own code stays.
  for (const a of d.attrs) {
    try {
      checkAttribute(a);
    } catch (err) {
      throw new MdevError(
        codeOf(err) ?? 'invalid-name',
        `Refusing attribute of mdev ${d.uuid}: ${(err as Error).message}`,
        { context: { uuid: d.uuid, parent, type, attribute: a.name } },
      );
    }
  }
  let existing: SysfsPresence | undefined;
  try {
    existing = sysfsState(port, d.uuid);
  } catch (err) {
    // Broken in sysfs: the kernel will say whether the UUID is free.
    hooks.warn?.(
      `A sysfs lookup for device ${d.uuid} caused the error: ${osErrorText(err)}`,
      'device',
    );
  }
  if (existing !== undefined) {
    const context = { uuid: d.uuid, parent: existing.parent, type: existing.type };
    if (existing.parent !== parent)
      throw new MdevError('already-active', 'Device exists under different parent', { context });
    if (existing.type !== type)
      throw new MdevError('already-active', 'Device exists with different type', { context });
    throw new MdevError('already-active', 'Device already exists', { context });
  }
  const context = { uuid: d.uuid, parent, type };
  const parentDir = findParentDir(port, parent);
  const typesDir = `${parentDir}/mdev_supported_types`;
  if (!isSysfsDir(port, typesDir)) {
    throw new MdevError(
      'parent-missing',
      `Parent ${parent} is not currently registered for mdev support`,
      { context },
    );
  }
  const typeDir = `${typesDir}/${type}`;
  if (type.includes('/') || type === '..' || type === '.' || !isSysfsDir(port, typeDir)) {
    throw new MdevError('type-unsupported', `Parent ${parent} does not support mdev type ${type}`, {
      context,
    });
  }
  let availText: string;
  try {
    availText = port.read(`${typeDir}/available_instances`);
  } catch (err) {
    throw sysfsError(`Unable to read ${typeDir}/available_instances`, err, context);
  }
  if (parseI32(availText, `${typeDir}/available_instances`) === 0) {
    // As mdevctl: refused without asking the kernel (no write to create).
    throw new MdevError('no-instances', `No available instances of ${type} on ${parent}`, {
      context,
    });
  }
  const create = `${typeDir}/create`;
  try {
    port.write(create, d.uuid);
  } catch (err) {
    throw MdevError.causedBy(err, `Failed to create mdev ${d.uuid}, type ${type} on ${parent}`, {
      ...context,
      file: create,
    });
  }
  d.active = true;
  for (const a of d.attrs) {
    let file = `${MDEV_BUS_DEVICES}/${d.uuid}/${a.name}`;
    let failure: unknown;
    try {
      file = deviceAttributePath(port, d.uuid, a.name);
      if (!existsInSysfs(port, file)) {
        failure = new MdevError('attribute-missing', 'the device has no such attribute file');
      } else port.write(file, a.value);
    } catch (err) {
      failure = err;
    }
    if (failure === undefined) continue;
    let removeError: unknown;
    try {
      removeActive(port, d.uuid);
      d.active = false;
    } catch (err) {
      removeError = (err as Error).cause ?? err;
    }
    const fields = { uuid: d.uuid, parent, type, attribute: a.name, value: a.value, file };
    throw AttributeWriteError.of(failure, fields, removeError);
  }
}

export type Started = MdevDevice & { readonly generatedUuid: boolean };

/**
 * Start a device: a definition (by UUID, parent to disambiguate), a fully
 * specified transient device (parent + type), or a JSON document. Writes the
 * UUID to the type's `create`, then each attribute in order.
 */
export function* startDeviceSteps(
  env: Environment,
  req: StartRequest,
  hooks: HostHooks = noHooks,
): Steps<Started> {
  req = checkedNames(req);
  const d = resolveStart(env, req, hooks);
  yield* invoke(calloutContext(env, hooks), 'start', d, hooks, function* () {
    createAndConfigure(env, d, hooks);
  });
  return { ...freeze(d, isDefined(env, d)), generatedUuid: req.uuid === undefined };
}

export function startDevice(
  env: Environment,
  req: StartRequest,
  hooks: HostHooks = noHooks,
): Started {
  return runSync(startDeviceSteps(env, req, hooks), runnerOptions(hooks));
}

export function startDeviceAsync(
  env: Environment,
  req: StartRequest,
  hooks: HostHooks = noHooks,
): Promise<Started> {
  return runAsync(startDeviceSteps(env, req, hooks), runnerOptions(hooks));
}

/**
 * Stop (remove) a running device. A device sysfs cannot resolve is an
 * error, unless `hooks.force`: then it is reported and the callouts still
 * run (mdevctl 1.4).
 */
export function* stopDeviceSteps(
  env: Environment,
  uuid: string,
  hooks: HostHooks = noHooks,
): Steps<void> {
  uuid = uuidArg(uuid);
  const d = draft(uuid);
  let found: SysfsPresence | undefined;
  try {
    found = sysfsState(env.port, uuid);
    if (found === undefined) {
      throw new MdevError('not-active', `Device ${uuid} is not an active mdev`, {
        context: { uuid },
      });
    }
  } catch (err) {
    if (err instanceof MdevError || hooks.force !== true) {
      throw err instanceof MdevError ? err : sysfsLookupError(err, uuid);
    }
    hooks.warn?.(
      `For device ${uuid} a sysfs update caused the error: ${osErrorText(err)}`,
      'command',
    );
  }
  applySysfs(d, found);
  yield* invoke(calloutContext(env, hooks), 'stop', d, hooks, function* () {
    removeActive(env.port, uuid);
    d.active = false;
  });
}

export function stopDevice(env: Environment, uuid: string, hooks: HostHooks = noHooks): void {
  runSync(stopDeviceSteps(env, uuid, hooks), runnerOptions(hooks));
}

export function stopDeviceAsync(
  env: Environment,
  uuid: string,
  hooks: HostHooks = noHooks,
): Promise<void> {
  return runAsync(stopDeviceSteps(env, uuid, hooks), runnerOptions(hooks));
}

export interface StartOutcome {
  readonly device: MdevDevice;
  /** Undefined when the device started. */
  readonly error?: unknown;
}

/**
 * Start every start=auto definition of `parent` (udev runs this when a
 * parent registers). One device failing does not stop the others; no
 * --force here (a refusing script keeps its device down).
 */
export function* startParentDevicesSteps(
  env: Environment,
  parent: string,
  hooks: HostHooks = noHooks,
  /** Told of each device as it is done (mdevctl reports a failure before starting the next). */
  onOutcome?: (o: StartOutcome) => void,
): Steps<StartOutcome[]> {
  // In the order the parent's directory lists them, as mdevctl starts them.
  const devs = definitionsInDirectoryOrder(env, { parent }, hooks);
  const outcomes: StartOutcome[] = [];
  const ctx: CalloutContext = calloutContext(env, hooks);
  const noForce = { ...hooks, force: false };
  for (const list of devs.values()) {
    for (const dev of list) {
      if (dev.start !== 'auto') continue;
      const d = toDraft(dev);
      try {
        yield* invoke(ctx, 'start', d, noForce, function* () {
          createAndConfigure(env, d, hooks);
        });
        outcomes.push({ device: freeze(d, true) });
      } catch (error) {
        if (!(error instanceof Error) || error instanceof TypeError) throw error;
        outcomes.push({ device: dev, error });
      }
      onOutcome?.(outcomes.at(-1)!);
    }
  }
  return outcomes;
}

export function startParentDevices(
  env: Environment,
  parent: string,
  hooks: HostHooks = noHooks,
  onOutcome?: (o: StartOutcome) => void,
): StartOutcome[] {
  return runSync(startParentDevicesSteps(env, parent, hooks, onOutcome), runnerOptions(hooks));
}

export function startParentDevicesAsync(
  env: Environment,
  parent: string,
  hooks: HostHooks = noHooks,
  onOutcome?: (o: StartOutcome) => void,
): Promise<StartOutcome[]> {
  return runAsync(startParentDevicesSteps(env, parent, hooks, onOutcome), runnerOptions(hooks));
}
