import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { replaceFile } from './replace-file.js';

/**
 * The driver's checkpoint: the claims it prepared and what it answered,
 * in <plugins dir>/<driver>/checkpoint.json, replaced atomically (temp
 * file, rename: see replace-file.ts for why without fsync) after every
 * change.
 *
 * It lets a second NodePrepareResources of a claim (kubelet retries, or
 * restarts and asks again) answer the same without touching the host, and
 * lets NodeUnprepareResources find the CDI spec and metadata files a claim
 * got. It is not the truth about devices: the ownership record says which
 * devices a claim made (written before each create), and sysfs says which
 * exist. A crash between creating a device and writing the checkpoint
 * leaves a device the record names and the checkpoint does not; the next
 * Prepare of the claim adopts it, the next Unprepare removes it.
 */

export interface PreparedDevice {
  /** The allocation's request, pool and device. */
  readonly request: string;
  readonly pool: string;
  readonly device: string;
  /** What the host got for it. */
  readonly kind: 'mdev' | 'matrix';
  readonly uuid: string;
  readonly parent: string;
  readonly type: string;
  readonly cdiDeviceIds: readonly string[];
}

export interface PreparedClaim {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly devices: readonly PreparedDevice[];
  /** Files written for the claim (CDI specs, device metadata), removed by Unprepare. */
  readonly files: readonly string[];
  readonly preparedAt: string;
}

interface CheckpointFile {
  readonly version: 1;
  readonly claims: readonly PreparedClaim[];
}

export class Checkpoint {
  readonly #claims = new Map<string, PreparedClaim>();

  private constructor(readonly path: string) {}

  /** Read the checkpoint at `path` (empty when there is none; a damaged one is set aside). */
  static open(path: string, log: (line: string) => void = () => {}): Checkpoint {
    const c = new Checkpoint(path);
    let text: string | undefined;
    try {
      text = fs.readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text !== undefined) {
      try {
        const doc = JSON.parse(text) as CheckpointFile;
        if (doc.version !== 1 || !Array.isArray(doc.claims))
          throw new Error('not a version 1 checkpoint');
        for (const claim of doc.claims) c.#claims.set(claim.uid, claim);
      } catch (err) {
        // The record and sysfs still say what exists; keep the bad file for a person.
        const aside = `${path}.unreadable-${Date.now()}`;
        fs.renameSync(path, aside);
        log(`checkpoint ${path} cannot be read (${(err as Error).message}); moved to ${aside}`);
      }
    }
    return c;
  }

  get(uid: string): PreparedClaim | undefined {
    return this.#claims.get(uid);
  }

  claims(): PreparedClaim[] {
    return [...this.#claims.values()];
  }

  put(claim: PreparedClaim): void {
    this.#claims.set(claim.uid, claim);
    this.#save();
  }

  delete(uid: string): void {
    if (!this.#claims.delete(uid)) return;
    this.#save();
  }

  #save(): void {
    fs.mkdirSync(nodePath.dirname(this.path), { recursive: true, mode: 0o750 });
    const doc: CheckpointFile = {
      version: 1,
      claims: [...this.#claims.values()].sort((a, b) => (a.uid < b.uid ? -1 : 1)),
    };
    replaceFile(this.path, `${JSON.stringify(doc, null, 1)}\n`);
  }
}
