/**
 * kill -9 during bursts of writes, then a restart (issue 12's suite): lanes
 * of workers (test/ctl/crash-safety-burst-worker.ts) define, replace and
 * undefine definitions through the host library as fast as they can, two
 * lanes sharing each parent directory, and are killed with SIGKILL at
 * random moments, over 200 times. After every kill:
 *
 * - nothing acknowledged is lost: every operation the worker reported done
 *   is on disk, byte for byte, and nothing else is — only the one operation
 *   in flight at the kill may have happened or not;
 * - nothing is torn: every definition reads as one of those whole documents;
 * - debris (the `.#` temp file of the write in flight) may remain, and the
 *   next writes in that directory remove it once it is stale.
 *
 * At the end, once the last debris is stale, a restart (the next command
 * that writes there) leaves no debris at all, and a listing shows exactly
 * the acknowledged state.
 *
 * test/ctl/crash-safety.test.ts complements this with 1040 kills of single
 * define/modify/undefine cycles, through the library and bin/mdevkit.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { build } from 'esbuild';
import { STALE_TEMP_AGE_MS, TEMP_PREFIX, formatConfig } from '../../src/host/config-store.js';
import { listDefinedDevices } from '../../src/host/devices.js';
import { environmentAt } from '../../src/host/environment.js';
import { tmpDir } from '../support/tmp.js';
import {
  PARENTS,
  TYPE,
  UUIDS_PER_LANE,
  laneParent,
  laneUuid,
} from './crash-safety-burst-worker.js';

const LANES = 4;
const KILLS = 240;
const MAX_DELAY_MS = 120;

const contentOf = (seq: number): string =>
  formatConfig({ mdevType: TYPE, start: 'manual', attrs: [{ name: 'seq', value: String(seq) }] });

interface Run {
  /** Complete lines the worker printed before it died. */
  readonly lines: string[];
}

/** Start a worker, let it write for a random while, SIGKILL it, collect what it said. */
function killDuringBurst(worker: string, root: string, lane: number, seq: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [worker, root, String(lane), String(seq), 'burst'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    let armed = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (!armed && out.includes('ready\n')) {
        armed = true;
        setTimeout(() => child.kill('SIGKILL'), Math.random() * MAX_DELAY_MS);
      }
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (signal !== 'SIGKILL')
        reject(new Error(`worker ended by itself (${code}): ${out.slice(-500)}`));
      else resolve({ lines: out.split('\n').slice(0, -1) });
    });
  });
}

function readDefinition(root: string, parent: string, uuid: string): string | undefined {
  try {
    return fs.readFileSync(path.join(root, 'etc/mdevctl.d', parent, uuid), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function debris(root: string): string[] {
  return PARENTS.flatMap((p) =>
    fs
      .readdirSync(path.join(root, 'etc/mdevctl.d', p))
      .filter((n) => n.startsWith(TEMP_PREFIX))
      .map((n) => `${p}/${n}`),
  );
}

test(
  `kill -9 during bursts of writes, ${KILLS} times, then a restart: nothing torn, nothing acknowledged lost, no debris`,
  { timeout: 900_000 },
  async (t) => {
    const dir = tmpDir('mdevkit-bursts-');
    const root = path.join(dir, 'root');
    for (const d of ['callouts', 'notifiers']) {
      fs.mkdirSync(path.join(root, 'etc/mdevctl.d/scripts.d', d), { recursive: true });
    }
    for (const p of PARENTS) fs.mkdirSync(path.join(root, 'etc/mdevctl.d', p));
    const worker = path.join(dir, 'crash-burst-worker.cjs');
    await build({
      entryPoints: [new URL('./crash-safety-burst-worker.ts', import.meta.url).pathname],
      outfile: worker,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      logLevel: 'warning',
    });

    /** What each lane's definitions must hold: the acknowledged state. */
    const model = Array.from({ length: LANES }, () => new Map<string, string | undefined>());
    let seq = 1;
    let kills = 0;
    let acknowledged = 0;
    let inFlight = 0;
    let maxDebris = 0;
    let lastKill = 0;

    await Promise.all(
      Array.from({ length: LANES }, async (_, lane) => {
        const parent = laneParent(lane);
        const state = model[lane]!;
        for (let k = lane; k < KILLS; k += LANES) {
          const start = seq;
          seq += 1_000_000; // each run's numbers are its own
          const run = await killDuringBurst(worker, root, lane, start);
          kills++;
          lastKill = Date.now();
          let pending: { seq: number; op: string; uuid: string } | undefined;
          for (const line of run.lines) {
            const [tag, n, op, uuid] = line.split(' ');
            if (tag === 'B') pending = { seq: Number(n), op: op!, uuid: uuid! };
            else if (tag === 'A') {
              assert.equal(Number(n), pending?.seq, `lane ${lane}: ${line} without its start`);
              state.set(
                pending!.uuid,
                pending!.op === 'undefine' ? undefined : contentOf(pending!.seq),
              );
              acknowledged++;
              pending = undefined;
            }
          }
          for (let i = 0; i < UUIDS_PER_LANE; i++) {
            const uuid = laneUuid(lane, i);
            const disk = readDefinition(root, parent, uuid);
            const acked = state.get(uuid);
            if (pending?.uuid === uuid) {
              const after = pending.op === 'undefine' ? undefined : contentOf(pending.seq);
              assert.ok(
                disk === acked || disk === after,
                `lane ${lane} kill ${k}: ${uuid} is neither before nor after ${pending.op} ${pending.seq}:\n${disk}`,
              );
              if (disk === after && disk !== acked) inFlight++;
              state.set(uuid, disk);
            } else {
              assert.equal(
                disk,
                acked,
                `lane ${lane} kill ${k}: ${uuid} lost an acknowledged write or gained one`,
              );
            }
          }
          maxDebris = Math.max(maxDebris, debris(root).length);
        }
      }),
    );
    assert.equal(kills, KILLS);
    assert.ok(
      acknowledged > KILLS,
      `only ${acknowledged} writes acknowledged: the bursts did not run`,
    );

    // The restart: once the last debris is stale, the next writes there leave none.
    const wait = lastKill + STALE_TEMP_AGE_MS + 500 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const left = debris(root).length;
    for (let lane = 0; lane < LANES; lane++) {
      const done = await new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, [worker, root, String(lane), '0', 'restart'], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
        child.once('error', reject);
        child.once('close', () => resolve(out));
      });
      assert.equal(done, 'done\n');
    }
    assert.deepEqual(debris(root), [], 'debris left after the restart');

    // A listing shows the acknowledged state exactly.
    const listed = listDefinedDevices(environmentAt(root));
    for (let lane = 0; lane < LANES; lane++) {
      const parent = laneParent(lane);
      for (let i = 0; i < UUIDS_PER_LANE; i++) {
        const uuid = laneUuid(lane, i);
        const want = model[lane]!.get(uuid);
        const dev = listed.get(parent)?.find((d) => d.uuid === uuid);
        assert.equal(dev === undefined, want === undefined, uuid);
        if (dev !== undefined)
          assert.equal(
            formatConfig({ mdevType: dev.type, start: dev.start, attrs: dev.attrs }),
            want,
          );
      }
    }
    t.diagnostic(
      `${kills} SIGKILLs during ${acknowledged} acknowledged writes: none lost, none torn; ${inFlight} writes in flight landed; up to ${maxDebris} temp files of killed writes at once, ${left} stale at the end, none after the restart`,
    );
  },
);
