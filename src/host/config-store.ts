import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { ErrnoError } from '../common/errno.js';
import {
  readFdLimited as readFdBounded,
  readFileLimited as readFileBounded,
  sizeWords,
} from '../common/read-limited.js';
import { MdevError } from './errors.js';
import { parseJson } from './json-syntax.js';
import {
  checkAttribute,
  checkComponent,
  checkNoControlCharacters,
  controlCharacterProblem,
  printable,
  printableJson,
} from './paths.js';

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
 * with ".#" without a warning, since they can only be debris of a crash, and
 * the next write in the same directory removes the stale ones
 * (cleanStaleTempFiles).
 *
 * The config directory is trusted only as far as its own entries go: a
 * definition or parent directory that is a symbolic link is never followed
 * (mdevctl ignores them too), definitions are opened with O_NOFOLLOW, and no
 * error ever quotes a file that is not a valid definition (it may be a link
 * someone planted to /etc/shadow): JSON errors name a line and column.
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
 * `invalid-config`, or `control-character` when that is why); `path` says
 * which file (when it is one).
 */
export class ConfigError extends MdevError {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    readonly path?: string,
    code: 'invalid-config' | 'control-character' = 'invalid-config',
  ) {
    super(code, path === undefined ? message : `${message} in ${path}`, {
      context: { path },
    });
  }
}

/** Prefix of the temp files of atomic writes. */
export const TEMP_PREFIX = '.#';

/** The config directory's own entry: mdevctl's callout and notifier scripts. */
export const SCRIPTS_DIR = 'scripts.d';

/** The most a JSON document (a definition, `--jsonfile`) may hold: 1 MiB; a definition is a few hundred bytes. */
export const MAX_JSON_BYTES = 1 << 20;

/**
 * A parent name as a directory of the config dir: one path component (see
 * checkComponent), and none of the directory's own entries — `scripts.d`,
 * or a name of the temp files of atomic writes — since a definition there
 * could never be listed or removed, and the temp-file cleanup would take it
 * for debris (code `reserved-name`).
 */
export function checkParentDirName(parent: string): string {
  checkComponent(parent, 'parent');
  if (parent === SCRIPTS_DIR) {
    throw new MdevError(
      'reserved-name',
      `Refusing parent name "${SCRIPTS_DIR}": the config directory keeps its callout and notifier scripts there, so a definition under it could never be listed or removed`,
      { context: { parent } },
    );
  }
  if (parent.startsWith(TEMP_PREFIX)) {
    throw new MdevError(
      'reserved-name',
      `Refusing parent name ${printable(parent)}: names beginning with "${TEMP_PREFIX}" are the config directory's temporary files`,
      { context: { parent } },
    );
  }
  return parent;
}

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
  /** Set when `error` is about a control character. */
  errorCode?: 'control-character';
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
  const typeProblem = controlCharacterProblem(type, 'mdev_type');
  if (typeProblem !== undefined) {
    out.error = typeProblem;
    out.errorCode = 'control-character';
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
  // Attributes are named by their place in the list, never by what they
  // hold: the document is not valid, and its words are nobody's business.
  for (const [index, attr] of (attrs as unknown[]).entries()) {
    if (attr === null || typeof attr !== 'object' || Array.isArray(attr)) {
      out.error = `invalid JSON format for attribute ${index}: not an object`;
      return out;
    }
    const entries = Object.entries(attr as Record<string, unknown>);
    if (entries.length !== 1) {
      out.error = `invalid JSON format for attribute ${index}: too many fields`;
      return out;
    }
    const [name, value] = entries[0]!;
    if (typeof value !== 'string') {
      // mdevctl 1.2.0 panics here too; 1.4.0 says this (the key in Rust's
      // {:?}, the value as compact JSON), escaped so no control character
      // of the file reaches a terminal.
      out.error = `invalid JSON format for attribute {${printable(name)}, ${printableJson(value)}}: value must be of type str`;
      return out;
    }
    const problem =
      controlCharacterProblem(name, `the name of attribute ${index}`) ??
      controlCharacterProblem(value, `the value of attribute ${index}`);
    if (problem !== undefined) {
      out.error = problem;
      out.errorCode = 'control-character';
      return out;
    }
    out.attrs.push({ name, value });
  }
  return out;
}

/**
 * JSON.parse, failing with a ConfigError that says where the text stops
 * being JSON in serde_json's words (json-syntax.ts), never what it holds
 * (V8's own message quotes it).
 */
export function parseJsonText(text: string, path?: string): unknown {
  try {
    return parseJson(text);
  } catch (err) {
    throw new ConfigError(`malformed JSON (${(err as Error).message})`, path);
  }
}

/** Parse definition text; throws ConfigError (naming `path` when given). */
export function parseConfig(text: string, path?: string): MdevConfig {
  const partial = readConfigValue(parseJsonText(text, path));
  if (partial.error !== undefined) throw new ConfigError(partial.error, path, partial.errorCode);
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
  return nodePath.join(configDir, checkParentDirName(parent), checkComponent(uuid, 'device UUID'));
}

// ---------------------------------------------------------------- reading files

const tooLarge = (name: string, limit = MAX_JSON_BYTES): MdevError =>
  new MdevError(
    'file-too-large',
    `${name} is larger than ${sizeWords(limit)} (${limit} bytes)${limit === MAX_JSON_BYTES ? '; a definition takes a few hundred' : ''}`,
    { context: { path: name } },
  );

/** A bounded read's EFBIG as the library's `file-too-large`; other errors as they are. */
function limited<T>(name: string, limit: number, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof ErrnoError && err.code === 'EFBIG') throw tooLarge(name, limit);
    throw err;
  }
}

/**
 * Read `fd` to its end, at most `limit` bytes: /dev/zero, an endless pipe or
 * a huge file end in a `file-too-large` error naming `name`, not in a
 * process that reads until it aborts.
 */
export function readFdLimited(fd: number, name: string, limit = MAX_JSON_BYTES): string {
  return limited(name, limit, () => readFdBounded(fd, name, limit));
}

/** The file at `path` (links followed: the user named it), at most `limit` bytes. */
export function readFileLimited(path: string, name = path, limit = MAX_JSON_BYTES): string {
  return limited(name, limit, () => readFileBounded(path, limit, name));
}

/** A definition is opened as what it is, never through a link, never waiting on a FIFO. */
const DEFINITION_OPEN_FLAGS =
  fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

// Allocated at the first read, not at start-up: most commands read no definition.
let readBuffer: Buffer | undefined;

/**
 * Read a definition file with one open, read and close: no fstat, no
 * options parsing and no fresh buffer per file, which counts when a listing
 * reads ten thousand of them. A link fails with ELOOP (O_NOFOLLOW), a FIFO
 * or device put there does not block (O_NONBLOCK), and a file over 1 MiB is
 * `file-too-large`.
 */
export function readDefinitionText(path: string): string {
  let buf = (readBuffer ??= Buffer.allocUnsafe(64 * 1024));
  const fd = fs.openSync(path, DEFINITION_OPEN_FLAGS);
  try {
    let n = 0;
    for (;;) {
      const room = buf.length - n;
      const got = fs.readSync(fd, buf, n, room, null);
      n += got;
      // A regular file on Linux reads short only at its end: no second read
      // just to see 0 (one syscall less per definition).
      if (got < room) break;
      if (n > MAX_JSON_BYTES) throw tooLarge(path);
      if (n === buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger);
        buf = readBuffer = bigger;
      }
    }
    if (n > MAX_JSON_BYTES) throw tooLarge(path);
    return buf.toString('utf8', 0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/** Whether `path` is a definition: a regular file itself, not a link to one. */
export function isDefinitionFile(path: string): boolean {
  return fs.lstatSync(path, { throwIfNoEntry: false })?.isFile() === true;
}

/** The error for a link found where a definition or parent directory belongs. */
export function configSymlinkError(
  path: string,
  context: { uuid?: string; parent?: string },
): MdevError {
  return new MdevError(
    'config-symlink',
    `${path} is a symbolic link; links in the config directory are not followed`,
    { context: { ...context, path } },
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
  cleanStaleTempFiles(dir);
}

// ---------------------------------------------------------------- crash debris

/** `.#<name>.<pid>.<n>`: the temp files writeFileAtomic makes. */
const TEMP_NAME = /^\.#([^/]+)\.([1-9][0-9]{0,9})\.(0|[1-9][0-9]{0,15})$/;

/**
 * How old a temp file must be before it counts as debris. A write holds its
 * temp file for milliseconds (fsync included); the margin covers a writer
 * in another PID namespace, whose PID means nothing here.
 */
export const STALE_TEMP_AGE_MS = 5_000;

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Remove the debris of interrupted atomic writes in `dir`: temp files that
 * are ours and stale — named as writeFileAtomic names them, a regular file
 * (never a link), owned by this process's user, written by a process that
 * no longer exists, and older than STALE_TEMP_AGE_MS. Anything else that
 * starts with ".#" is left alone. Runs after every write in a directory
 * (the writer may write there anyway); best effort, never fails. Returns
 * the names it removed.
 */
export function cleanStaleTempFiles(dir: string, now = Date.now()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return removed;
  }
  const uid = process.geteuid?.();
  for (const name of names) {
    if (!name.startsWith(TEMP_PREFIX)) continue;
    const m = TEMP_NAME.exec(name);
    if (m === null) continue;
    const path = nodePath.join(dir, name);
    try {
      const st = fs.lstatSync(path);
      if (!st.isFile() || (uid !== undefined && st.uid !== uid)) continue;
      if (now - st.mtimeMs < STALE_TEMP_AGE_MS) continue;
      if (processAlive(Number(m[2]))) continue;
      fs.unlinkSync(path);
      removed.push(name);
    } catch {
      // gone already, or not ours to remove
    }
  }
  return removed;
}

/**
 * The same for every parent directory of a config dir (links and scripts.d
 * left alone), for a program that starts where a crash may have left
 * debris: `lab serve` does, the agent may. Returns the paths removed.
 */
export function cleanConfigDirDebris(configDir: string, now = Date.now()): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(configDir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.isDirectory() && e.name !== SCRIPTS_DIR)
    .flatMap((e) =>
      cleanStaleTempFiles(nodePath.join(configDir, e.name), now).map((n) =>
        nodePath.join(configDir, e.name, n),
      ),
    );
}

/**
 * Create <configDir>/<parent> if needed (durably: the new entry is fsynced
 * into configDir). A parent entry that is a link is refused
 * (`config-symlink`): a definition written through it would land wherever
 * the link leads.
 */
export function ensureParentDir(configDir: string, parent: string): string {
  const dir = nodePath.join(configDir, checkParentDirName(parent));
  const st = fs.lstatSync(dir, { throwIfNoEntry: false });
  if (st?.isSymbolicLink() === true) throw configSymlinkError(dir, { parent });
  if (st === undefined) {
    fs.mkdirSync(dir, { recursive: true });
    fsyncDir(configDir);
  }
  return dir;
}

/**
 * What no definition mdevkit writes may hold, whoever asks (the commands,
 * the agent, the desired-state engine): a type or attribute with a control
 * character, an attribute name that leaves the device or is a file of the
 * device core (codes `control-character`, `invalid-name`, `core-attribute`).
 */
export function checkConfigContent(config: MdevConfig): void {
  checkNoControlCharacters(config.mdevType, 'mdev_type', { type: config.mdevType });
  for (const a of config.attrs) checkAttribute(a);
}

/** Store a definition atomically, creating the parent's directory if needed. */
export function writeConfig(
  configDir: string,
  parent: string,
  uuid: string,
  config: MdevConfig,
): string {
  checkConfigContent(config);
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
  cleanStaleTempFiles(nodePath.dirname(path));
}

/** Read and parse one definition (never through a link); ConfigError names the file. */
export function readConfig(configDir: string, parent: string, uuid: string): MdevConfig {
  const path = configPath(configDir, parent, uuid);
  return parseConfig(readDefinitionText(path), path);
}
