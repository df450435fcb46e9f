/** Definitions: define, undefine, modify (and modify --live, through the callout). */
import * as nodePath from 'node:path';
import { getAttributesFromCallouts, invokeLiveModify } from '../callouts.js';
import {
  MAX_JSON_BYTES,
  deleteConfig,
  readFileLimited,
  writeConfig,
  type StartMode,
} from '../config-store.js';
import type { Environment } from '../environment.js';
import { checkedNames, newUuid, parentArg, typeArg, uuidArg } from './args.js';
import {
  addAttributes,
  applyJson,
  calloutView,
  checkRequestAttributes,
  configOf,
  draft,
  freeze,
  invoke,
  isDefined,
  loadFromSysfs,
  toDraft,
  type Draft,
} from './draft.js';
import { MdevError } from '../errors.js';
import { getDefinedDevice, listDefinedDevices } from './listing.js';
import { noHooks, type HostHooks, type JsonSource, type MdevDevice } from './types.js';

/**
 * mdevctl's `--jsonfile PATH`: the file (relative to `cwd`; links followed,
 * the user named it), or standard input for /dev/stdin — read only when the
 * operation gets that far, and at most MAX_JSON_BYTES (1 MiB) either way, so
 * /dev/zero or an endless pipe ends in `file-too-large` instead of a process
 * that reads until it aborts.
 */
export function jsonFileSource(
  path: string,
  cwd: string,
  readStdin: (maxBytes: number) => string,
): JsonSource {
  return {
    name: path,
    read: () =>
      path === '/dev/stdin'
        ? readStdin(MAX_JSON_BYTES)
        : readFileLimited(nodePath.resolve(cwd, path), path),
  };
}

export interface DefineRequest {
  readonly uuid?: string | undefined;
  readonly parent?: string | undefined;
  readonly type?: string | undefined;
  readonly auto?: boolean | undefined;
  readonly json?: JsonSource | undefined;
}

/**
 * Store a new definition. With a UUID of an active device, parent and type
 * default to the running device's (and the callouts may supply its
 * attributes). `generatedUuid` in the result says a UUID was made up.
 */
export function defineDevice(
  env: Environment,
  req: DefineRequest,
  hooks: HostHooks = noHooks,
): MdevDevice & { readonly generatedUuid: boolean } {
  req = checkedNames(req);
  const d = draft(req.uuid ?? newUuid());
  if (req.json !== undefined) {
    if (req.type !== undefined) {
      throw new MdevError(
        'invalid-argument',
        `Device type cannot be specified separately from "${req.json.name}"`,
      );
    }
    if (req.parent === undefined) {
      throw new MdevError(
        'invalid-argument',
        `Parent device required to define device via "${req.json.name}"`,
      );
    }
    if (listDefinedDevices(env, { uuid: d.uuid, parent: req.parent }, hooks).size > 0) {
      throw new MdevError(
        'already-defined',
        `Cowardly refusing to overwrite existing config for ${req.parent}/${d.uuid}`,
        { context: { uuid: d.uuid, parent: req.parent } },
      );
    }
    applyJson(d, req.parent, req.json, hooks);
  } else {
    if (req.uuid !== undefined) {
      loadFromSysfs(env.port, d);
      if (req.parent === undefined && (!d.active || req.type !== undefined)) {
        throw new MdevError('invalid-argument', 'No parent specified', {
          context: { uuid: d.uuid },
        });
      }
    }
    d.start = req.auto === true ? 'auto' : 'manual';
    if (req.parent !== undefined) d.parent = req.parent;
    if (req.type !== undefined) d.type = req.type;
    const context = { uuid: d.uuid, parent: d.parent, type: d.type };
    if (d.parent === undefined)
      throw new MdevError('invalid-argument', 'No parent specified', { context });
    if (d.type === undefined)
      throw new MdevError('invalid-argument', 'No type specified', { context });
    if (isDefined(env, d)) {
      throw new MdevError('already-defined', `Device ${d.uuid} on ${d.parent} already defined`, {
        context,
      });
    }
  }
  if (d.active) {
    addAttributes(
      d,
      getAttributesFromCallouts(env, calloutView(d)!, hooks.calloutStderr ?? (() => {})),
    );
    checkRequestAttributes(d, d.attrs);
  }
  invoke(env, 'define', d, hooks, () => storeConfig(env, d));
  return { ...freeze(d, true), generatedUuid: req.uuid === undefined };
}

function storeConfig(env: Environment, d: Draft): void {
  try {
    writeConfig(env.configDir, d.parent!, d.uuid, configOf(d));
  } catch (err) {
    throw MdevError.causedBy(err, `Failed to write config for device ${d.uuid}`, {
      uuid: d.uuid,
      parent: d.parent,
    });
  }
}

/**
 * Remove the definitions of `uuid` (on every parent unless `parent` is
 * given). Returns the removed definitions; throws `not-defined` when none matched.
 */
export function undefineDevice(
  env: Environment,
  uuid: string,
  parent?: string,
  hooks: HostHooks = noHooks,
): MdevDevice[] {
  uuid = uuidArg(uuid);
  parentArg(parent);
  const devs = listDefinedDevices(env, { uuid, parent }, hooks);
  if (devs.size === 0) {
    throw new MdevError('not-defined', 'No devices match the specified uuid', {
      context: { uuid, parent },
    });
  }
  const removed: MdevDevice[] = [];
  for (const list of devs.values()) {
    for (const dev of list) {
      const d = toDraft(dev);
      try {
        invoke(env, 'undefine', d, hooks, () => deleteConfig(env.configDir, dev.parent, dev.uuid));
        removed.push({ ...dev, defined: false });
      } catch {
        // mdevctl goes on with the other parents and reports success
      }
    }
  }
  return removed;
}

export interface ModifyRequest {
  readonly uuid: string;
  readonly parent?: string | undefined;
  readonly type?: string | undefined;
  /** Insert attribute `addAttr` = `value` (at `index`, else at the end). */
  readonly addAttr?: { readonly name: string; readonly value: string } | undefined;
  /** Delete the attribute at `index`, else the last one. */
  readonly delAttr?: boolean | undefined;
  readonly index?: number | undefined;
  readonly start?: StartMode | undefined;
  /** Replace type, start mode and attributes with this document's (mdevctl 1.3). */
  readonly json?: JsonSource | undefined;
}

/** Change a definition; the running device is unaffected. Returns the new definition. */
export function modifyDevice(
  env: Environment,
  req: ModifyRequest,
  hooks: HostHooks = noHooks,
): MdevDevice {
  req = { ...req, uuid: uuidArg(req.uuid), parent: parentArg(req.parent), type: typeArg(req.type) };
  let d: Draft;
  if (req.json !== undefined) {
    // As mdevctl 1.3: the document is the whole new definition, stored as is.
    if (req.parent === undefined) {
      throw new MdevError(
        'invalid-argument',
        'Parent device required to modify device via json file',
        { context: { uuid: req.uuid } },
      );
    }
    d = draft(req.uuid);
    applyJson(d, req.parent, req.json, hooks);
  } else {
    d = toDraft(getDefinedDevice(env, req.uuid, req.parent, hooks));
  }
  if (req.type !== undefined) d.type = req.type;
  if (req.start !== undefined) d.start = req.start;
  if (req.addAttr !== undefined) {
    checkRequestAttributes(d, [req.addAttr]);
    const at = req.index ?? d.attrs.length;
    if (at > d.attrs.length) {
      throw new MdevError('invalid-index', `Attribute index ${at} is invalid`, {
        context: { uuid: d.uuid, parent: d.parent, index: at },
      });
    }
    d.attrs.splice(at, 0, { name: req.addAttr.name, value: req.addAttr.value });
  } else if (req.delAttr === true) {
    if (req.index === undefined) d.attrs.pop();
    else if (req.index >= d.attrs.length) {
      // mdevctl 1.2.0 accepts index == length here and then panics
      throw new MdevError('invalid-index', `Attribute index ${req.index} is invalid`, {
        context: { uuid: d.uuid, parent: d.parent, index: req.index },
      });
    } else d.attrs.splice(req.index, 1);
  }
  invoke(env, 'modify', d, hooks, () => storeConfig(env, d));
  return freeze(d, true);
}

export interface LiveModifyRequest {
  readonly uuid: string;
  readonly parent?: string | undefined;
  /** The new configuration of the running device. */
  readonly json: JsonSource;
  /** Store it as the definition as well (`--live --defined`). */
  readonly alsoDefined?: boolean | undefined;
}

/**
 * Change a running device (mdevctl 1.3's `modify --live`): its versioned
 * callout script applies the new configuration (event live); with
 * `alsoDefined` the definition is rewritten too. The type cannot change.
 */
export function modifyLive(
  env: Environment,
  req: LiveModifyRequest,
  hooks: HostHooks = noHooks,
): MdevDevice {
  const uuid = uuidArg(req.uuid);
  const parent = parentArg(req.parent);
  const running = draft(uuid);
  running.parent = parent;
  loadFromSysfs(env.port, running);
  if (!running.active) {
    const what = parent === undefined ? uuid : `${parent}/${uuid}`;
    throw new MdevError('not-active', `Mediated device ${what} is not active`, {
      context: { uuid, parent },
    });
  }
  const next = draft(uuid);
  next.active = true;
  applyJson(next, running.parent!, req.json, hooks);
  const context = { uuid, parent: running.parent, type: running.type };
  if (next.type !== running.type)
    throw new MdevError('type-mismatch', "'type' cannot be changed on active mdev", { context });
  if (req.alsoDefined === true) {
    const def = getDefinedDevice(env, uuid, running.parent, hooks);
    if (def.type !== next.type) {
      throw new MdevError('type-mismatch', "'type' of active and defined mdev does not match", {
        context,
      });
    }
  }
  invokeLiveModify(env, calloutView(next)!, hooks.calloutStderr ?? (() => {}));
  if (req.alsoDefined === true) invoke(env, 'modify', next, hooks, () => storeConfig(env, next));
  return freeze(next, isDefined(env, next));
}
