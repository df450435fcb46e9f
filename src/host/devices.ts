/**
 * Host library API — the semantic mdev operations of mdevctl, over an
 * `Environment` (src/host/environment.ts: sysfs port + config dir + callout
 * dirs). The CLI (src/ctl/mdevctl), the agent and the libvirt integration
 * all call these; nothing here formats output or touches process.stdout.
 *
 *   selfCheck(env)                          required dirs exist (else MdevError)
 *   listActiveDevices(env, filter, hooks)   Map<parent, MdevDevice[]> — as `mdevctl list`
 *   listDefinedDevices(env, filter, hooks)  Map<parent, MdevDevice[]> — as `mdevctl list -d`
 *   listTypes(env, parent?)                 Map<parent, MdevTypeEntry[]> — as `mdevctl types`
 *   defineDevice(env, request, hooks)       -> MdevDevice (stores <configDir>/<parent>/<uuid>)
 *   undefineDevice(env, uuid, parent?, hooks)  -> MdevDevice[] removed
 *   modifyDevice(env, request, hooks)       -> MdevDevice (the new definition)
 *   modifyLive(env, request, hooks)         -> MdevDevice (running device changed via its callout)
 *   startDevice(env, request, hooks)        -> MdevDevice (created, attrs written in order)
 *   stopDevice(env, uuid, hooks)
 *   startParentDevices(env, parent, hooks)  -> StartOutcome[] (autostart of start=auto definitions)
 *
 * Maps are sorted by parent name, device lists by UUID (as mdevctl's
 * BTreeMap and sort). Failures are `MdevError` with a stable `code` and an
 * optional `cause` chain (the CLI prints it as mdevctl's "Caused by:"); a
 * failed attribute write during start is an `AttributeWriteError` naming the
 * device, parent, type, attribute file and errno. The decision rules (which
 * option wins, which errors) are mdevctl 1.2.0's so the CLI stays a drop-in;
 * where 1.2.0 panics this library throws a clear MdevError instead.
 *
 * `hooks.warn` receives what mdevctl logs at WARN level (e.g. a config file
 * whose name is not a UUID); `hooks.calloutStderr` what callout scripts say.
 * All calls are synchronous, like the port and like mdevctl itself.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { ErrnoError, isErrnoCode, strerror } from '../common/errno.js';
import type { SysfsPort } from '../port/sysfs-port.js';
import {
  getAttributesFromCallouts,
  hasCalloutScripts,
  invokeLiveModify,
  withCallouts,
  type CalloutAction,
  type CalloutDevice,
} from './callouts.js';
import {
  ConfigError,
  TEMP_PREFIX,
  deleteConfig,
  parseConfig,
  readConfigValue,
  writeConfig,
  type MdevAttribute,
  type MdevConfig,
  type StartMode,
} from './config-store.js';
import type { Environment } from './environment.js';
import {
  MDEV_BUS_DEVICES,
  MDEV_CLASS,
  checkAttributeName,
  checkComponent,
  deviceAttributePath,
} from './paths.js';
import { parseUuid } from './uuid-forms.js';
import {
  indexTypeDevices,
  probeActive,
  type SysfsPresence,
  type TypeDevicesIndex,
} from './sysfs-model.js';

export { indexTypeDevices, probeActive, type TypeDevicesIndex } from './sysfs-model.js';

export type { MdevAttribute, MdevConfig, StartMode } from './config-store.js';

/** A device as mdevctl sees it: a definition, an active device, or both. */
export interface MdevDevice {
  readonly uuid: string;
  readonly parent: string;
  readonly type: string;
  readonly start: StartMode;
  readonly attrs: readonly MdevAttribute[];
  /** Present in /sys/bus/mdev/devices on this parent with this type. */
  readonly active: boolean;
  /** <configDir>/<parent>/<uuid> exists. */
  readonly defined: boolean;
}

export interface MdevTypeEntry {
  readonly id: string;
  readonly availableInstances: number;
  readonly deviceApi: string;
  /** Empty when absent or empty. */
  readonly name: string;
  /** Trimmed, inner newlines joined with ", "; empty when absent. */
  readonly description: string;
}

export interface DeviceFilter {
  readonly uuid?: string | undefined;
  readonly parent?: string | undefined;
}

export interface HostHooks {
  /** mdevctl's WARN-level log lines. */
  readonly warn?: (message: string) => void;
  /** stderr of a callout script, shown by mdevctl as "<script>: <text>". */
  readonly calloutStderr?: (script: string, text: string) => void;
  /** Go on although a pre callout refused (mdevctl 1.3's --force). */
  readonly force?: boolean;
  /**
   * When given, a definition that cannot be parsed is reported here and
   * skipped, instead of failing the whole listing as mdevctl does (the
   * agent and dashboard use this; the mdevctl CLI keeps mdevctl's rule).
   */
  readonly invalidDefinition?: (path: string, error: MdevError) => void;
}

export type MdevErrorCode =
  | 'ENVIRONMENT'
  | 'INVALID_CONFIG'
  | 'NOT_DEFINED'
  | 'ALREADY_DEFINED'
  | 'AMBIGUOUS'
  | 'UNDERSPECIFIED'
  | 'CONFLICT'
  | 'NO_PARENT'
  | 'NO_TYPE'
  | 'NO_INSTANCES'
  | 'ALREADY_ACTIVE'
  | 'NOT_ACTIVE'
  | 'INVALID_INDEX'
  | 'INVALID_ATTRIBUTE'
  | 'SYSFS'
  | 'IO'
  | 'CALLOUT'
  | 'INVALID_NAME';

/** A failure of a host operation, in words; `cause` carries the underlying error. */
export class MdevError extends Error {
  override readonly name: string = 'MdevError';
  constructor(
    readonly code: MdevErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Writing an attribute of a just-created device failed (mdevctl#115): which
 * device, parent, type, attribute file and why. The device has been removed
 * again — unless `removeError` says that failed too.
 */
export class AttributeWriteError extends MdevError {
  override readonly name = 'AttributeWriteError';
  constructor(
    readonly uuid: string,
    readonly parent: string,
    readonly type: string,
    readonly attribute: string,
    readonly value: string,
    readonly file: string,
    readonly reason: string,
    readonly removeError?: unknown,
  ) {
    const removal =
      removeError === undefined
        ? 'the device was removed again'
        : `removing the device again failed too (${describeError(removeError)})`;
    super(
      'INVALID_ATTRIBUTE',
      `Failed to set attribute '${attribute}' of mdev ${uuid} (parent ${parent}, type ${type}): ` +
        `writing ${JSON.stringify(value)} to ${file}: ${reason}; ${removal}`,
    );
  }
}

/** "Invalid argument (EINVAL)" for errno errors, the message otherwise. */
export function describeError(err: unknown): string {
  if (err instanceof ErrnoError) return `${strerror(err.code)} (${err.code})`;
  const code = (err as { code?: unknown } | null)?.code;
  if (isErrnoCode(code)) return `${strerror(code)} (${code})`;
  return err instanceof Error ? err.message : String(err);
}

const noHooks: HostHooks = {};

/** A random v4 UUID from the global Web Crypto (loaded on first use, not at start-up). */
const newUuid = (): string => globalThis.crypto.randomUUID();

/** A UUID argument in any spelling mdevctl accepts, canonical; anything else is refused. */
function uuidArg(uuid: string): string {
  const u = parseUuid(uuid);
  if (u === undefined) throw new MdevError('INVALID_NAME', `Invalid UUID ${JSON.stringify(uuid)}`);
  return u;
}

/** A request with its UUID normalised and its names checked (define and start). */
function checkedNames<
  R extends { readonly uuid?: string | undefined; readonly parent?: string | undefined },
>(req: R): R {
  return {
    ...req,
    uuid: req.uuid === undefined ? undefined : uuidArg(req.uuid),
    parent: parentArg(req.parent),
  };
}

/** A parent name must stay one path component: it names a directory under /etc/mdevctl.d and sysfs. */
function parentArg(parent: string | undefined): string | undefined {
  if (parent === undefined) return undefined;
  try {
    return checkComponent(parent, 'parent');
  } catch {
    throw new MdevError(
      'INVALID_NAME',
      `Refusing parent name ${JSON.stringify(parent)}: it must be one path component (no "/", NUL, "." or "..")`,
    );
  }
}

// ---------------------------------------------------------------- sysfs

/** Path::exists: present, following a final link. One lstat unless it is a link. */
function existsInSysfs(port: SysfsPort, path: string): boolean {
  const kind = port.kind(path);
  if (kind === null) return false;
  if (kind !== 'link') return true;
  try {
    port.realpath(path);
    return true;
  } catch {
    return false;
  }
}

function isSysfsDir(port: SysfsPort, path: string): boolean {
  const kind = port.kind(path);
  if (kind === 'dir') return true;
  if (kind !== 'link') return false;
  try {
    return port.kind(port.realpath(path)) === 'dir';
  } catch {
    return false;
  }
}

function sysfsError(message: string, err: unknown): MdevError {
  return new MdevError('SYSFS', message, { cause: err });
}

/** Parse an i32 as Rust's str::parse does (after trim). */
function parseI32(text: string, file: string): number {
  const t = text.trim();
  const n = /^[+-]?\d+$/.test(t) ? Number(t) : Number.NaN;
  if (!Number.isSafeInteger(n) || n > 2147483647 || n < -2147483648) {
    throw new MdevError('SYSFS', `Unable to parse ${JSON.stringify(t)} in ${file} as a number`);
  }
  return n;
}

// ---------------------------------------------------------------- environment

/** mdevctl refuses to run without these directories (a packaging error). */
export function selfCheck(env: Environment): void {
  const required = [env.configDir, nodePath.join(env.configDir, 'scripts.d', 'callouts')];
  required.push(nodePath.join(env.configDir, 'scripts.d', 'notifiers'));
  for (const dir of required) {
    if (!fs.existsSync(dir)) {
      throw new MdevError(
        'ENVIRONMENT',
        `Required directory "${dir}" doesn't exist. This may indicate a packaging or installation error`,
      );
    }
  }
}

// ---------------------------------------------------------------- device records

/** The mutable record the operations work on (mdevctl's MDev). */
interface Draft {
  uuid: string;
  parent: string | undefined;
  type: string | undefined;
  start: StartMode;
  attrs: MdevAttribute[];
  active: boolean;
}

function draft(uuid: string): Draft {
  return { uuid, parent: undefined, type: undefined, start: 'manual', attrs: [], active: false };
}

/** mdevctl's load_from_sysfs: mark active when sysfs agrees on parent and type. */
/** Below this many devices the index costs more readdirs than it saves readlinks. */
const TYPE_INDEX_THRESHOLD = 256;

function loadFromSysfs(
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
function loadFromJson(
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
  if (partial.error !== undefined) throw new ConfigError(partial.error, path);
}

function parseJsonText(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`malformed JSON (${(err as Error).message})`, path);
  }
}

function configOf(d: Draft): MdevConfig {
  return { mdevType: d.type!, start: d.start, attrs: d.attrs };
}

function freeze(d: Draft, defined: boolean): MdevDevice {
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

/**
 * Read a small file (a definition) with one open, read and close: no
 * fstat, no options parsing and no fresh buffer per file, which counts when
 * a listing reads ten thousand of them.
 */
let readBuffer = Buffer.allocUnsafe(64 * 1024);
function readSmallFile(path: string): string {
  const fd = fs.openSync(path, 'r');
  try {
    let n = 0;
    for (;;) {
      const room = readBuffer.length - n;
      const got = fs.readSync(fd, readBuffer, n, room, null);
      n += got;
      // A regular file on Linux reads short only at its end: no second read
      // just to see 0 (one syscall less per definition).
      if (got < room) break;
      if (n === readBuffer.length) {
        const bigger = Buffer.allocUnsafe(readBuffer.length * 2);
        readBuffer.copy(bigger);
        readBuffer = bigger;
      }
    }
    return readBuffer.toString('utf8', 0, n);
  } finally {
    fs.closeSync(fd);
  }
}

function persistPath(env: Environment, d: Draft): string | undefined {
  return d.parent === undefined ? undefined : nodePath.join(env.configDir, d.parent, d.uuid);
}

function isDefined(env: Environment, d: Draft): boolean {
  const p = persistPath(env, d);
  return p !== undefined && fs.existsSync(p);
}

function calloutView(d: Draft): CalloutDevice | undefined {
  if (d.parent === undefined || d.type === undefined) return undefined;
  const configJson = JSON.stringify({
    mdev_type: d.type,
    start: d.start,
    attrs: d.attrs.map((a) => ({ [a.name]: a.value })),
  });
  return { uuid: d.uuid, parent: d.parent, type: d.type, configJson };
}

function invoke<T>(
  env: Environment,
  action: CalloutAction,
  d: Draft,
  hooks: HostHooks,
  op: () => T,
): T {
  const sink = hooks.calloutStderr ?? (() => {});
  try {
    return withCallouts(env, action, () => calloutView(d), sink, op, hooks.force ?? false);
  } catch (err) {
    if (err instanceof Error && err.name === 'CalloutError') {
      throw new MdevError('CALLOUT', err.message);
    }
    throw err;
  }
}

/** Attributes reported by callouts for an active device, applied as mdevctl's add_attributes. */
function addAttributes(d: Draft, value: unknown): void {
  if (value === undefined || value === null) return;
  const partial = readConfigValue({ mdev_type: '', start: '', attrs: value });
  d.attrs.push(...partial.attrs);
  if (partial.error !== undefined) throw new MdevError('INVALID_ATTRIBUTE', partial.error);
}

function sortDevices<T extends { uuid: string }>(map: Map<string, T[]>): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const parent of [...map.keys()].sort()) {
    const list = map.get(parent)!;
    list.sort((a, b) => (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0));
    out.set(parent, list);
  }
  return out;
}

// ---------------------------------------------------------------- listings

/**
 * Active devices, merged with their definitions on the same parent (type,
 * start mode and attributes come from the definition; a broken definition
 * contributes what could be read of it). Undefined devices get attributes
 * from the callouts. A bus entry whose device is gone makes the listing fail
 * ("missing a parent"), as in mdevctl; entries that are not UUIDs are
 * skipped with a warning.
 */
export function listActiveDevices(
  env: Environment,
  filter: DeviceFilter = {},
  hooks: HostHooks = noHooks,
): Map<string, MdevDevice[]> {
  const port = env.port;
  let names: string[];
  try {
    names = port.list(MDEV_BUS_DEVICES);
  } catch {
    return new Map();
  }
  const definedNames = new Map<string, Set<string> | null>();
  const definedIn = (parent: string): Set<string> | null => {
    let set = definedNames.get(parent);
    if (set === undefined) {
      try {
        set = new Set(fs.readdirSync(nodePath.join(env.configDir, parent)));
      } catch {
        set = null;
      }
      definedNames.set(parent, set);
    }
    return set;
  };
  let callouts: boolean | undefined;
  const typeDirs = new Map<string, boolean>();
  const typeIndex =
    names.length >= TYPE_INDEX_THRESHOLD && filter.uuid === undefined
      ? indexTypeDevices(port)
      : undefined;
  const out = new Map<string, MdevDevice[]>();
  for (const name of names) {
    const uuid = parseUuid(name);
    if (uuid === undefined) {
      hooks.warn?.(`Can't determine uuid for file '${name}'`);
      continue;
    }
    if (filter.uuid !== undefined && filter.uuid !== uuid) continue;
    const d = draft(uuid);
    try {
      loadFromSysfs(port, d, typeDirs, typeIndex);
    } catch {
      continue; // no readable mdev_type: not a usable device
    }
    if (filter.parent !== undefined && filter.parent !== d.parent) continue;
    let defined = false;
    if (d.parent !== undefined) {
      defined = definedIn(d.parent)?.has(uuid) === true;
      if (defined) {
        const path = `${env.configDir}/${d.parent}/${uuid}`;
        try {
          loadFromJson(d, d.parent, JSON.parse(readSmallFile(path)), hooks, path);
        } catch {
          // mdevctl shows what it could read of a broken definition
        }
      }
    }
    if (!defined && d.type !== undefined && d.parent !== undefined) {
      callouts ??= hasCalloutScripts(env);
      if (callouts) {
        try {
          addAttributes(
            d,
            getAttributesFromCallouts(env, calloutView(d)!, hooks.calloutStderr ?? (() => {})),
          );
        } catch {
          // attributes are optional in a listing
        }
      }
    }
    if (d.parent === undefined) {
      throw new MdevError('SYSFS', `Device ${uuid} is missing a parent`);
    }
    let list = out.get(d.parent);
    if (list === undefined) out.set(d.parent, (list = []));
    list.push(freeze(d, defined));
  }
  return sortDevices(out);
}

/**
 * Definitions, each with its active state. The first definition that cannot
 * be parsed fails the whole listing (as in mdevctl), with an error naming
 * the file; definitions excluded by the filter are never read. Files whose
 * names are not UUIDs are skipped with a warning.
 */
export function listDefinedDevices(
  env: Environment,
  filter: DeviceFilter = {},
  hooks: HostHooks = noHooks,
): Map<string, MdevDevice[]> {
  const out = new Map<string, MdevDevice[]>();
  const typeDirs = new Map<string, boolean>();
  // One listing of the bus instead of a failed lookup per inactive definition.
  let onBus: Set<string> | undefined;
  try {
    onBus = new Set(env.port.list(MDEV_BUS_DEVICES));
  } catch {
    onBus = new Set();
  }
  // Built once enough definitions have turned out to be active: a host
  // with many devices but few definitions never pays for it.
  let typeIndex: TypeDevicesIndex | undefined;
  let probes = 0;
  let parents: fs.Dirent[];
  try {
    parents = fs.readdirSync(env.configDir, { withFileTypes: true });
  } catch (err) {
    throw new MdevError('IO', `Unable to read ${env.configDir}`, { cause: err });
  }
  for (const pent of parents) {
    const parent = pent.name;
    if (parent === 'scripts.d') continue;
    if (filter.parent !== undefined && filter.parent !== parent) continue;
    const parentDir = nodePath.join(env.configDir, parent);
    if (!pent.isDirectory()) {
      if (
        !pent.isSymbolicLink() ||
        !fs.statSync(parentDir, { throwIfNoEntry: false })?.isDirectory()
      )
        continue;
    }
    let children: fs.Dirent[];
    try {
      children = fs.readdirSync(parentDir, { withFileTypes: true });
    } catch (err) {
      hooks.warn?.(`Unable to read directory "${parentDir}": ${describeError(err)}`);
      continue;
    }
    const names = new Set(children.map((c) => c.name));
    const list: MdevDevice[] = [];
    for (const child of children) {
      const path = `${parentDir}/${child.name}`;
      if (!child.isFile()) {
        if (!child.isSymbolicLink()) continue;
        const st = fs.statSync(path, { throwIfNoEntry: false });
        if (st === undefined) {
          hooks.warn?.(`unable to access file "${path}": No such file or directory`);
          continue;
        }
        if (!st.isFile()) continue;
      }
      if (child.name.startsWith(TEMP_PREFIX)) continue; // debris of an interrupted atomic write
      const uuid = parseUuid(child.name);
      if (uuid === undefined) {
        hooks.warn?.(`Can't determine uuid for file '${child.name}'`);
        continue;
      }
      if (filter.uuid !== undefined && filter.uuid !== uuid) continue;
      let text: string;
      try {
        text = readSmallFile(path);
      } catch (err) {
        hooks.warn?.(`Unable to open file "${path}": ${describeError(err)}`);
        continue;
      }
      const d = draft(uuid);
      try {
        loadFromJson(d, parent, parseJsonText(text, path), hooks, path);
      } catch (err) {
        const error = new MdevError('INVALID_CONFIG', `Invalid definition ${path}`, { cause: err });
        if (hooks.invalidDefinition === undefined) throw error;
        hooks.invalidDefinition(path, error);
        continue;
      }
      if (onBus.has(uuid)) {
        if (++probes === TYPE_INDEX_THRESHOLD && filter.uuid === undefined) {
          typeIndex = indexTypeDevices(env.port);
        }
        loadFromSysfs(env.port, d, typeDirs, typeIndex);
      }
      list.push(freeze(d, names.has(uuid)));
    }
    if (list.length > 0) out.set(parent, list);
  }
  return sortDevices(out);
}

/**
 * Supported types per parent (all parents in /sys/class/mdev_bus, or one).
 * A parent without mdev_supported_types, or a type without a readable
 * available_instances or device_api, fails the whole listing, as in mdevctl.
 */
export function listTypes(env: Environment, parent?: string): Map<string, MdevTypeEntry[]> {
  const port = env.port;
  const out = new Map<string, MdevTypeEntry[]>();
  let parents: string[];
  try {
    parents = port.list(MDEV_CLASS);
  } catch {
    return out;
  }
  for (const p of parents.sort()) {
    if (parent !== undefined && parent !== p) continue;
    const typesDir = `${MDEV_CLASS}/${p}/mdev_supported_types`;
    let ids: string[];
    try {
      ids = port.list(typesDir);
    } catch (err) {
      throw sysfsError(`Unable to read the types of parent ${p} (${typesDir})`, err);
    }
    const types: MdevTypeEntry[] = [];
    for (const id of ids) {
      const dir = `${typesDir}/${id}`;
      if (!isSysfsDir(port, dir)) {
        if (port.kind(dir) === null)
          throw sysfsError(`Unable to read ${dir}`, new ErrnoError('ENOENT'));
        continue;
      }
      const read = (attr: string): string => {
        try {
          return port.read(`${dir}/${attr}`);
        } catch (err) {
          throw sysfsError(`Unable to read ${dir}/${attr}`, err);
        }
      };
      const readIfPresent = (attr: string): string =>
        existsInSysfs(port, `${dir}/${attr}`) ? read(attr).trim() : '';
      types.push({
        id,
        availableInstances: parseI32(read('available_instances'), `${dir}/available_instances`),
        deviceApi: read('device_api').trim(),
        name: readIfPresent('name'),
        description: readIfPresent('description').replaceAll('\n', ', '),
      });
    }
    types.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    out.set(p, types);
  }
  return out;
}

// ---------------------------------------------------------------- lookups

function definedCount(map: Map<string, MdevDevice[]>): number {
  let n = 0;
  for (const list of map.values()) n += list.length;
  return n;
}

function toDraft(dev: MdevDevice): Draft {
  return {
    uuid: dev.uuid,
    parent: dev.parent,
    type: dev.type,
    start: dev.start,
    attrs: [...dev.attrs],
    active: dev.active,
  };
}

/** The one definition of `uuid` (on `parent`, when given). */
export function getDefinedDevice(
  env: Environment,
  uuid: string,
  parent?: string,
  hooks: HostHooks = noHooks,
): MdevDevice {
  uuid = uuidArg(uuid);
  parentArg(parent);
  const devs = listDefinedDevices(env, { uuid, parent }, hooks);
  if (devs.size === 0) {
    const what = parent === undefined ? uuid : `${parent}/${uuid}`;
    throw new MdevError('NOT_DEFINED', `Mediated device ${what} is not defined`);
  }
  if (devs.size > 1) {
    throw new MdevError(
      'AMBIGUOUS',
      parent === undefined
        ? `Multiple definitions found for ${uuid}, specify a parent`
        : `Multiple definitions found for ${parent}/${uuid}`,
    );
  }
  const [p, list] = [...devs][0]!;
  if (list.length > 1)
    throw new MdevError('AMBIGUOUS', `Multiple definitions found for ${p}/${uuid}`);
  return list[0]!;
}

// ---------------------------------------------------------------- define / undefine / modify

/** Definition content read from a JSON document (`--jsonfile`). */
export interface JsonSource {
  /** How to name it in messages (the file path). */
  readonly name: string;
  /** Reads the document; called only once the checks before it passed. */
  readonly read: () => string;
}

export interface DefineRequest {
  readonly uuid?: string | undefined;
  readonly parent?: string | undefined;
  readonly type?: string | undefined;
  readonly auto?: boolean | undefined;
  readonly json?: JsonSource | undefined;
}

function readJsonSource(src: JsonSource): unknown {
  let text: string;
  try {
    text = src.read();
  } catch (err) {
    throw new MdevError('IO', `Unable to read jsonfile "${src.name}"`, { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new MdevError('INVALID_CONFIG', `Invalid JSON in "${src.name}"`, {
      cause: new Error((err as Error).message),
    });
  }
}

function applyJson(d: Draft, parent: string, src: JsonSource, hooks: HostHooks): void {
  const json = readJsonSource(src);
  try {
    loadFromJson(d, parent, json, hooks);
  } catch (err) {
    throw new MdevError('INVALID_CONFIG', `Invalid device definition in "${src.name}"`, {
      cause: err,
    });
  }
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
        'CONFLICT',
        `Device type cannot be specified separately from "${req.json.name}"`,
      );
    }
    if (req.parent === undefined) {
      throw new MdevError(
        'NO_PARENT',
        `Parent device required to define device via "${req.json.name}"`,
      );
    }
    if (listDefinedDevices(env, { uuid: d.uuid, parent: req.parent }, hooks).size > 0) {
      throw new MdevError(
        'ALREADY_DEFINED',
        `Cowardly refusing to overwrite existing config for ${req.parent}/${d.uuid}`,
      );
    }
    applyJson(d, req.parent, req.json, hooks);
  } else {
    if (req.uuid !== undefined) {
      loadFromSysfs(env.port, d);
      if (req.parent === undefined && (!d.active || req.type !== undefined)) {
        throw new MdevError('NO_PARENT', 'No parent specified');
      }
    }
    d.start = req.auto === true ? 'auto' : 'manual';
    if (req.parent !== undefined) d.parent = req.parent;
    if (req.type !== undefined) d.type = req.type;
    if (d.parent === undefined) throw new MdevError('NO_PARENT', 'No parent specified');
    if (d.type === undefined) throw new MdevError('NO_TYPE', 'No type specified');
    if (isDefined(env, d)) {
      throw new MdevError('ALREADY_DEFINED', `Device ${d.uuid} on ${d.parent} already defined`);
    }
  }
  if (d.active) {
    addAttributes(
      d,
      getAttributesFromCallouts(env, calloutView(d)!, hooks.calloutStderr ?? (() => {})),
    );
  }
  invoke(env, 'define', d, hooks, () => storeConfig(env, d));
  return { ...freeze(d, true), generatedUuid: req.uuid === undefined };
}

function storeConfig(env: Environment, d: Draft): void {
  try {
    writeConfig(env.configDir, d.parent!, d.uuid, configOf(d));
  } catch (err) {
    throw new MdevError('IO', `Failed to write config for device ${d.uuid}`, { cause: err });
  }
}

/**
 * Remove the definitions of `uuid` (on every parent unless `parent` is
 * given). Returns the removed definitions; throws NOT_DEFINED when none matched.
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
  if (devs.size === 0) throw new MdevError('NOT_DEFINED', 'No devices match the specified uuid');
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
  req = { ...req, uuid: uuidArg(req.uuid), parent: parentArg(req.parent) };
  let d: Draft;
  if (req.json !== undefined) {
    // As mdevctl 1.3: the document is the whole new definition, stored as is.
    if (req.parent === undefined) {
      throw new MdevError('NO_PARENT', 'Parent device required to modify device via json file');
    }
    d = draft(req.uuid);
    applyJson(d, req.parent, req.json, hooks);
  } else {
    d = toDraft(getDefinedDevice(env, req.uuid, req.parent, hooks));
  }
  if (req.type !== undefined) d.type = req.type;
  if (req.start !== undefined) d.start = req.start;
  if (req.addAttr !== undefined) {
    const at = req.index ?? d.attrs.length;
    if (at > d.attrs.length)
      throw new MdevError('INVALID_INDEX', `Attribute index ${at} is invalid`);
    d.attrs.splice(at, 0, { name: req.addAttr.name, value: req.addAttr.value });
  } else if (req.delAttr === true) {
    if (req.index === undefined) d.attrs.pop();
    else if (req.index >= d.attrs.length) {
      // mdevctl 1.2.0 accepts index == length here and then panics
      throw new MdevError('INVALID_INDEX', `Attribute index ${req.index} is invalid`);
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
    throw new MdevError('NOT_ACTIVE', `Mediated device ${what} is not active`);
  }
  const next = draft(uuid);
  next.active = true;
  applyJson(next, running.parent!, req.json, hooks);
  if (next.type !== running.type)
    throw new MdevError('CONFLICT', "'type' cannot be changed on active mdev");
  if (req.alsoDefined === true) {
    const def = getDefinedDevice(env, uuid, running.parent, hooks);
    if (def.type !== next.type) {
      throw new MdevError('CONFLICT', "'type' of active and defined mdev does not match");
    }
  }
  try {
    invokeLiveModify(env, calloutView(next)!, hooks.calloutStderr ?? (() => {}));
  } catch (err) {
    throw new MdevError('CALLOUT', (err as Error).message);
  }
  if (req.alsoDefined === true) invoke(env, 'modify', next, hooks, () => storeConfig(env, next));
  return freeze(next, isDefined(env, next));
}

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

/** Canonical form of a UUID in any spelling mdevctl accepts, or undefined. */
export { parseUuid } from './uuid-forms.js';
/** Parse one definition file's text (exposed for tools that validate configs). */
export { parseConfig };
