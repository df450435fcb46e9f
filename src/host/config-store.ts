import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { MdevError } from './errors.js';
import { checkComponent } from './paths.js';
import { parseJson } from './json-syntax.js';

/**
 * Persistent mdev definitions, stored as mdevctl 1.2.0 stores them:
 *
 *     <configDir>/<parent>/<uuid>
 *     {
 *       "mdev_type": "i915-GVTg_V5_4",
 *       "start": "auto" | "manual",
 *       "attrs": [ { "name": "value" }, ... ]
 *     }
 *
 * pretty-printed with two spaces and no trailing newline (serde_json's
 * to_string_pretty with key order preserved — byte-identical to
 * JSON.stringify(v, null, 2)).
 *
 * Reading follows mdevctl's rules, including the forgiving ones: `start`
 * other than exactly "auto" means manual, a missing or null `attrs` means
 * none, unknown keys are dropped. Writing is atomic: a temp file in the same
 * directory, fsync, rename over the old file, fsync of the directory — a
 * crash leaves either the old definition or the new one, never a torn file.
 * Temp files are named `.#<uuid>.<pid>.<n>`; listings skip names starting
 * with ".#" without a warning, since they can only be debris of a crash.
 */

/** One attribute of a definition: a sysfs file name under the device and the value to write. */
export interface MdevAttribute {
  readonly name: string;
  readonly value: string;
}

export type StartMode = 'auto' | 'manual';

/** A definition's content, without where it is stored. */
export interface MdevConfig {
  readonly mdevType: string;
  readonly start: StartMode;
  readonly attrs: readonly MdevAttribute[];
}

/**
 * A definition file's content is not a valid definition (code
 * `invalid-config`); `path` says which file (when it is one).
 */
export class ConfigError extends MdevError {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    readonly path?: string,
  ) {
    super('invalid-config', path === undefined ? message : `${message} in ${path}`, {
      context: { path },
    });
  }
}

/** Prefix of the temp files of atomic writes. */
export const TEMP_PREFIX = '.#';

/**
 * What mdevctl manages to read from a parsed JSON value, in its order: a
 * definition missing `mdev_type` or `start` yields nothing; otherwise type
 * and start mode are taken, then attributes one by one until the first bad
 * one. `error` says why it stopped early. mdevctl's listing of active devices
 * uses this partial result when a definition is broken, so it is exposed.
 */
export interface PartialConfig {
  mdevType?: string;
  start?: StartMode;
  attrs: MdevAttribute[];
  error?: string;
}

export function readConfigValue(json: unknown): PartialConfig {
  const out: PartialConfig = { attrs: [] };
  const obj = json !== null && typeof json === 'object' && !Array.isArray(json) ? json : {};
  const get = (k: string): unknown => (obj as Record<string, unknown>)[k];
  const type = get('mdev_type');
  const start = get('start');
  if (type === undefined || type === null || start === undefined || start === null) {
    out.error = 'invalid json';
    return out;
  }
  if (typeof type !== 'string') {
    // mdevctl 1.2.0 panics here; say what is wrong instead.
    out.error = 'invalid json: mdev_type is not a string';
    return out;
  }
  out.mdevType = type;
  out.start = start === 'auto' ? 'auto' : 'manual';
  const attrs = get('attrs');
  if (attrs === undefined || attrs === null) return out;
  if (!Array.isArray(attrs)) {
    out.error = 'attributes field is not an array';
    return out;
  }
  for (const attr of attrs) {
    if (attr === null || typeof attr !== 'object' || Array.isArray(attr)) {
      out.error = 'invalid JSON format for attribute: not an object';
      return out;
    }
    const entries = Object.entries(attr as Record<string, unknown>);
    if (entries.length !== 1) {
      out.error = 'invalid JSON format for attribute: too many fields';
      return out;
    }
    const [name, value] = entries[0]!;
    if (typeof value !== 'string') {
      // mdevctl 1.2.0 panics here too; 1.4.0 says this (the key in Rust's
      // {:?}, the value as compact JSON).
      out.error = `invalid JSON format for attribute {${JSON.stringify(name)}, ${JSON.stringify(value)}}: value must be of type str`;
      return out;
    }
    out.attrs.push({ name, value });
  }
  return out;
}

/** Parse definition text; throws ConfigError (naming `path` when given). */
export function parseConfig(text: string, path?: string): MdevConfig {
  let json: unknown;
  try {
    json = parseJson(text);
  } catch (err) {
    throw new ConfigError(`malformed JSON (${(err as Error).message})`, path);
  }
  const partial = readConfigValue(json);
  if (partial.error !== undefined) throw new ConfigError(partial.error, path);
  return { mdevType: partial.mdevType!, start: partial.start!, attrs: partial.attrs };
}

/** The JSON value mdevctl writes (and prints with `list --dumpjson -u`). */
export function configToJson(config: MdevConfig): {
  mdev_type: string;
  start: StartMode;
  attrs: Record<string, string>[];
} {
  return {
    mdev_type: config.mdevType,
    start: config.start,
    attrs: config.attrs.map((a) => ({ [a.name]: a.value })),
  };
}

/** The exact bytes of a definition file. */
export function formatConfig(config: MdevConfig): string {
  return JSON.stringify(configToJson(config), null, 2);
}

/** <configDir>/<parent>/<uuid>, with both names checked to stay one path component. */
export function configPath(configDir: string, parent: string, uuid: string): string {
  return nodePath.join(
    configDir,
    checkComponent(parent, 'parent'),
    checkComponent(uuid, 'device UUID'),
  );
}

let tempCounter = 0;

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Write `data` to `path` atomically: temp file beside it, fsync, rename,
 * fsync the directory. The directory must exist.
 */
export function writeFileAtomic(path: string, data: string): void {
  const dir = nodePath.dirname(path);
  const tmp = nodePath.join(
    dir,
    `${TEMP_PREFIX}${nodePath.basename(path)}.${process.pid}.${tempCounter++}`,
  );
  const fd = fs.openSync(tmp, 'wx', 0o644);
  try {
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, path);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dir);
}

/** Create <configDir>/<parent> if needed (durably: the new entry is fsynced into configDir). */
export function ensureParentDir(configDir: string, parent: string): string {
  const dir = nodePath.join(configDir, checkComponent(parent, 'parent'));
  if (!fs.existsSync(dir)) {
    fs.mkdirSync(dir, { recursive: true });
    fsyncDir(configDir);
  }
  return dir;
}

/** Store a definition atomically, creating the parent's directory if needed. */
export function writeConfig(
  configDir: string,
  parent: string,
  uuid: string,
  config: MdevConfig,
): string {
  ensureParentDir(configDir, parent);
  const path = configPath(configDir, parent, uuid);
  writeFileAtomic(path, formatConfig(config));
  return path;
}

/** Remove a definition (the parent directory stays, as with mdevctl). */
export function deleteConfig(configDir: string, parent: string, uuid: string): void {
  const path = configPath(configDir, parent, uuid);
  fs.unlinkSync(path);
  fsyncDir(nodePath.dirname(path));
}

/** Read and parse one definition; ConfigError names the file. */
export function readConfig(configDir: string, parent: string, uuid: string): MdevConfig {
  const path = configPath(configDir, parent, uuid);
  return parseConfig(fs.readFileSync(path, 'utf8'), path);
}
