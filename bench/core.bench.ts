/**
 * Issue 2's figures for the emulated core, each beside a baseline run in the
 * same process:
 *  - create+remove cycles per second through the in-process sysfs port
 *    (the way management code does it: write `create`, write `remove`),
 *    against the same cycle through the core's own API (no path walking);
 *  - listing 10k active devices through the in-process port (listActiveDevices:
 *    realpath + readlink per device, as mdevctl does), against the same
 *    listing through the node:fs port over a tmpfs snapshot of that tree;
 *  - resident memory with 10k devices, against the same lab empty.
 * Goals: >= 200k cycles/s; <= 200 MB resident with 10k devices.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { listActiveDevices } from '../src/host/sysfs-model.js';
import { FsSysfsPort } from '../src/port/fs-port.js';
import { writeSnapshot } from '../src/sim/sysfs/snapshot.js';
import { Lab } from '../src/sim/lab.js';
import { parseProfile } from '../src/sim/profiles/profile.js';

function uuid(i: number): string {
  const h = i.toString(16).padStart(12, '0');
  return `${h.slice(0, 8)}-0000-4000-8000-${h}`;
}

function bigLab(): Lab {
  // mtty with a pool large enough for 10k single-port devices.
  return new Lab(
    parseProfile(
      { name: 'bench', devices: [{ driver: 'mtty', options: { ports: 4096 } }] },
      'bench',
    ),
  );
}

function rate(label: string, n: number, fn: () => void): number {
  fn(); // warm-up pass at the same size
  const t0 = process.hrtime.bigint();
  fn();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return n / s;
}

const lab = bigLab();
const port = lab.port;
const N = 100_000;
const typeDir = '/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1';
const U = uuid(1);

const viaPort = rate('port', N, () => {
  for (let i = 0; i < N; i++) {
    port.write(`${typeDir}/create`, U);
    port.write(`/sys/bus/mdev/devices/${U}/remove`, '1');
  }
});
const type = lab.core.parent('mtty')!.type('mtty-1')!;
const viaCore = rate('core', N, () => {
  for (let i = 0; i < N; i++) lab.core.remove(lab.core.create(type, U));
});

// 10k devices: several labs would exceed the pool, so one lab with 10k.
const lab10k = new Lab(
  parseProfile(
    { name: 'bench', devices: [{ driver: 'mtty', options: { ports: 10_000 } }] },
    'bench',
  ),
);
global.gc?.();
const rssEmpty = process.memoryUsage().rss;
for (let i = 0; i < 10_000; i++) lab10k.port.write(`${typeDir}/create`, uuid(i + 10));
global.gc?.();
const rss10k = process.memoryUsage().rss;

const t0 = process.hrtime.bigint();
const reps = 20;
let count = 0;
for (let r = 0; r < reps; r++) count = listActiveDevices(lab10k.port).length;
const listMs = Number(process.hrtime.bigint() - t0) / 1e6 / reps;
const shm = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
const snapDir = fs.mkdtempSync(path.join(shm, 'mdevkit-bench-'));
writeSnapshot(lab10k.kernel.tree, snapDir);
const fsPort = new FsSysfsPort(snapDir);
listActiveDevices(fsPort);
const t1 = process.hrtime.bigint();
for (let r = 0; r < reps; r++) listActiveDevices(fsPort);
const bareMs = Number(process.hrtime.bigint() - t1) / 1e6 / reps;
fs.rmSync(snapDir, { recursive: true, force: true });
if (count !== 10_000) throw new Error(`expected 10000 devices, listed ${count}`);

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
console.log('figure                                     mdevkit        baseline      ratio');
console.log(
  `create+remove cycles/s (port vs core API)   ${fmt(viaPort).padStart(10)}  ${fmt(viaCore).padStart(12)}  ${(viaPort / viaCore).toFixed(2)}x   goal >= 200,000/s`,
);
console.log(
  `list 10k devices, ms (in-process vs tmpfs)  ${listMs.toFixed(2).padStart(10)}  ${bareMs.toFixed(2).padStart(12)}  ${(listMs / bareMs).toFixed(2)}x`,
);
console.log(
  `resident MB (10k devices vs empty lab)      ${(rss10k / 2 ** 20).toFixed(1).padStart(10)}  ${(rssEmpty / 2 ** 20).toFixed(1).padStart(12)}  +${((rss10k - rssEmpty) / 2 ** 20).toFixed(1)} MB   goal <= 200 MB`,
);
