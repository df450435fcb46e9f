/**
 * The mutable device record the operations work on (mdevctl's MDev) and how
 * it is filled: from sysfs, from a definition's JSON, from callouts.
 */
import * as nodePath from 'node:path';
import type { SysfsPort } from '../../port/sysfs-port.js';
import { withCallouts, type CalloutAction, type CalloutDevice } from '../callouts.js';
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
import { probeActive, type TypeDevicesIndex } from '../sysfs-model.js';
import { MdevError, codeOf } from '../errors.js';
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

/** mdevctl's load_from_sysfs: mark active when sysfs agrees on parent and type. */
export function loadFromSysfs(
  port: SysfsPort,
  d: Draft,
  typeDirCache?: Map<string, boolean>,
  typeIndex?: TypeDevicesIndex,
): void {
  const found = probeActive(port, d.uuid, typeDirCache, typeIndex);
  if (found === undefined) return;
  if (d.parent !== undefined && d.parent !== found.parent) return;
  if (d.type !== undefined && d.type !== found.type) return;
  d.parent = found.parent;
  d.type = found.type;
  d.active = true;
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
      hooks.warn?.(`Overwriting mdev type for mdev ${d.uuid}: ${d.type} => ${partial.mdevType}`);
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

export function invoke<T>(
  env: Environment,
  action: CalloutAction,
  d: Draft,
  hooks: HostHooks,
  op: () => T,
): T {
  const sink = hooks.calloutStderr ?? (() => {});
  return withCallouts(env, action, () => calloutView(d), sink, op, hooks.force ?? false);
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
 * The JSON document of a request (--jsonfile, an API body): at most
 * MAX_JSON_BYTES, and a syntax error says where, never what (the "document"
 * may be /etc/shadow).
 */
export function readJsonSource(src: JsonSource): unknown {
  let text: string;
  try {
    text = src.read();
    if (text.length > MAX_JSON_BYTES && Buffer.byteLength(text) > MAX_JSON_BYTES) {
      throw new MdevError(
        'file-too-large',
        `${src.name} is larger than 1 MiB (${MAX_JSON_BYTES} bytes)`,
        {
          context: { path: src.name },
        },
      );
    }
  } catch (err) {
    throw MdevError.causedBy(err, `Unable to read jsonfile "${src.name}"`, { path: src.name });
  }
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

export function applyJson(d: Draft, parent: string, src: JsonSource, hooks: HostHooks): void {
  const json = readJsonSource(src);
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
