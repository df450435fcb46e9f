/**
 * Autostart of 1000 start=auto definitions when their parent registers
 * (issue 6), on one live lab served over FUSE:
 *  - mdevkit's path: `lab reboot` through the control socket, which
 *    answers once the parents have registered again and the lab's
 *    autostart (src/host startParentDevices on the in-process port) has
 *    started every device; measured with and without the definitions, so
 *    the autostart's own share is the difference;
 *  - the reference: Debian's mdevctl 1.2.0 `start-parent-mdevs mtty`, what
 *    its udev rule runs, in a mount namespace where the lab is /sys
 *    (scripts/mdevctl-ns), after a reboot with no definitions;
 *  - mdevkit's drop-in (bin/mdevctl start-parent-mdevs) the same way,
 *    through FUSE, for comparison.
 * Goal: mdevkit's path at most 0.2x mdevctl's time. Median of 3 runs each.
 *
 *   npm run bench autostart
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { controlCall } from '../src/sim/control.js';
import { mdevctlReference } from '../test/support/capabilities.js';

const ROOT = new URL('..', import.meta.url).pathname;
const MDEVKIT = path.join(ROOT, 'bin/mdevkit');
const MDEVKIT_MDEVCTL = path.join(ROOT, 'bin/mdevctl');
const REFERENCE = mdevctlReference('1.2.0');
// Not capabilities.ts's MDEVCTL_NS: that resolves against its own URL, which
// is this bundle's once esbuild has inlined it.
const MDEVCTL_NS = path.join(ROOT, 'scripts/mdevctl-ns');
const N = 1000;
const REPS = 3;

if (process.getuid?.() !== 0 || !fs.existsSync('/dev/fuse') || REFERENCE === undefined) {
  console.log('autostart bench: needs root, /dev/fuse and mdevctl 1.2.0; skipped');
  process.exit(0);
}

function uuid(i: number): string {
  const h = i.toString(16).padStart(12, '0');
  return `${h.slice(0, 8)}-0000-4000-8000-${h}`;
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mdevkit-autostart-bench-'));
const labDir = path.join(work, 'lab');
const defs = path.join(labDir, 'etc/mdevctl.d/mtty');
const hidden = path.join(labDir, 'etc/mdevctl.d/.mtty-hidden');
const profile = path.join(work, 'profile.json');
fs.writeFileSync(
  profile,
  JSON.stringify({
    name: 'autostart-bench',
    devices: [{ driver: 'mtty', options: { ports: 2 * N } }],
  }),
);
fs.mkdirSync(defs, { recursive: true });
for (let i = 0; i < N; i++) {
  const config = { mdev_type: 'mtty-1', start: 'auto', attrs: [] };
  fs.writeFileSync(path.join(defs, uuid(i + 1)), JSON.stringify(config, null, 2));
}

const socket = path.join(labDir, 'lab.sock');
const activeCount = (): number => fs.readdirSync(path.join(labDir, 'sys/bus/mdev/devices')).length;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

async function reboot(): Promise<number> {
  const t0 = process.hrtime.bigint();
  await controlCall(socket, { op: 'reboot' }, 300_000);
  return ms(t0);
}

/** Reboot with the definitions out of sight: the parent comes back empty. */
async function emptyReboot(): Promise<number> {
  fs.renameSync(defs, hidden);
  try {
    return await reboot();
  } finally {
    fs.renameSync(hidden, defs);
  }
}

function inLab(argv: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(MDEVCTL_NS, [labDir, '--', ...argv], { encoding: 'utf8' });
  const took = ms(t0);
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return took;
}

let server: ChildProcess | undefined;
try {
  server = spawn(
    process.execPath,
    [MDEVKIT, 'lab', 'serve', '--profile', profile, '--mount', labDir],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    server!.stdout!.setEncoding('utf8').on('data', (d: string) => d.includes('ready') && resolve());
    server!.once('exit', (code) => reject(new Error(`lab serve exited with ${code}`)));
  });
  if (activeCount() !== N) throw new Error(`boot started ${activeCount()} of ${N}`);

  const withAuto: number[] = [];
  const without: number[] = [];
  const reference: number[] = [];
  const dropIn: number[] = [];
  const nsOnly: number[] = [];
  for (let r = 0; r < REPS; r++) {
    withAuto.push(await reboot());
    if (activeCount() !== N) throw new Error(`reboot started ${activeCount()} of ${N}`);
    without.push(await emptyReboot());
    if (activeCount() !== 0) throw new Error('an empty reboot left devices');
    nsOnly.push(inLab(['true']));
    reference.push(inLab([REFERENCE, 'start-parent-mdevs', 'mtty']));
    if (activeCount() !== N) throw new Error(`mdevctl started ${activeCount()} of ${N}`);
    await emptyReboot();
    dropIn.push(inLab([MDEVKIT_MDEVCTL, 'start-parent-mdevs', 'mtty']));
    if (activeCount() !== N) throw new Error(`bin/mdevctl started ${activeCount()} of ${N}`);
    await emptyReboot();
  }

  const ours = median(withAuto) - median(without);
  const theirs = median(reference) - median(nsOnly);
  const rows: [string, string, string][] = [
    [
      'mdevkit lab autostart (reboot with 1000 auto - empty reboot)',
      `${ours.toFixed(1)} ms`,
      `${(ours / theirs).toFixed(3)}x mdevctl (goal <= 0.2x)`,
    ],
    [
      '  reboot with 1000 start=auto definitions',
      `${median(withAuto).toFixed(1)} ms`,
      'whole request',
    ],
    ['  reboot with none', `${median(without).toFixed(1)} ms`, ''],
    [
      'Debian mdevctl 1.2.0 start-parent-mdevs (FUSE)',
      `${theirs.toFixed(1)} ms`,
      `1.000x (raw ${median(reference).toFixed(1)} ms - namespace ${median(nsOnly).toFixed(1)} ms)`,
    ],
    [
      "mdevkit's bin/mdevctl start-parent-mdevs (FUSE)",
      `${(median(dropIn) - median(nsOnly)).toFixed(1)} ms`,
      `${((median(dropIn) - median(nsOnly)) / theirs).toFixed(3)}x mdevctl`,
    ],
  ];
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  console.log(
    `Autostart of ${N} start=auto devices when their parent registers (median of ${REPS})`,
  );
  for (const [a, b, c] of rows) console.log(`  ${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`);
} finally {
  if (server !== undefined && server.exitCode === null) {
    const exited = new Promise((r) => server!.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  fs.rmSync(work, { recursive: true, force: true });
}
