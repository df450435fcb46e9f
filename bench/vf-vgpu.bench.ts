/**
 * Issue 16's figure: discovering and listing NVIDIA's VF vGPUs of 8 GPUs ×
 * 32 VFs (256 vGPUs, each defined) against listing the same number of
 * mdevs (256 active, each defined) — goal: at most 2× the time.
 *
 *  - mdevkit: `readVgpuInventory` (src/host/vf-vgpu.ts): the GPUs found
 *    through the nvidia driver's directory, each VF's current_vgpu_type,
 *    placement_id and vgpu_params, the definitions read and joined, each
 *    GPU's capacity computed — everything `mdevkit vf list` prints;
 *  - baseline: `listActiveDevices` (src/host/devices.ts), what
 *    `mdevctl list` prints for 256 mdevs with their definitions.
 *
 * Both through the in-process port and through node:fs over a tmpfs
 * snapshot of each lab (a real /sys is read by syscalls, as the snapshot
 * is). Each figure is the median of 31 runs after a warm-up, the two sides
 * run alternately so that a shared machine's load falls on both alike.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defineDevice, listActiveDevices, startDevice } from '../src/host/devices.js';
import { environmentAt, type Environment } from '../src/host/environment.js';
import { createVgpu, readVgpuInventory } from '../src/host/vf-vgpu.js';
import { Lab } from '../src/sim/lab.js';
import { parseProfile } from '../src/sim/profiles/profile.js';
import { writeSnapshot } from '../src/sim/sysfs/snapshot.js';

const GPUS = 8;
const VFS = 32;
const N = GPUS * VFS;
const shm = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
const made: string[] = [];

function root(): string {
  const dir = fs.mkdtempSync(path.join(shm, 'mdevkit-bench-vf-'));
  made.push(dir);
  fs.mkdirSync(path.join(dir, 'etc', 'mdevctl.d'), { recursive: true });
  return dir;
}

function uuid(i: number): string {
  const h = i.toString(16).padStart(12, '0');
  return `${h.slice(0, 8)}-0000-4000-8000-${h}`;
}

/** 8 L40S GPUs, VFs enabled, a 1 GB vGPU defined and made on every VF. */
function vfHost(): { lab: Lab; env: Environment } {
  const gpus = Array.from({ length: GPUS }, (_, i) => `0000:${(0x41 + i).toString(16)}:00.0`);
  const lab = new Lab(
    parseProfile({ name: 'bench', devices: [{ driver: 'nvidia-l40s', options: { gpus } }] }, 'b'),
  );
  lab.sriovManage(true, 'ALL');
  const env = environmentAt(root(), lab.port);
  for (const gpu of gpus) {
    for (let v = 0; v < VFS; v++) {
      createVgpu(env, { gpu, type: 'L40S-1Q', owner: 'config:bench', start: 'auto' });
    }
  }
  return { lab, env };
}

/** 256 mdevs (mtty, one port each), each defined and started. */
function mdevHost(): { lab: Lab; env: Environment } {
  const lab = new Lab(
    parseProfile({ name: 'bench', devices: [{ driver: 'mtty', options: { ports: N } }] }, 'b'),
  );
  const env = environmentAt(root(), lab.port);
  for (let i = 0; i < N; i++) {
    defineDevice(env, { uuid: uuid(i), parent: 'mtty', type: 'mtty-1', auto: true });
    startDevice(env, { uuid: uuid(i) });
  }
  return { lab, env };
}

/** The same host read through node:fs: a tmpfs snapshot of its /sys, its definitions copied. */
function onSnapshot(h: { lab: Lab; env: Environment }): Environment {
  const dir = root();
  fs.rmSync(path.join(dir, 'etc'), { recursive: true });
  writeSnapshot(h.lab.kernel.tree, dir);
  fs.cpSync(path.dirname(h.env.configDir), path.join(dir, 'etc'), { recursive: true });
  return environmentAt(dir);
}

/**
 * Median times of `a` and `b`, run alternately so that the load of a
 * shared machine falls on both alike; each must list `expect` items.
 */
function pairedMedians(a: () => number, b: () => number, expect: number): [number, number] {
  for (let i = 0; i < 3; i++) {
    a(); // warm-up
    b();
  }
  const ta: number[] = [];
  const tb: number[] = [];
  const time = (fn: () => number, into: number[]): void => {
    const t0 = process.hrtime.bigint();
    const n = fn();
    into.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (n !== expect) throw new Error(`listed ${n}, expected ${expect}`);
  };
  for (let i = 0; i < 31; i++) {
    time(a, ta);
    time(b, tb);
  }
  const median = (t: number[]): number => t.sort((x, y) => x - y)[Math.floor(t.length / 2)]!;
  return [median(ta), median(tb)];
}

const vf = vfHost();
const mdev = mdevHost();
const listVf = (env: Environment) => () =>
  readVgpuInventory(env).entries.filter((e) => e.state === 'active').length;
const listMdev = (env: Environment) => () =>
  [...listActiveDevices(env).values()].reduce((n, l) => n + l.length, 0);

const rows: [string, number, number][] = [
  ['in-process port', ...pairedMedians(listVf(vf.env), listMdev(mdev.env), N)],
  [
    'node:fs, tmpfs snapshot',
    ...pairedMedians(listVf(onSnapshot(vf)), listMdev(onSnapshot(mdev)), N),
  ],
];
for (const d of made) fs.rmSync(d, { recursive: true, force: true });

console.log(
  `figure: discover and list ${GPUS} GPUs x ${VFS} VFs (${N} VF vGPUs) vs list ${N} mdevs, ms (median)`,
);
console.log('port                        VF vGPUs     mdevs   ratio   goal');
let ok = true;
for (const [label, a, b] of rows) {
  const ratio = a / b;
  ok &&= ratio <= 2;
  console.log(
    `${label.padEnd(26)}  ${a.toFixed(2).padStart(8)}  ${b.toFixed(2).padStart(8)}  ${ratio.toFixed(2).padStart(5)}x   <= 2x`,
  );
}
if (!ok) process.exitCode = 1;
