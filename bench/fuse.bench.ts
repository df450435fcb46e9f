/**
 * The live lab's FUSE server (issue 6), each figure beside its baseline:
 *  - create+remove round trips per second through the served lab (a write
 *    of a UUID to `create`, a write of "1" to the new device's `remove`,
 *    each one open+write(2)+close as FsSysfsPort does), against
 *      the floor: a trivial fuse-native file system that accepts any write
 *        and nothing else, mounted the same way, same open/write/close calls;
 *      tmpfs: the same calls on two plain files in /dev/shm;
 *    goal: at most 3x the floor's time per round trip;
 *  - `ls` and `ls -l` of /sys/bus/mdev/devices with 10k devices, against
 *    the same listing of a tmpfs directory holding 10k symlinks.
 * Every server runs in its own process (a FUSE server must not be called
 * synchronously by its own process). Client and servers are pinned to one
 * CPU: unpinned, a round trip lands on one CPU or across two at random and
 * the figures swing by 3x between runs.
 *
 *   npm run bench fuse         (MDEVKIT_BENCH_NOPIN=1: do not pin)
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FsSysfsPort } from '../src/port/fs-port.js';

const ROOT = new URL('..', import.meta.url).pathname;
const MDEVKIT = path.join(ROOT, 'bin/mdevkit');
const CPU = '0';

if (process.getuid?.() !== 0 || !fs.existsSync('/dev/fuse')) {
  console.log('fuse bench: needs root and /dev/fuse; skipped');
  process.exit(0);
}

const hasTaskset =
  process.env['MDEVKIT_BENCH_NOPIN'] !== '1' && spawnSync('taskset', ['-V']).status === 0;
if (hasTaskset)
  execFileSync('taskset', ['-p', '-c', CPU, String(process.pid)], { stdio: 'ignore' });
const pinned = (argv: string[]): string[] => (hasTaskset ? ['taskset', '-c', CPU, ...argv] : argv);

function uuid(i: number): string {
  const h = i.toString(16).padStart(12, '0');
  return `${h.slice(0, 8)}-0000-4000-8000-${h}`;
}

/** Start argv, wait for a stdout line starting with `ready`. */
async function startServer(argv: string[]): Promise<ChildProcess> {
  const [cmd, ...args] = pinned(argv);
  const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'inherit'], cwd: ROOT });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`${argv.join(' ')} exited with ${code}`)));
  });
  return child;
}

async function stopServer(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** One write(2) of `data` through a fresh descriptor, as FsSysfsPort.write. */
function writeOnce(file: string, data: string): void {
  const fd = fs.openSync(file, fs.constants.O_WRONLY);
  try {
    fs.writeSync(fd, data);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Microseconds per round trip of each candidate, the median of `rounds`
 * timed batches. The candidates take turns batch by batch, so a machine
 * whose load changes during the run weighs on all of them alike.
 */
function timeRoundTrips(
  rounds: number,
  batch: number,
  candidates: ((i: number) => void)[],
): number[] {
  let i = 0;
  for (const roundTrip of candidates) for (let k = 0; k < batch; k++) roundTrip(i++); // warm-up
  const perTrip: number[][] = candidates.map(() => []);
  for (let r = 0; r < rounds; r++) {
    candidates.forEach((roundTrip, c) => {
      const t0 = process.hrtime.bigint();
      for (let k = 0; k < batch; k++) roundTrip(i++);
      perTrip[c]!.push(Number(process.hrtime.bigint() - t0) / 1e3 / batch);
    });
  }
  return perTrip.map((xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!);
}

// The floor: accepts every write, knows only that create and remove are
// files and everything else is a directory. No tree, no state.
const FLOOR = `
const Fuse = require('fuse-native');
const mnt = process.argv[1];
const dir = { mode: 0o40755, size: 0, nlink: 2, mtime: new Date(), atime: new Date(), ctime: new Date() };
const file = { mode: 0o100200, size: 4096, nlink: 1, mtime: new Date(), atime: new Date(), ctime: new Date() };
const isFile = (p) => p.endsWith('/create') || p.endsWith('/remove');
const fuse = new Fuse(mnt, {
  getattr: (p, cb) => cb(0, isFile(p) ? file : dir),
  open: (p, flags, cb) => cb(0, 1),
  write: (p, fd, buf, len, pos, cb) => cb(len),
  release: (p, fd, cb) => cb(0),
}, { fsname: 'floor,direct_io', attrTimeout: '1', entryTimeout: '1', timeout: false });
fuse.mount((err) => {
  if (err) { console.error(err.message); process.exit(1); }
  console.log('ready');
});
const stop = () => fuse.unmount(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
`;

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mdevkit-fuse-bench-'));
const shm = fs.mkdtempSync(
  path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'mdevkit-fuse-bench-'),
);
const profile = path.join(work, 'profile.json');
fs.writeFileSync(
  profile,
  JSON.stringify({ name: 'fuse-bench', devices: [{ driver: 'mtty', options: { ports: 10_000 } }] }),
);

const ROUNDS = 15;
const BATCH = 200;
const results: [string, string, string][] = [];

try {
  // --- the lab -------------------------------------------------------------
  const labDir = path.join(work, 'lab');
  const labServer = await startServer([
    process.execPath,
    MDEVKIT,
    'lab',
    'serve',
    '--profile',
    profile,
    '--mount',
    labDir,
  ]);
  const port = new FsSysfsPort(labDir);
  const typeDir = '/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1';
  // --- the floor, and tmpfs -----------------------------------------------
  const floorDir = path.join(work, 'floor');
  fs.mkdirSync(floorDir);
  const floorServer = await startServer([process.execPath, '-e', FLOOR, floorDir]);
  fs.writeFileSync(path.join(shm, 'create'), '');
  fs.writeFileSync(path.join(shm, 'remove'), '');

  const [labUs, floorUs, tmpfsUs] = timeRoundTrips(ROUNDS, BATCH, [
    (i) => {
      const u = uuid(i);
      port.write(`${typeDir}/create`, u);
      port.write(`/sys/bus/mdev/devices/${u}/remove`, '1');
    },
    (i) => {
      const u = uuid(i);
      writeOnce(`${floorDir}/class/mdev_bus/mtty/mdev_supported_types/mtty-1/create`, u);
      writeOnce(`${floorDir}/bus/mdev/devices/${u}/remove`, '1');
    },
    (i) => {
      writeOnce(path.join(shm, 'create'), uuid(i));
      writeOnce(path.join(shm, 'remove'), '1');
    },
  ]) as [number, number, number];
  await stopServer(floorServer);

  const perSec = (us: number) =>
    `${Math.round(1e6 / us).toLocaleString('en-US')}/s (${us.toFixed(1)} µs)`;
  results.push([
    'create+remove, live lab over FUSE',
    perSec(labUs),
    `${(labUs / floorUs).toFixed(2)}x floor (goal <= 3x)`,
  ]);
  results.push(['  floor: trivial fuse-native fs', perSec(floorUs), '1.00x floor']);
  results.push(['  tmpfs', perSec(tmpfsUs), `${(tmpfsUs / floorUs).toFixed(2)}x floor`]);

  // --- ls with 10k devices ---------------------------------------------------
  for (let i = 0; i < 10_000; i++) port.write(`${typeDir}/create`, uuid(1_000_000 + i));
  const links = path.join(shm, 'devices');
  fs.mkdirSync(links);
  for (const name of fs.readdirSync(path.join(labDir, 'sys/bus/mdev/devices'))) {
    fs.symlinkSync(`../../../devices/virtual/mtty/mtty/${name}`, path.join(links, name));
  }
  const lsMs = (args: string[], dir: string): number => {
    const times: number[] = [];
    for (let r = 0; r < 7; r++) {
      const t0 = process.hrtime.bigint();
      const res = spawnSync('ls', [...args, dir], {
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 64 << 20,
      });
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      const lines = res.stdout.toString().split('\n').filter(Boolean).length;
      if (lines < 10_000) throw new Error(`ls ${dir}: ${lines} lines`);
    }
    times.sort((a, b) => a - b);
    return times[3]!;
  };
  const devices = path.join(labDir, 'sys/bus/mdev/devices');
  for (const args of [[], ['-l']]) {
    const fuseMs = lsMs(args, devices);
    const tmpMs = lsMs(args, links);
    results.push([
      `ls ${args.join(' ')} /sys/bus/mdev/devices, 10k devices`.replace('  ', ' '),
      `${fuseMs.toFixed(1)} ms`,
      `tmpfs, 10k symlinks: ${tmpMs.toFixed(1)} ms (${(fuseMs / tmpMs).toFixed(2)}x)`,
    ]);
  }
  await stopServer(labServer);
} finally {
  fs.rmSync(shm, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
}

const w0 = Math.max(...results.map((r) => r[0].length));
const w1 = Math.max(...results.map((r) => r[1].length));
console.log(
  `FUSE figures (client and servers ${hasTaskset ? `pinned to CPU ${CPU}` : 'not pinned'})`,
);
for (const [a, b, c] of results) console.log(`  ${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`);
