/** Definitions: define, undefine, modify (and modify --live, through the callout). */
import * as nodePath from 'node:path';
import { CalloutContext } from '../callouts.js';
import {
  MAX_JSON_BYTES,
  deleteConfig,
  readFileLimited,
  writeConfig,
  type StartMode,
} from '../config-store.js';
import type { Environment } from '../environment.js';
import { MdevError, codeOf } from '../errors.js';
import { runAsync, runSync, type Steps } from '../script-runner.js';
import { checkedNames, newUuid, parentArg, typeArg, uuidArg } from './args.js';
import {
  addAttributes,
  applyJson,
  applySysfs,
  calloutContext,
  calloutFor,
  checkRequestAttributes,
  configOf,
  draft,
  freeze,
  invoke,
  isDefined,
  readJsonText,
  runnerOptions,
  sysfsState,
  toDraft,
  type Draft,
} from './draft.js';
import { osErrorText, sysfsLookupError } from './errors.js';
import { getActiveDeviceSteps, getDefinedDevice, listDefinedDevices } from './listing.js';
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

export type Defined = MdevDevice & { readonly generatedUuid: boolean };

/**
 * Store a new definition. With a UUID of a running device, parent and type
 * default to the running device's, and its callout script may add the
 * device's attributes (asked between pre and post). `generatedUuid` in the
 * result says a UUID was made up. With `hooks.force`, a device sysfs
 * cannot resolve is defined from the request alone (mdevctl 1.4).
 */
export function* defineDeviceSteps(
  env: Environment,
  req: DefineRequest,
  hooks: HostHooks = noHooks,
): Steps<Defined> {
  req = checkedNames(req);
  const d = draft(req.uuid ?? newUuid());
  if (req.json !== undefined) {
    const text = readJsonText(req.json, true);
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
    applyJson(d, req.parent, req.json, hooks, text);
  } else {
    if (req.uuid !== undefined) {
      let found;
      let broken = false;
      try {
        found = sysfsState(env.port, d.uuid);
      } catch (err) {
        if (hooks.force !== true) {
          throw sysfsLookupError(err, d.uuid);
        }
        hooks.warn?.(
          `For device ${d.uuid} a sysfs update caused the error: ${osErrorText(err)}`,
          'command',
        );
        broken = true;
      }
      if (!broken && req.parent === undefined && (found === undefined || req.type !== undefined)) {
        throw new MdevError('invalid-argument', 'No parent specified', {
          context: { uuid: d.uuid },
        });
      }
      applySysfs(d, found);
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
  const ctx = calloutContext(env, hooks);
  const c = calloutFor(ctx, d);
  yield* c.invoke('define', hooks.force ?? false, function* () {
    // A running device's script may know attributes it was started with,
    // checked as a request's would be (no core file, no control character).
    if (d.active) {
      addAttributes(d, yield* c.getAttributes());
      checkRequestAttributes(d, d.attrs);
    }
    storeConfig(env, d);
  });
  return { ...freeze(d, true), generatedUuid: req.uuid === undefined };
}

export function defineDevice(
  env: Environment,
  req: DefineRequest,
  hooks: HostHooks = noHooks,
): Defined {
  return runSync(defineDeviceSteps(env, req, hooks), runnerOptions(hooks));
}

export function defineDeviceAsync(
  env: Environment,
  req: DefineRequest,
  hooks: HostHooks = noHooks,
): Promise<Defined> {
  return runAsync(defineDeviceSteps(env, req, hooks), runnerOptions(hooks));
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
 * given). Returns the removed definitions; throws `not-defined` when none
 * matched. When a callout refuses one, the others are still removed, each
 * refusal is reported as a warning and the call fails ("Undefine failed",
 * the first refusal's code), as mdevctl 1.4 does.
 */
export function* undefineDeviceSteps(
  env: Environment,
  uuid: string,
  parent?: string,
  hooks: HostHooks = noHooks,
): Steps<MdevDevice[]> {
  uuid = uuidArg(uuid);
  parentArg(parent);
  const devs = listDefinedDevices(env, { uuid, parent }, hooks);
  if (devs.size === 0) {
    throw new MdevError('not-defined', 'No devices match the specified uuid', {
      context: { uuid, parent },
    });
  }
  const ctx = calloutContext(env, hooks);
  const removed: MdevDevice[] = [];
  let firstFailure: unknown;
  for (const list of devs.values()) {
    for (const dev of list) {
      const d = toDraft(dev);
      try {
        yield* invoke(ctx, 'undefine', d, hooks, function* () {
          deleteConfig(env.configDir, dev.parent, dev.uuid);
        });
        removed.push({ ...dev, defined: false });
      } catch (err) {
        if (!(err instanceof MdevError)) throw err;
        firstFailure ??= err;
        for (let e: unknown = err; e instanceof Error; e = e.cause) {
          hooks.warn?.(
            `Undefine of ${dev.uuid} on parent ${dev.parent} failed with error: ${osErrorText(e)}`,
            'command',
          );
        }
      }
    }
  }
  if (firstFailure !== undefined) {
    const script = firstFailure instanceof MdevError ? firstFailure.context.script : undefined;
    throw new MdevError(codeOf(firstFailure) ?? 'callout-refused', 'Undefine failed', {
      context: { uuid, parent, script },
    });
  }
  return removed;
}

export function undefineDevice(
  env: Environment,
  uuid: string,
  parent?: string,
  hooks: HostHooks = noHooks,
): MdevDevice[] {
  return runSync(undefineDeviceSteps(env, uuid, parent, hooks), runnerOptions(hooks));
}

export function undefineDeviceAsync(
  env: Environment,
  uuid: string,
  parent?: string,
  hooks: HostHooks = noHooks,
): Promise<MdevDevice[]> {
  return runAsync(undefineDeviceSteps(env, uuid, parent, hooks), runnerOptions(hooks));
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

/** What mdevctl shows after "Attribute index N is invalid": the attributes, or that there are none. */
function attributeHint(d: Draft): string {
  if (d.attrs.length === 0) return `Device ${d.uuid} has no attributes`;
  let out = '  Attrs:\n';
  d.attrs.forEach((a, i) => (out += `    @{${i}}: {"${a.name}":"${a.value}"}\n`));
  return out;
}

function invalidIndex(d: Draft, index: number): MdevError {
  return new MdevError(
    'invalid-index',
    `Attribute index ${index} is invalid\n${attributeHint(d)}`,
    {
      context: { uuid: d.uuid, parent: d.parent, index },
    },
  );
}

/** Change a definition; the running device is unaffected. Returns the new definition. */
export function* modifyDeviceSteps(
  env: Environment,
  req: ModifyRequest,
  hooks: HostHooks = noHooks,
): Steps<MdevDevice> {
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
    if (at > d.attrs.length) throw invalidIndex(d, at);
    d.attrs.splice(at, 0, { name: req.addAttr.name, value: req.addAttr.value });
  } else if (req.delAttr === true) {
    if (req.index === undefined) d.attrs.pop();
    // mdevctl 1.2.0 accepts index == length here and then panics
    else if (req.index >= d.attrs.length) throw invalidIndex(d, req.index);
    else d.attrs.splice(req.index, 1);
  }
  yield* invoke(calloutContext(env, hooks), 'modify', d, hooks, function* () {
    storeConfig(env, d);
  });
  return freeze(d, true);
}

export function modifyDevice(
  env: Environment,
  req: ModifyRequest,
  hooks: HostHooks = noHooks,
): MdevDevice {
  return runSync(modifyDeviceSteps(env, req, hooks), runnerOptions(hooks));
}

export function modifyDeviceAsync(
  env: Environment,
  req: ModifyRequest,
  hooks: HostHooks = noHooks,
): Promise<MdevDevice> {
  return runAsync(modifyDeviceSteps(env, req, hooks), runnerOptions(hooks));
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
 * Change a running device (mdevctl 1.3's `modify --live`): the device is
 * looked up as `list` does (its script asked for its attributes), its
 * versioned callout script applies the new configuration (event live);
 * with `alsoDefined` the definition is rewritten too, through the usual
 * modify callouts. The type cannot change.
 */
export function* modifyLiveSteps(
  env: Environment,
  req: LiveModifyRequest,
  hooks: HostHooks = noHooks,
): Steps<MdevDevice> {
  const uuid = uuidArg(req.uuid);
  const parent = parentArg(req.parent);
  const ctx: CalloutContext = calloutContext(env, hooks);
  const running = yield* getActiveDeviceSteps(env, uuid, parent, hooks, ctx);
  const next = draft(uuid);
  applyJson(next, running.parent, req.json, hooks);
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
  const c = calloutFor(ctx, next);
  yield* c.modifyLive(() => {
    const now = sysfsState(env.port, uuid);
    next.active = now !== undefined;
    return { active: now !== undefined, parent: now?.parent, type: now?.type };
  });
  if (req.alsoDefined === true) {
    yield* c.invoke('modify', hooks.force ?? false, function* () {
      storeConfig(env, next);
    });
  }
  return freeze(next, isDefined(env, next));
}

export function modifyLive(
  env: Environment,
  req: LiveModifyRequest,
  hooks: HostHooks = noHooks,
): MdevDevice {
  return runSync(modifyLiveSteps(env, req, hooks), runnerOptions(hooks));
}

export function modifyLiveAsync(
  env: Environment,
  req: LiveModifyRequest,
  hooks: HostHooks = noHooks,
): Promise<MdevDevice> {
  return runAsync(modifyLiveSteps(env, req, hooks), runnerOptions(hooks));
}
