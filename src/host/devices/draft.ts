/**
 * The mutable device record the operations work on (mdevctl's MDev) and how
 * it is filled: from sysfs, from a definition's JSON, from callouts.
 */
import * as nodePath from 'node:path';
import { ErrnoError, errnoCodeIn } from '../../common/errno.js';
import type { SysfsPort } from '../../port/sysfs-port.js';
import {
  CalloutContext,
  DeviceCallout,
  rustDebug,
  type CalloutAction,
  type CalloutDevice,
} from '../callouts.js';
import {
  ConfigError,
  MAX_JSON_BYTES,
  isDefinitionFile,
  parseJsonText,
  readConfigValue,
  type MdevAttribute,
  type MdevConfig,
  type StartMode,
} from '../config-store.js';
import { checkAttribute } from '../paths.js';
import type { Environment } from '../environment.js';
import { parseJson } from '../json-syntax.js';
import { probeActive, type SysfsPresence, type TypeDevicesIndex } from '../sysfs-model.js';
import { MdevError, codeOf } from '../errors.js';
import type { RunnerOptions, Steps } from '../script-runner.js';
import type { HostHooks, JsonSource, MdevDevice } from './types.js';

/** The mutable record the operations work on (mdevctl's MDev). */
export interface Draft {
  uuid: string;
  parent: string | undefined;
  type: string | undefined;
  start: StartMode;
  attrs: MdevAttribute[];
  active: boolean;
}

export function draft(uuid: string): Draft {
  return { uuid, parent: undefined, type: undefined, start: 'manual', attrs: [], active: false };
}

/**
 * Where sysfs has the device (mdevctl 1.4's MDevSysfsData::load): its
 * parent and type, or undefined when it is not there — the bus entry or
 * its mdev_type link leads nowhere (ENOENT). Any other failure to resolve
 * them (a link loop, no access) is thrown: the device is there but broken.
 */
export function sysfsState(
  port: SysfsPort,
  uuid: string,
  typeDirCache?: Map<string, boolean>,
  typeIndex?: TypeDevicesIndex,
): SysfsPresence | undefined {
  try {
    return probeActive(port, uuid, typeDirCache, typeIndex);
  } catch (err) {
    if (err instanceof ErrnoError && err.code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Mark the draft active where sysfs has it on the draft's parent and type (when it has them). */
export function applySysfs(d: Draft, found: SysfsPresence | undefined): void {
  if (found === undefined) return;
  if (d.parent !== undefined && d.parent !== found.parent) return;
  if (d.type !== undefined && d.type !== found.type) return;
  d.parent = found.parent;
  d.type = found.type;
  d.active = true;
}

/** mdevctl's load_from_sysfs: mark active when sysfs agrees on parent and type. */
export function loadFromSysfs(
  port: SysfsPort,
  d: Draft,
  typeDirCache?: Map<string, boolean>,
  typeIndex?: TypeDevicesIndex,
): void {
  applySysfs(d, sysfsState(port, d.uuid, typeDirCache, typeIndex));
}

/** mdevctl's load_from_json; throws ConfigError, leaving what was read before the error applied. */
export function loadFromJson(
  d: Draft,
  parent: string,
  json: unknown,
  hooks: HostHooks,
  path?: string,
): void {
  d.parent = parent;
  const partial = readConfigValue(json);
  if (partial.mdevType !== undefined) {
    if (d.type !== undefined && d.type !== partial.mdevType) {
      hooks.warn?.(
        `Overwriting mdev type for mdev ${d.uuid}: ${d.type} => ${partial.mdevType}`,
        'device',
      );
    }
    d.type = partial.mdevType;
    d.start = partial.start ?? 'manual';
  }
  d.attrs.push(...partial.attrs);
  if (partial.error !== undefined) throw new ConfigError(partial.error, path, partial.errorCode);
}

export { parseJsonText };

export function configOf(d: Draft): MdevConfig {
  return { mdevType: d.type!, start: d.start, attrs: d.attrs };
}

export function freeze(d: Draft, defined: boolean): MdevDevice {
  return {
    uuid: d.uuid,
    parent: d.parent!,
    type: d.type!,
    start: d.start,
    attrs: d.attrs, // drafts are not reused after freezing: no copy
    active: d.active,
    defined,
  };
}

export { readDefinitionText as readSmallFile } from '../config-store.js';

export function persistPath(env: Environment, d: Draft): string | undefined {
  return d.parent === undefined ? undefined : nodePath.join(env.configDir, d.parent, d.uuid);
}

/** Defined: a definition file is there (a link is not one: links in the config dir are never followed). */
export function isDefined(env: Environment, d: Draft): boolean {
  const p = persistPath(env, d);
  return p !== undefined && isDefinitionFile(p);
}

export function calloutView(d: Draft): CalloutDevice | undefined {
  if (d.parent === undefined || d.type === undefined) return undefined;
  const configJson = JSON.stringify({
    mdev_type: d.type,
    start: d.start,
    attrs: d.attrs.map((a) => ({ [a.name]: a.value })),
  });
  return { uuid: d.uuid, parent: d.parent, type: d.type, configJson };
}

/** The callout context of one operation, reporting through `hooks`. */
export function calloutContext(env: Environment, hooks: HostHooks): CalloutContext {
  return new CalloutContext(env, hooks.calloutStderr ?? (() => {}), (m) =>
    hooks.warn?.(m, 'callouts'),
  );
}

/** How the runners treat this caller's scripts. */
export function runnerOptions(hooks: HostHooks): RunnerOptions {
  return { timeoutMs: hooks.calloutTimeoutMs };
}

/** The draft's callouts (mdevctl's `callout(&mut dev)?`): it needs a parent and a type. */
export function calloutFor(ctx: CalloutContext, d: Draft): DeviceCallout {
  if (d.type === undefined) {
    throw new MdevError('invalid-argument', 'Device must have a defined mdev_type', {
      context: { uuid: d.uuid },
    });
  }
  if (d.parent === undefined) {
    throw new MdevError('invalid-argument', `Device ${d.uuid} is missing a parent`, {
      context: { uuid: d.uuid },
    });
  }
  return new DeviceCallout(ctx, () => calloutView(d)!);
}

/** Run `op` between the draft's pre and post callouts, then its notifiers. */
export function* invoke<T>(
  ctx: CalloutContext,
  action: CalloutAction,
  d: Draft,
  hooks: HostHooks,
  op: () => Steps<T>,
): Steps<T> {
  return yield* calloutFor(ctx, d).invoke(action, hooks.force ?? false, op);
}

/** Attributes reported by callouts for an active device, applied as mdevctl's add_attributes. */
export function addAttributes(d: Draft, value: unknown): void {
  if (value === undefined || value === null) return;
  const partial = readConfigValue({ mdev_type: '', start: '', attrs: value });
  d.attrs.push(...partial.attrs);
  if (partial.error !== undefined) {
    throw new MdevError('callout-failed', partial.error, {
      context: { uuid: d.uuid, parent: d.parent, type: d.type },
    });
  }
}

export function sortDevices<T extends { uuid: string }>(map: Map<string, T[]>): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const parent of [...map.keys()].sort()) out.set(parent, sortedByUuid(map.get(parent)!));
  return out;
}

/**
 * The devices in UUID order (stable). The UUID strings are sorted by the
 * default comparison (UTF-16 code units, as `<` compares), which
 * JavaScriptCore does natively: a comparator function called for every
 * pair cost ten times more at 10k devices.
 */
function sortedByUuid<T extends { uuid: string }>(list: T[]): T[] {
  if (list.length < 2) return list;
  const byUuid = new Map<string, T | T[]>();
  for (const d of list) {
    const seen = byUuid.get(d.uuid);
    if (seen === undefined) byUuid.set(d.uuid, d);
    else if (Array.isArray(seen)) seen.push(d);
    else byUuid.set(d.uuid, [seen, d]);
  }
  const out: T[] = [];
  for (const uuid of [...byUuid.keys()].sort()) {
    const d = byUuid.get(uuid)!;
    if (Array.isArray(d)) out.push(...d);
    else out.push(d);
  }
  return out;
}

export function toDraft(dev: MdevDevice): Draft {
  return {
    uuid: dev.uuid,
    parent: dev.parent,
    type: dev.type,
    start: dev.start,
    attrs: [...dev.attrs],
    active: dev.active,
  };
}

/**
 * The document's text, read once, at most MAX_JSON_BYTES (a request's
 * document may be /dev/zero). `opened`: mdevctl opens the file first
 * (define, modify) and says so when that fails ("Unable to read file");
 * a failed read of an opened file (a directory) is "Unable to read
 * jsonfile", as it is for start, which only reads. A syntax error (in
 * parseJsonDocument) says where, never what: the document may be
 * /etc/shadow.
 */
export function readJsonText(src: JsonSource, opened = false): string {
  try {
    const text = src.read();
    if (text.length > MAX_JSON_BYTES && Buffer.byteLength(text) > MAX_JSON_BYTES) {
      throw new MdevError(
        'file-too-large',
        `${src.name} is larger than 1 MiB (${MAX_JSON_BYTES} bytes)`,
        { context: { path: src.name } },
      );
    }
    return text;
  } catch (err) {
    const what = opened && errnoCodeIn(err) !== 'EISDIR' ? 'file' : 'jsonfile';
    throw MdevError.causedBy(err, `Unable to read ${what} ${rustDebug(src.name)}`, {
      path: src.name,
    });
  }
}

export function parseJsonDocument(src: JsonSource, text: string): unknown {
  try {
    return parseJson(text);
  } catch (err) {
    throw new MdevError('invalid-config', `Invalid JSON in "${src.name}"`, {
      cause: err,
      context: { path: src.name },
    });
  }
}

/**
 * A request's attributes, checked before anything is stored or created:
 * names that stay inside the device and are the vendor driver's, no
 * control characters (codes `invalid-name`, `core-attribute`,
 * `control-character`).
 */
export function checkRequestAttributes(d: Draft, attrs: readonly MdevAttribute[]): void {
  for (const a of attrs) checkAttribute(a, { uuid: d.uuid, parent: d.parent, type: d.type });
}

export function readJsonSource(src: JsonSource, opened = false): unknown {
  return parseJsonDocument(src, readJsonText(src, opened));
}

/** Fill `d` from the document (on `parent`); `text` when it was read already. */
export function applyJson(
  d: Draft,
  parent: string,
  src: JsonSource,
  hooks: HostHooks,
  text?: string,
): void {
  const json = parseJsonDocument(src, text ?? readJsonText(src, true));
  try {
    loadFromJson(d, parent, json, hooks);
  } catch (err) {
    // A control character keeps its own code; anything else is an invalid document.
    throw new MdevError(
      codeOf(err) === 'control-character' ? 'control-character' : 'invalid-config',
      `Invalid device definition in "${src.name}"`,
      { cause: err, context: { path: src.name, uuid: d.uuid, parent } },
    );
  }
  checkRequestAttributes(d, d.attrs);
}
