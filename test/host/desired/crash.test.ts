/**
 * Crash safety of apply: workers apply two versions of one configuration
 * in turn (with prune) to a FUSE-served lab, and are killed with SIGKILL
 * at random moments, at least 500 times. The lab runs in its own process,
 * so what a killed apply did to sysfs stays, as on a host. After every
 * kill:
 *  - no device exists that mdevkit made and did not record (every active
 *    device and every definition is a foreign one or in the record);
 *  - no foreign device or definition was touched;
 *  - no definition is torn (each parses; temp-file debris is allowed);
 * and every so often, and at the end, the next apply converges: it
 * succeeds, and planning again changes nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { build } from 'esbuild';
import { parseConfig, TEMP_PREFIX } from '../../../src/host/config-store.js';
import { applyHost, planHost } from '../../../src/host/desired/engine.js';
import { loadConfigFile } from '../../../src/host/desired/config.js';
import { OwnershipRecord } from '../../../src/host/desired/ownership.js';
import { environmentAt, type Environment } from '../../../src/host/environment.js';
import { indexTypeDevices } from '../../../src/host/sysfs-model.js';
import { requires } from '../../support/capabilities.js';
import { tmpDir } from '../../support/tmp.js';
import { U1, U2, U3 } from '../../support/labs.js';
import { FUSE_NEEDS, serveLab, type ServedLab } from '../../fuse/served-lab.js';

const KILLS = Number(process.env['CRASH_KILLS'] ?? 500);
const LANES = 2;
const CONVERGE_EVERY = 50;
const GPU0 = '0000:85:00.0';
const GPU1 = '0000:86:00.0';

const A = `version: 1
configs:
  default:
    entries:
      - parents: mtty
        devices: [{ type: mtty-1, count: 5 }]
      - parents: mbochs
        devices: [{ type: mbochs-small, count: 3, start: manual }]
      - parents: "0000:6a:01.0"
        devices: [{ type: idxd-1wq, count: 3, aggregation: 2 }]
      - parents: "${GPU0}"
        devices: [{ type: nvidia-12, count: 4, attrs: { nvidia/vgpu_params: "frame_rate_limiter=0" } }]
`;
const B = `version: 1
configs:
  default:
    entries:
      - parents: mtty
        devices: [{ type: mtty-2, count: 3 }]
      - parents: mbochs
        devices: [{ type: mbochs-medium, count: 2 }]
      - parents: "0000:6a:01.0"
        devices: [{ type: idxd-2wq, count: 2 }]
      - parents: "${GPU0}"
        devices: [{ type: nvidia-13, count: 2 }]
`;

interface Foreign {
  readonly uuid: string;
  readonly parent: string;
  readonly type: string;
  readonly definition: string | undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function killAtRandom(argv: string[], maxDelayMs: number): Promise<void> {
  const child: ChildProcess = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  await new Promise<void>((resolve) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('ready')) resolve();
    });
    child.once('exit', () => resolve());
  });
  await sleep(Math.random() * maxDelayMs);
  child.kill('SIGKILL');
  const code = await exited;
  // Killed as planned; a worker that died by itself is a bug.
  assert.equal(code, null, `the worker exited on its own: ${err}`);
}

function check(env: Environment, foreign: readonly Foreign[], when: string): void {
  const record = OwnershipRecord.open(env);
  const foreignIds = new Set(foreign.map((f) => f.uuid));
  // Foreign devices and definitions untouched.
  const active = indexTypeDevices(env.port);
  for (const f of foreign) {
    assert.deepEqual(
      active.get(f.uuid),
      { parent: f.parent, type: f.type },
      `${when}: foreign ${f.uuid} touched`,
    );
    const p = path.join(env.configDir, f.parent, f.uuid);
    assert.equal(
      fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : undefined,
      f.definition,
      `${when}: foreign definition`,
    );
  }
  // No device created but unrecorded.
  for (const [uuid, where] of active) {
    if (foreignIds.has(uuid)) continue;
    const e = record.get(uuid);
    assert.ok(
      e !== undefined,
      `${when}: active device ${uuid} (${where.parent} ${where.type}) is not recorded`,
    );
    assert.equal(e.owner, 'config:default', when);
  }
  // No torn definition, and none unrecorded.
  for (const parent of fs.readdirSync(env.configDir)) {
    const dir = path.join(env.configDir, parent);
    if (parent === 'scripts.d' || !fs.statSync(dir).isDirectory()) continue;
    for (const name of fs.readdirSync(dir)) {
      if (name.startsWith(TEMP_PREFIX)) continue; // debris of an interrupted atomic write
      const file = path.join(dir, name);
      assert.doesNotThrow(
        () => parseConfig(fs.readFileSync(file, 'utf8'), file),
        `${when}: torn ${file}`,
      );
      if (!foreignIds.has(name))
        assert.ok(record.get(name) !== undefined, `${when}: definition ${file} is not recorded`);
    }
  }
}

async function converge(
  env: Environment,
  file: string,
  devices: number,
  when: string,
): Promise<void> {
  const { summary } = await applyHost(env, file, { prune: true, wait: true });
  assert.equal(
    summary!.failed,
    0,
    `${when}: ${JSON.stringify(summary!.results.filter((r) => !r.ok))}`,
  );
  const again = planHost(env, file, { prune: true }).plan;
  const c = again.counts;
  assert.equal(
    c.create + c.remove + c.modify + c.start + c.adopt + c.forget + c.blocked,
    0,
    `${when}: not converged`,
  );
  assert.equal(c.keep, devices, when);
}

test(
  `apply survives ${KILLS} SIGKILLs: recorded, untouched, whole, convergent`,
  { timeout: 1_500_000 },
  async (t) => {
    if (
      !requires(
        t,
        FUSE_NEEDS,
        'the lab must outlive the killed applies: a FUSE lab in its own process',
      )
    )
      return;
    const dir = tmpDir('mdevkit-apply-crash-');
    const worker = path.join(dir, 'worker.cjs');
    await build({
      entryPoints: [new URL('./support/crash-apply-worker.ts', import.meta.url).pathname],
      outfile: worker,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      logLevel: 'warning',
    });
    const fileA = path.join(dir, 'a.yaml');
    const fileB = path.join(dir, 'b.yaml');
    fs.writeFileSync(fileA, A);
    fs.writeFileSync(fileB, B);
    loadConfigFile(fileA);

    const labs: ServedLab[] = [];
    after(async () => {
      for (const l of labs) await l.close();
    });
    let kills = 0;
    await Promise.all(
      Array.from({ length: LANES }, async (_, lane) => {
        const lab = await serveLab();
        labs.push(lab);
        const env = environmentAt(lab.dir);
        // Foreign devices: one defined by mdevctl's rules, two transient.
        const foreign: Foreign[] = [
          {
            uuid: U1,
            parent: 'mtty',
            type: 'mtty-1',
            definition: '{\n  "mdev_type": "mtty-1",\n  "start": "manual",\n  "attrs": []\n}',
          },
          { uuid: U2, parent: 'mbochs', type: 'mbochs-small', definition: undefined },
          { uuid: U3, parent: GPU1, type: 'nvidia-18', definition: undefined },
        ];
        for (const f of foreign) {
          env.port.write(
            `/sys/class/mdev_bus/${f.parent}/mdev_supported_types/${f.type}/create`,
            f.uuid,
          );
          if (f.definition !== undefined) {
            fs.mkdirSync(path.join(env.configDir, f.parent), { recursive: true });
            fs.writeFileSync(path.join(env.configDir, f.parent, f.uuid), f.definition);
          }
        }
        for (let k = lane; k < KILLS; k += LANES) {
          await killAtRandom([worker, lab.dir, fileA, fileB], 250);
          kills++;
          check(env, foreign, `lane ${lane}, after kill ${k}`);
          if (k % CONVERGE_EVERY === lane) {
            await converge(
              env,
              k % 2 === 0 ? fileA : fileB,
              k % 2 === 0 ? 15 : 9,
              `lane ${lane}, kill ${k}`,
            );
            check(env, foreign, `lane ${lane}, after converging at ${k}`);
          }
        }
        await converge(env, fileA, 15, `lane ${lane}, at the end`);
        check(env, foreign, `lane ${lane}, at the end`);
      }),
    );
    assert.equal(kills, KILLS);
  },
);
