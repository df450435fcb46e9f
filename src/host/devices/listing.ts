/** The listings (`mdevctl list`, `list -d`, `types`) and the lookup of one definition. */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { ErrnoError } from '../../common/errno.js';
import { CalloutTimeoutError, rustDebug, type CalloutContext } from '../callouts.js';
import { SCRIPTS_DIR, TEMP_PREFIX, configSymlinkError, readConfigValue } from '../config-store.js';
import type { Environment } from '../environment.js';
import { MDEV_BUS_DEVICES, MDEV_CLASS } from '../paths.js';
import { indexTypeDevices, type TypeDevicesIndex } from '../sysfs-model.js';
import { parseUuid } from '../uuid-forms.js';
import { parentArg, uuidArg } from './args.js';
import { runAsync, runSync, type Steps } from '../script-runner.js';
import {
  addAttributes,
  applySysfs,
  calloutContext,
  calloutFor,
  draft,
  freeze,
  loadFromJson,
  parseJsonText,
  readSmallFile,
  runnerOptions,
  sortDevices,
  sysfsState,
} from './draft.js';
import { MdevError, codeOf } from '../errors.js';
import { osErrorText } from './errors.js';
import { existsInSysfs, isSysfsDir, parseI32, sysfsError } from './sysfs.js';
import {
  noHooks,
  type DeviceFilter,
  type HostHooks,
  type MdevDevice,
  type MdevTypeEntry,
} from './types.js';

/** Below this many devices the index costs more readdirs than it saves readlinks. */
const TYPE_INDEX_THRESHOLD = 256;

/**
 * Active devices, as mdevctl 1.4 lists them: each running device on its
 * parent with its type; its start mode from its definition on that parent
 * (when that can be read); its attributes only as its callout script
 * reports them (`get attributes`), never the definition's. A bus entry
 * that leads nowhere or whose device cannot be resolved is left out;
 * entries that are not UUIDs are skipped with a warning.
 */
export function* listActiveDevicesSteps(
  env: Environment,
  filter: DeviceFilter = {},
  hooks: HostHooks = noHooks,
  ctx: CalloutContext = calloutContext(env, hooks),
): Steps<Map<string, MdevDevice[]>> {
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
      const dir = nodePath.join(env.configDir, parent);
      try {
        // A parent directory that is a link is not followed (as list -d).
        set = fs.lstatSync(dir).isDirectory() ? new Set(fs.readdirSync(dir)) : null;
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
      hooks.warn?.(`Can't determine uuid for file '${name}'`, 'listing');
      continue;
    }
    if (filter.uuid !== undefined && filter.uuid !== uuid) continue;
    let where;
    try {
      where = sysfsState(port, uuid, typeDirs, typeIndex);
    } catch {
      continue; // there, but its parent or type cannot be resolved
    }
    if (where === undefined) continue; // gone, or never a whole device
    if (filter.parent !== undefined && filter.parent !== where.parent) continue;
    const d = draft(uuid);
    applySysfs(d, where);
    const defined = definedIn(where.parent)?.has(uuid) === true;
    // readSmallFile opens with O_NOFOLLOW: a definition that is a link is
    // marked defined (the name is there) but nothing is read through it.
    if (defined) d.start = startModeOf(`${env.configDir}/${where.parent}/${uuid}`) ?? 'manual';
    callouts ??= ctx.hasCallouts();
    if (callouts) {
      try {
        addAttributes(d, yield* calloutFor(ctx, d).getAttributes());
      } catch (err) {
        // Attributes are optional in a listing; a script out of time is worth a word.
        if (err instanceof CalloutTimeoutError) hooks.warn?.(err.message, 'callouts');
        else if (!(err instanceof MdevError)) throw err;
      }
    }
    let list = out.get(where.parent);
    if (list === undefined) out.set(where.parent, (list = []));
    list.push(freeze(d, defined));
  }
  return sortDevices(out);
}

/** `listActiveDevicesSteps`, its callouts run synchronously. */
export function listActiveDevices(
  env: Environment,
  filter: DeviceFilter = {},
  hooks: HostHooks = noHooks,
): Map<string, MdevDevice[]> {
  return runSync(listActiveDevicesSteps(env, filter, hooks), runnerOptions(hooks));
}

/** `listActiveDevicesSteps`, its callouts run without blocking the event loop. */
export function listActiveDevicesAsync(
  env: Environment,
  filter: DeviceFilter = {},
  hooks: HostHooks = noHooks,
): Promise<Map<string, MdevDevice[]>> {
  return runAsync(listActiveDevicesSteps(env, filter, hooks), runnerOptions(hooks));
}

/**
 * The start mode a definition file gives, as mdevctl reads it for a
 * listing of running devices: undefined when the file cannot be read or is
 * not a whole definition (the device then shows as manual).
 */
function startModeOf(path: string): 'auto' | 'manual' | undefined {
  try {
    const partial = readConfigValue(JSON.parse(readSmallFile(path)));
    return partial.error === undefined ? partial.start : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The running device `uuid` (on `parent`, when given), as `list` shows it
 * (with its callout attributes): mdevctl's get_active_device.
 */
export function* getActiveDeviceSteps(
  env: Environment,
  uuid: string,
  parent: string | undefined,
  hooks: HostHooks,
  ctx: CalloutContext,
): Steps<MdevDevice> {
  const devs = yield* listActiveDevicesSteps(env, { uuid, parent }, hooks, ctx);
  if (devs.size === 0) {
    const what = parent === undefined ? uuid : `${parent}/${uuid}`;
    throw new MdevError('not-active', `Mediated device ${what} is not active`, {
      context: { uuid, parent },
    });
  }
  if (devs.size > 1) {
    throw new MdevError('ambiguous', `Multiple parents found for ${uuid}. System error?`, {
      context: { uuid },
    });
  }
  return [...devs.values()][0]![0]!;
}

/**
 * Definitions, each with its active state. The first definition that cannot
 * be parsed fails the whole listing (as in mdevctl), with an error naming
 * the file, unless `hooks.invalidDefinition` takes it; definitions excluded
 * by the filter are never read. Files whose names are not UUIDs are skipped
 * with a warning.
 *
 * Links are never followed, as mdevctl ignores them too: a parent directory
 * that is a link is skipped with a warning, a definition that is a link is
 * skipped and reported to `hooks.invalidDefinition` (code `config-symlink`)
 * when given. Nothing is read through a link, so a link to /etc/shadow
 * shows nothing of it.
 */
export function listDefinedDevices(
  env: Environment,
  filter: DeviceFilter = {},
  hooks: HostHooks = noHooks,
): Map<string, MdevDevice[]> {
  return sortDevices(definitionsInDirectoryOrder(env, filter, hooks));
}

/**
 * The definitions by parent (parents sorted), each parent's in the order
 * its directory lists them: the order mdevctl autostarts them in.
 */
export function definitionsInDirectoryOrder(
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
    throw MdevError.causedBy(err, `Unable to read ${env.configDir}`, { path: env.configDir });
  }
  for (const pent of parents) {
    const parent = pent.name;
    if (parent === SCRIPTS_DIR) continue;
    if (filter.parent !== undefined && filter.parent !== parent) continue;
    const parentDir = nodePath.join(env.configDir, parent);
    if (pent.isSymbolicLink()) {
      hooks.warn?.(
        `Skipping "${parentDir}": a symbolic link; links in the config directory are not followed`,
        'listing',
      );
      continue;
    }
    if (!pent.isDirectory()) continue;
    let children: fs.Dirent[];
    try {
      children = fs.readdirSync(parentDir, { withFileTypes: true });
    } catch (err) {
      hooks.warn?.(
        `Unable to read directory ${rustDebug(parentDir)}: ${osErrorText(err)}`,
        'listing',
      );
      continue;
    }
    const names = new Set(children.map((c) => c.name));
    const list: MdevDevice[] = [];
    for (const child of children) {
      const path = `${parentDir}/${child.name}`;
      if (child.name.startsWith(TEMP_PREFIX)) continue; // debris of an interrupted atomic write
      const link = child.isSymbolicLink();
      if (!link && !child.isFile()) continue;
      const uuid = parseUuid(child.name);
      if (uuid === undefined) {
        if (!link) hooks.warn?.(`Can't determine uuid for file '${child.name}'`, 'listing');
        continue;
      }
      if (filter.uuid !== undefined && filter.uuid !== uuid) continue;
      if (link) {
        // Not a definition (mdevctl skips links silently); say why it is not listed.
        hooks.invalidDefinition?.(path, configSymlinkError(path, { uuid, parent }));
        continue;
      }
      let text: string;
      try {
        text = readSmallFile(path);
      } catch (err) {
        if (!(err instanceof MdevError)) {
          // Gone, unreadable, or swapped for a link since the listing (ELOOP).
          hooks.warn?.(`Unable to open file ${rustDebug(path)}: ${osErrorText(err)}`, 'listing');
          continue;
        }
        const error = new MdevError(err.code, `Invalid definition ${path}`, {
          cause: err,
          context: { path, uuid, parent },
        });
        if (hooks.invalidDefinition === undefined) throw error;
        hooks.invalidDefinition(path, error);
        continue;
      }
      const d = draft(uuid);
      try {
        loadFromJson(d, parent, parseJsonText(text, path), hooks, path);
      } catch (err) {
        const error = new MdevError(
          codeOf(err) === 'control-character' ? 'control-character' : 'invalid-config',
          `Invalid definition ${path}`,
          { cause: err, context: { path, uuid, parent } },
        );
        if (hooks.invalidDefinition === undefined) throw error;
        hooks.invalidDefinition(path, error);
        continue;
      }
      if (onBus.has(uuid)) {
        if (++probes === TYPE_INDEX_THRESHOLD && filter.uuid === undefined) {
          typeIndex = indexTypeDevices(env.port);
        }
        try {
          applySysfs(d, sysfsState(env.port, uuid, typeDirs, typeIndex));
        } catch (err) {
          hooks.warn?.(
            `For device ${uuid} a sysfs update caused the error: ${osErrorText(err)}`,
            'listing',
          );
        }
      }
      list.push(freeze(d, names.has(uuid)));
    }
    if (list.length > 0) out.set(parent, list);
  }
  return new Map([...out.keys()].sort().map((p) => [p, out.get(p)!]));
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
      throw sysfsError(`Unable to read the types of parent ${p} (${typesDir})`, err, {
        parent: p,
      });
    }
    const types: MdevTypeEntry[] = [];
    for (const id of ids) {
      const dir = `${typesDir}/${id}`;
      if (!isSysfsDir(port, dir)) {
        if (port.kind(dir) === null)
          throw sysfsError(`Unable to read ${dir}`, new ErrnoError('ENOENT'), {
            parent: p,
            type: id,
          });
        continue;
      }
      const read = (attr: string): string => {
        try {
          return port.read(`${dir}/${attr}`);
        } catch (err) {
          throw sysfsError(`Unable to read ${dir}/${attr}`, err, {
            parent: p,
            type: id,
            file: `${dir}/${attr}`,
          });
        }
      };
      // Optional attributes, as mdevctl's Path::exists then read, but
      // reading first: one call fewer per attribute, and the existence
      // check only when the read failed.
      const readIfPresent = (attr: string): string => {
        const file = `${dir}/${attr}`;
        try {
          return port.read(file).trim();
        } catch (err) {
          if (!existsInSysfs(port, file)) return '';
          throw sysfsError(`Unable to read ${file}`, err);
        }
      };
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

export function definedCount(map: Map<string, MdevDevice[]>): number {
  let n = 0;
  for (const list of map.values()) n += list.length;
  return n;
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
    throw new MdevError('not-defined', `Mediated device ${what} is not defined`, {
      context: { uuid, parent },
    });
  }
  if (devs.size > 1) {
    throw new MdevError(
      'ambiguous',
      parent === undefined
        ? `Multiple definitions found for ${uuid}, specify a parent`
        : `Multiple definitions found for ${parent}/${uuid}`,
      { context: { uuid, parent } },
    );
  }
  const [p, list] = [...devs][0]!;
  if (list.length > 1)
    throw new MdevError('ambiguous', `Multiple definitions found for ${p}/${uuid}`, {
      context: { uuid, parent: p },
    });
  return list[0]!;
}
