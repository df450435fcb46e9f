/**
 * Crash safety of definitions: processes that define, modify and undefine
 * are killed with SIGKILL at random moments, over 1000 times, and after
 * every kill the definition must be a whole one — the content before or
 * after some operation, byte for byte — or absent only where an undefine may
 * have happened. Listing afterwards must work (temp-file debris is skipped).
 *
 * Two kinds of victims: workers running the host library in a loop
 * (test/ctl/support/crash-worker.ts, bundled once so each start is cheap —
 * the bulk of the kills), and real `bin/mdevkit` processes (the full CLI
 * path), killed at random delays.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { build } from 'esbuild';
import { formatConfig, type MdevAttribute } from '../../src/host/config-store.js';
import { listDefinedDevices } from '../../src/host/devices.js';
import { environmentAt } from '../../src/host/environment.js';
import { MDEVKIT_BIN } from '../support/cli.js';
import { tmpDir } from '../support/tmp.js';

const PARENT = '0000:00:02.0';
const TYPE = 'i915-GVTg_V5_4';
const WORKER_KILLS = 1000;
const CLI_KILLS = 40;
const PARALLEL = 6;

const config = (attrs: MdevAttribute[]): string =>
  formatConfig({ mdevType: TYPE, start: 'manual', attrs });
const X = { name: 'x', value: '1' };
const Y = { name: 'y', value: '2' };
/** Every content the modify cycle passes through. */
const MODIFY_STATES = new Set([config([]), config([X]), config([X, Y]), config([Y])]);
const DEFINED_STATE = config([]);

function makeRoot(dir: string): string {
  fs.mkdirSync(path.join(dir, 'sys/bus/mdev/devices'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'sys/class/mdev_bus'), { recursive: true });
  for (const d of ['callouts', 'notifiers']) {
    fs.mkdirSync(path.join(dir, 'usr/lib/mdevctl/scripts.d', d), { recursive: true });
  }
  fs.mkdirSync(path.join(dir, 'etc/mdevctl.d', PARENT), { recursive: true });
  return dir;
}

const uuidFor = (i: number): string => `c0ffee00-0000-4000-8000-${String(i).padStart(12, '0')}`;

/** The definition's content, or undefined when absent. */
function readDefinition(root: string, uuid: string): string | undefined {
  try {
    return fs.readFileSync(path.join(root, 'etc/mdevctl.d', PARENT, uuid), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function check(root: string, uuid: string, kind: string, after: string): void {
  const content = readDefinition(root, uuid);
  if (kind === 'modify') {
    assert.ok(content !== undefined, `${after}: the definition being modified is missing`);
    assert.ok(MODIFY_STATES.has(content), `${after}: torn definition:\n${content}`);
  } else if (content !== undefined) {
    assert.equal(content, DEFINED_STATE, `${after}: torn definition`);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Start `argv`, wait for `ready` on stdout (when asked), sleep a random while, SIGKILL it. */
async function killAtRandom(argv: string[], waitReady: boolean, maxDelayMs: number): Promise<void> {
  const child: ChildProcess = spawn(process.execPath, argv, {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (waitReady) {
    await new Promise<void>((resolve) => {
      let buf = '';
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('ready')) resolve();
      });
      child.once('exit', () => resolve());
    });
  } else child.stdout!.resume();
  await sleep(Math.random() * maxDelayMs);
  child.kill('SIGKILL');
  await exited;
}

test(
  `definitions survive ${WORKER_KILLS + CLI_KILLS} SIGKILLs whole`,
  // 1000 Node starts: about half a minute on a quiet 2-core machine, far
  // more on a loaded one; the limit only guards against a hang.
  { timeout: 900_000 },
  async () => {
    const dir = tmpDir('mdevkit-crash-');
    const root = makeRoot(path.join(dir, 'root'));
    // CommonJS: no ESM loader, so each of the 1000 starts is as cheap as Node allows.
    const worker = path.join(dir, 'crash-worker.cjs');
    await build({
      entryPoints: [new URL('./support/crash-worker.ts', import.meta.url).pathname],
      outfile: worker,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      logLevel: 'warning',
    });

    // Lanes: each works on its own definition, half modify, half define/undefine.
    const lanes = Array.from({ length: PARALLEL }, (_, i) => ({
      uuid: uuidFor(i),
      kind: i % 2 === 0 ? 'modify' : 'define-undefine',
    }));
    for (const lane of lanes) {
      if (lane.kind === 'modify')
        fs.writeFileSync(path.join(root, 'etc/mdevctl.d', PARENT, lane.uuid), config([]));
    }

    let kills = 0;
    await Promise.all(
      lanes.map(async (lane, l) => {
        for (let k = l; k < WORKER_KILLS; k += PARALLEL) {
          await killAtRandom([worker, root, lane.uuid, lane.kind], true, 30);
          kills++;
          check(root, lane.uuid, lane.kind, `after worker kill ${k}`);
        }
      }),
    );
    assert.equal(kills, WORKER_KILLS);

    // The full CLI path: real bin/mdevkit processes, killed anywhere from
    // start-up to the end of their write.
    const cliLanes = lanes.slice(0, 2);
    await Promise.all(
      cliLanes.map(async (lane, l) => {
        for (let k = l; k < CLI_KILLS; k += cliLanes.length) {
          let args: string[];
          const present = readDefinition(root, lane.uuid) !== undefined;
          if (lane.kind === 'modify') {
            args = ['modify', '-u', lane.uuid, '-p', PARENT, '--delattr'];
            const current = readDefinition(root, lane.uuid)!;
            if (current === config([]))
              args = ['modify', '-u', lane.uuid, '--addattr', 'x', '--value', '1'];
          } else {
            args = present
              ? ['undefine', '-u', lane.uuid]
              : ['define', '-u', lane.uuid, '-p', PARENT, '-t', TYPE];
          }
          await killAtRandom([MDEVKIT_BIN, ...args, '--root', root], false, 300);
          kills++;
          check(root, lane.uuid, lane.kind, `after CLI kill ${k} (${args.join(' ')})`);
        }
      }),
    );

    // Nothing torn anywhere, and a listing still works around any debris.
    const listed = listDefinedDevices(environmentAt(root));
    for (const lane of lanes.filter((x) => x.kind === 'modify')) {
      assert.ok(listed.get(PARENT)?.some((d) => d.uuid === lane.uuid));
    }
    assert.equal(kills, WORKER_KILLS + CLI_KILLS);
  },
);
