/**
 * The ownership record: who made each device mdevkit created — a
 * configuration ("config:default"), or a client of the CLI or the API
 * ("api:dashboard", "user:alice"). Apply, prune and every removal in
 * mdevkit consult it; a device it does not list is foreign and left alone.
 *
 * It lives beside mdevctl's config dir, in <configDir>/../mdevkit/ (so
 * /etc/mdevkit on a host, <root>/etc/mdevkit under --root), and survives
 * reboots like the definitions do:
 *
 *   owners.json     a snapshot, replaced atomically (temp file, fsync, rename)
 *   owners.journal  JSON lines appended since the snapshot, fsynced per batch
 *
 * Each journal line sets or forgets one UUID's entry, so replaying it is
 * idempotent: a crash between writing a new snapshot and emptying the
 * journal replays entries the snapshot already holds, to the same result.
 * A torn last line (a crash or power loss mid-append) is ignored; it can
 * only be an intent whose device was never created, since a batch is
 * fsynced before the creates it announces.
 *
 * One writer at a time: everything that changes the record holds the
 * host's apply lock (./lock.ts), because compaction rewrites it whole.
 *
 * Write-ahead: before apply creates a device it records the UUID as
 * `creating`; once the device and its definition exist, `owned`. After a
 * crash, a `creating` entry whose device exists is that owner's (so no
 * device is ever created unrecorded), and one whose device does not is
 * dropped.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { writeFileAtomic } from '../config-store.js';
import type { Environment } from '../environment.js';
import { DesiredError } from './errors.js';

export type OwnershipState = 'creating' | 'owned';

export interface OwnerEntry {
  readonly uuid: string;
  readonly parent: string;
  readonly type: string;
  /** "config:NAME", "api:CLIENT", "user:NAME". */
  readonly owner: string;
  readonly state: OwnershipState;
  /** ISO time the entry was made. */
  readonly since: string;
}

const SNAPSHOT = 'owners.json';
const JOURNAL = 'owners.journal';
const SNAPSHOT_VERSION = 1;
/** Compact when the journal has this many lines more than the record has entries. */
const COMPACT_SLACK = 64;

/** <configDir>/../mdevkit: where mdevkit keeps its own state for a host. */
export function stateDirOf(env: Pick<Environment, 'configDir'>): string {
  return nodePath.join(nodePath.dirname(env.configDir), 'mdevkit');
}

/** An owner name for the CLI or API: "config:NAME" and the like, one line of printable text. */
export function checkOwnerName(owner: string): string {
  if (!/^[a-z]+:[A-Za-z0-9@._:-]{1,128}$/.test(owner)) {
    throw new DesiredError(
      'not-owner',
      `invalid owner ${JSON.stringify(owner)}: expected KIND:NAME such as config:default or api:dashboard`,
      { owner },
    );
  }
  return owner;
}

export const configOwner = (name: string): string => `config:${name}`;

type JournalLine = { op: 'set'; e: OwnerEntry } | { op: 'forget'; uuid: string };

function isEntry(v: unknown): v is OwnerEntry {
  const e = v as Record<string, unknown> | null;
  return (
    e !== null &&
    typeof e === 'object' &&
    typeof e['uuid'] === 'string' &&
    typeof e['parent'] === 'string' &&
    typeof e['type'] === 'string' &&
    typeof e['owner'] === 'string' &&
    (e['state'] === 'creating' || e['state'] === 'owned') &&
    typeof e['since'] === 'string'
  );
}

export class OwnershipRecord {
  readonly #dir: string;
  readonly #entries = new Map<string, OwnerEntry>();
  #journalLines = 0;
  #journalFd: number | undefined;

  private constructor(dir: string) {
    this.#dir = dir;
  }

  /** Where the files are. */
  get dir(): string {
    return this.#dir;
  }

  /** Read the record of a host (empty when none exists yet). */
  static open(env: Pick<Environment, 'configDir'>): OwnershipRecord {
    return OwnershipRecord.openDir(stateDirOf(env));
  }

  static openDir(dir: string): OwnershipRecord {
    const r = new OwnershipRecord(dir);
    r.#load();
    return r;
  }

  #load(): void {
    const snap = nodePath.join(this.#dir, SNAPSHOT);
    let text: string | undefined;
    try {
      text = fs.readFileSync(snap, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw this.#unusable(snap, err);
    }
    if (text !== undefined) {
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch (err) {
        throw this.#unusable(snap, err);
      }
      const devices = (doc as { devices?: unknown } | null)?.devices;
      if (!Array.isArray(devices)) throw this.#unusable(snap, new Error('no "devices" list'));
      for (const e of devices) if (isEntry(e)) this.#entries.set(e.uuid, e);
    }
    const jpath = nodePath.join(this.#dir, JOURNAL);
    let journal: string;
    try {
      journal = fs.readFileSync(jpath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw this.#unusable(jpath, err);
    }
    for (const line of journal.split('\n')) {
      if (line === '') continue;
      let j: JournalLine;
      try {
        j = JSON.parse(line) as JournalLine;
      } catch {
        continue; // a torn append: an intent whose create never ran
      }
      this.#journalLines++;
      if (j.op === 'set' && isEntry(j.e)) this.#entries.set(j.e.uuid, j.e);
      else if (j.op === 'forget' && typeof j.uuid === 'string') this.#entries.delete(j.uuid);
    }
  }

  #unusable(path: string, err: unknown): DesiredError {
    return new DesiredError(
      'record-unusable',
      `the ownership record ${path} cannot be read: ${(err as Error).message}`,
      { path },
      { cause: err },
    );
  }

  get(uuid: string): OwnerEntry | undefined {
    return this.#entries.get(uuid);
  }

  /** Every entry, sorted by UUID. */
  entries(): OwnerEntry[] {
    return [...this.#entries.values()].sort((a, b) =>
      a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0,
    );
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Record entries (state as given) durably, in one append and one fsync. */
  set(entries: readonly Omit<OwnerEntry, 'since'>[], since = new Date().toISOString()): void {
    if (entries.length === 0) return;
    const lines = entries.map((e) => {
      const full: OwnerEntry = {
        uuid: e.uuid,
        parent: e.parent,
        type: e.type,
        owner: e.owner,
        state: e.state,
        since: e.state === 'owned' ? (this.#entries.get(e.uuid)?.since ?? since) : since,
      };
      return { op: 'set', e: full } satisfies JournalLine;
    });
    this.#append(lines);
    for (const l of lines) this.#entries.set(l.e.uuid, l.e);
  }

  /** Forget UUIDs durably (their devices are gone). */
  forget(uuids: readonly string[]): void {
    const present = uuids.filter((u) => this.#entries.has(u));
    if (present.length === 0) return;
    this.#append(present.map((uuid) => ({ op: 'forget', uuid }) satisfies JournalLine));
    for (const u of present) this.#entries.delete(u);
  }

  #append(lines: readonly JournalLine[]): void {
    try {
      if (this.#journalFd === undefined) {
        this.#ensureDir();
        this.#journalFd = fs.openSync(nodePath.join(this.#dir, JOURNAL), 'a', 0o644);
      }
      // One write(2): lines of one batch land together or (torn) not at all.
      fs.writeSync(this.#journalFd, lines.map((l) => JSON.stringify(l) + '\n').join(''));
      fs.fsyncSync(this.#journalFd);
    } catch (err) {
      throw this.#unusable(nodePath.join(this.#dir, JOURNAL), err);
    }
    this.#journalLines += lines.length;
  }

  #ensureDir(): void {
    if (!fs.existsSync(this.#dir)) {
      fs.mkdirSync(this.#dir, { recursive: true, mode: 0o755 });
      const fd = fs.openSync(nodePath.dirname(this.#dir), 'r');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
  }

  /**
   * Fold the journal into a new snapshot once it holds more lines than the
   * snapshot would entries: a record is read by every plan, and a snapshot
   * reads faster than the journal that built it.
   */
  maybeCompact(): void {
    if (this.#journalLines > COMPACT_SLACK + this.#entries.size) this.compact();
  }

  /** Write the snapshot, then empty the journal (see the file comment for why the order is safe). */
  compact(): void {
    this.#ensureDir();
    // One entry per line: small, and still readable by a person.
    const lines = this.entries().map((e) => JSON.stringify(e));
    writeFileAtomic(
      nodePath.join(this.#dir, SNAPSHOT),
      `{"version":${SNAPSHOT_VERSION},"devices":[\n${lines.join(',\n')}\n]}\n`,
    );
    const jpath = nodePath.join(this.#dir, JOURNAL);
    this.close();
    if (fs.existsSync(jpath)) {
      const fd = fs.openSync(jpath, 'r+');
      try {
        fs.ftruncateSync(fd, 0);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
    this.#journalLines = 0;
  }

  close(): void {
    if (this.#journalFd !== undefined) {
      fs.closeSync(this.#journalFd);
      this.#journalFd = undefined;
    }
  }
}

// ---------------------------------------------------------------- drained parents

const DRAINED = 'drained.json';

/** Parents `mdevkit drain` took out of placement. */
export function readDrained(env: Pick<Environment, 'configDir'>): Set<string> {
  try {
    const v = JSON.parse(
      fs.readFileSync(nodePath.join(stateDirOf(env), DRAINED), 'utf8'),
    ) as unknown;
    return new Set(Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  } catch {
    return new Set();
  }
}

export function writeDrained(
  env: Pick<Environment, 'configDir'>,
  parents: ReadonlySet<string>,
): void {
  const dir = stateDirOf(env);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  writeFileAtomic(nodePath.join(dir, DRAINED), JSON.stringify([...parents].sort()) + '\n');
}
