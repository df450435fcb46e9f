/**
 * mdevkit's mdevctl commands side by side with Debian's mdevctl 1.2.0 (and
 * 1.4.0 when scripts/install-mdevctl-ref.sh has installed it), on the same
 * generated trees (test/support/gen-tree.ts: 8 parents x 4 types) of 10, 1k
 * and 10k devices (N active, N defined, half of them both): `list`,
 * `list -d --dumpjson`, `types` and `define`. mdevctl 1.2.0 always works on
 * "/", so every timing runs inside one private mount namespace per tree
 * (scripts/mdevctl-ns) where the tree is /sys and /etc/mdevctl.d; a small
 * driver there alternates the programs and `node -e 0`, and the median and
 * best wall time of each are reported, with the mean CPU time of each run
 * (the child's user + system time: steadier than wall time when other jobs
 * load the machine). Needs root and mdevctl 1.2.0.
 *
 * Then issue 13's table: bin/mdevctl against both references on a small
 * host (10 devices: list, types, define, at most 3x mdevctl's time) and a
 * large one (10k devices: list at most 0.3x, list -d --dumpjson at most
 * 0.5x), each ratio against 1.4.0 and 1.2.0, by median wall time and by
 * CPU time. bin/mdevctl is what the build made of dist/mdevctl: the
 * compiled program, or Node's launcher (docs/ARCHITECTURE.md); the first
 * line says which.
 *
 * Last, `start-parent-mdevs` of 1000 start=auto definitions on the live lab
 * served over FUSE (needs /dev/fuse), each program after an empty reboot of
 * the lab: issue 13's goal there is bin/mdevctl no slower than mdevctl.
 *
 *   npm run bench mdevctl            (MDEVKIT_BENCH_SIZES=10,1000 to pick sizes)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { controlCall } from '../src/sim/control.js';
import { mdevctlReference } from '../test/support/capabilities.js';
import { generateTree } from '../test/support/gen-tree.js';

const ROOT = new URL('..', import.meta.url).pathname;
const CANDIDATE = path.join(ROOT, 'bin/mdevctl');
// Not capabilities.ts's MDEVCTL_NS: that resolves against its own URL, which
// is this bundle's once esbuild has inlined it.
const MDEVCTL_NS = path.join(ROOT, 'scripts/mdevctl-ns');
const REFERENCE = mdevctlReference('1.2.0');
/** mdevctl 1.4.0, timed too when installed (issue 13's second reference). */
const REFERENCE_14 = mdevctlReference('1.4.0');

const sizes = (process.env['MDEVKIT_BENCH_SIZES'] ?? '10,1000,10000').split(',').map(Number);
// Small hosts take more runs: their figures are a few ms, and CPU time comes
// in 10 ms ticks. Large ones take 11: fewer left a loaded VM's medians at
// the mercy of a few unlucky runs.
const reps = (n: number): number => (n >= 1000 ? 11 : 41);

if (process.getuid?.() !== 0 || REFERENCE === undefined) {
  console.log('mdevctl bench: needs root and mdevctl 1.2.0 (apt-get install mdevctl); skipped');
  process.exit(0);
}

// The driver runs inside the namespace: for each command, alternate
// reference, candidate and `node -e 0`, and print the medians as JSON.
const DRIVER = `
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
const [ref, cand, repsArg, freeParent, freeType, ref14] = process.argv.slice(2);
const reps = Number(repsArg);
const commands = {
  'list': () => ['list'],
  'list -d --dumpjson': () => ['list', '-d', '--dumpjson'],
  'types': () => ['types'],
  'define': () => ['define', '-u', randomUUID(), '-p', freeParent, '-t', freeType],
};
// User + system time of waited-for children (cutime + cstime), in ms.
function childCpu() {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) * (1000 / 100); // USER_HZ
}
const cpu = {};
function time(cmd, args) {
  const c0 = childCpu();
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(cmd + ' ' + args.join(' ') + ' failed: ' + r.stderr);
  (cpu[cmd] ??= []).push(childCpu() - c0);
  return ms;
}
const meanCpu = (cmd) => { const xs = cpu[cmd] ?? []; delete cpu[cmd]; return xs.reduce((a, b) => a + b, 0) / xs.length; };
const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
const min = (xs) => Math.min(...xs);
const out = {};
const node = [];
for (const [name, args] of Object.entries(commands)) {
  const r = [], c = [], r14 = [];
  time(ref, args()); time(cand, args()); // warm the page cache
  if (ref14) time(ref14, args());
  for (const cmd of [ref, cand, ref14]) if (cmd) meanCpu(cmd); // not the warm-up's
  for (let i = 0; i < reps; i++) {
    r.push(time(ref, args()));
    c.push(time(cand, args()));
    if (ref14) r14.push(time(ref14, args()));
    node.push(time(process.execPath, ['-e', '0']));
  }
  out[name] = { ref: median(r), cand: median(c), refMin: min(r), candMin: min(c),
    ref14: ref14 ? median(r14) : NaN, ref14Min: ref14 ? min(r14) : NaN,
    refCpu: meanCpu(ref), candCpu: meanCpu(cand), ref14Cpu: ref14 ? meanCpu(ref14) : NaN };
}
out['node -e 0'] = { ref: NaN, cand: median(node), refMin: NaN, candMin: min(node) };
console.log(JSON.stringify(out));
`;

interface Row {
  size: number;
  command: string;
  ref: number;
  cand: number;
  refMin: number;
  candMin: number;
  ref14: number;
  ref14Min: number;
  refCpu: number;
  candCpu: number;
  ref14Cpu: number;
}

const work = fs.mkdtempSync(
  path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'mdevkit-bench-'),
);
const rows: Row[] = [];
const nodeBaseline: number[] = [];
const nodeBest: number[] = [];
try {
  const driver = path.join(work, 'driver.mjs');
  fs.writeFileSync(driver, DRIVER);
  for (const n of sizes) {
    const tree = path.join(work, `tree-${n}`);
    const summary = generateTree(tree, { active: n, defined: n });
    const r = spawnSync(
      MDEVCTL_NS,
      [
        tree,
        '--',
        process.execPath,
        driver,
        REFERENCE,
        CANDIDATE,
        String(reps(n)),
        summary.free.parent,
        summary.free.type,
        ...(REFERENCE_14 !== undefined ? [REFERENCE_14] : []),
      ],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`bench driver failed at ${n} devices:\n${r.stderr}`);
    const result = JSON.parse(r.stdout) as Record<string, Omit<Row, 'size' | 'command'>>;
    for (const [command, t] of Object.entries(result)) {
      if (command === 'node -e 0') {
        nodeBaseline.push(t.cand);
        nodeBest.push(t.candMin);
      } else rows.push({ size: n, command, ...t });
    }
    fs.rmSync(tree, { recursive: true, force: true });
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}

const nodeMs = nodeBaseline.sort((a, b) => a - b)[nodeBaseline.length >> 1] ?? NaN;
const nodeMin = Math.min(...nodeBest);
const fmt = (ms: number): string => (Number.isNaN(ms) ? '-' : ms.toFixed(1)).padStart(8);
const ratio = (a: number, b: number): string =>
  (Number.isNaN(a / b) ? '-' : (a / b).toFixed(2)).padStart(6);
const with14 = REFERENCE_14 !== undefined;

/** What the build made bin/mdevctl: the compiled program or Node's launcher. */
function candidateKind(): string {
  const head = Buffer.alloc(4);
  const fd = fs.openSync(CANDIDATE, 'r');
  fs.readSync(fd, head, 0, 4, 0);
  fs.closeSync(fd);
  return head.toString('latin1') === '\x7fELF'
    ? 'the compiled program (Bun, scripts/compile-mdevctl.mjs)'
    : "Node's launcher (no Bun at build time)";
}

console.log(`bin/mdevctl is ${candidateKind()}`);
console.log(
  `wall time per command, ms: median and best of the runs; CPU: mean user + system time of one run` +
    ` (load: node -e 0 took median ${nodeMs.toFixed(1)}, best ${nodeMin.toFixed(1)})`,
);
console.log(
  `${'devices'.padStart(7)}  ${'command'.padEnd(20)}` +
    ` ${'1.2.0'.padStart(8)} ${'1.4.0'.padStart(8)} ${'mdevkit'.padStart(8)}  ${'x1.2.0'.padStart(6)} ${'x1.4.0'.padStart(6)}` +
    `   best: ${'1.2.0'.padStart(8)} ${'1.4.0'.padStart(8)} ${'mdevkit'.padStart(8)}` +
    `   CPU: ${'1.2.0'.padStart(8)} ${'1.4.0'.padStart(8)} ${'mdevkit'.padStart(8)}`,
);
for (const r of rows) {
  console.log(
    `${String(r.size).padStart(7)}  ${r.command.padEnd(20)}` +
      ` ${fmt(r.ref)} ${fmt(r.ref14)} ${fmt(r.cand)}  ${ratio(r.cand, r.ref)} ${ratio(r.cand, r.ref14)}` +
      `         ${fmt(r.refMin)} ${fmt(r.ref14Min)} ${fmt(r.candMin)}` +
      `        ${fmt(r.refCpu)} ${fmt(r.ref14Cpu)} ${fmt(r.candCpu)}`,
  );
}

// start-parent-mdevs over FUSE: what mdevctl's udev rule runs when a parent
// registers, on the live lab (mdevkit lab serve) with FUSE_DEFS start=auto
// definitions of one mtty parent, every sysfs call a round trip to the lab.
// Each run follows a reboot of the lab with the definitions out of sight,
// so the parent comes back empty; the programs take turns, and the time of
// entering the namespace alone (`true`) is subtracted from each.
const FUSE_DEFS = 1000;
const FUSE_REPS = 5;
const MDEVKIT = path.join(ROOT, 'bin/mdevkit');

interface FuseResult {
  /** ms per program name (1.2.0, 1.4.0, mdevkit), namespace time subtracted */
  readonly ms: Record<string, number>;
  readonly nsMs: number;
}

async function startParentMdevsOverFuse(): Promise<FuseResult | string> {
  if (!fs.existsSync('/dev/fuse')) return 'needs /dev/fuse';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdevkit-bench-fuse-'));
  const lab = path.join(dir, 'lab');
  const defs = path.join(lab, 'etc/mdevctl.d/mtty');
  const hidden = path.join(dir, 'mtty-hidden');
  const profile = path.join(dir, 'profile.json');
  fs.writeFileSync(
    profile,
    JSON.stringify({
      name: 'start-parent-mdevs-bench',
      devices: [{ driver: 'mtty', options: { ports: 2 * FUSE_DEFS } }],
    }),
  );
  fs.mkdirSync(defs, { recursive: true });
  for (let i = 1; i <= FUSE_DEFS; i++) {
    const h = i.toString(16).padStart(12, '0');
    fs.writeFileSync(
      path.join(defs, `${h.slice(0, 8)}-0000-4000-8000-${h}`),
      JSON.stringify({ mdev_type: 'mtty-1', start: 'auto', attrs: [] }, null, 2),
    );
  }
  const active = (): number => fs.readdirSync(path.join(lab, 'sys/bus/mdev/devices')).length;
  const emptyReboot = async (): Promise<void> => {
    fs.renameSync(defs, hidden);
    try {
      await controlCall(path.join(lab, 'lab.sock'), { op: 'reboot' }, 300_000);
    } finally {
      fs.renameSync(hidden, defs);
    }
    if (active() !== 0) throw new Error('an empty reboot left devices');
  };
  const inLab = (argv: string[]): number => {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(MDEVCTL_NS, [lab, '--', ...argv], { encoding: 'utf8' });
    const took = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
    return took;
  };
  const programs: [string, string][] = [
    ['1.2.0', REFERENCE!],
    ...(REFERENCE_14 !== undefined ? [['1.4.0', REFERENCE_14] as [string, string]] : []),
    ['mdevkit', CANDIDATE],
  ];
  let server: ChildProcess | undefined;
  try {
    server = spawn(
      process.execPath,
      [MDEVKIT, 'lab', 'serve', '--profile', profile, '--mount', lab],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    await new Promise<void>((resolve, reject) => {
      server!
        .stdout!.setEncoding('utf8')
        .on('data', (d: string) => d.includes('ready') && resolve());
      server!.once('exit', (code) => reject(new Error(`lab serve exited with ${code}`)));
    });
    const times = new Map<string, number[]>(programs.map(([name]) => [name, []]));
    const ns: number[] = [];
    for (let r = 0; r < FUSE_REPS; r++) {
      for (const [name, program] of programs) {
        await emptyReboot();
        ns.push(inLab(['true']));
        times.get(name)!.push(inLab([program, 'start-parent-mdevs', 'mtty']));
        if (active() !== FUSE_DEFS) throw new Error(`${name} started ${active()} of ${FUSE_DEFS}`);
      }
    }
    const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const nsMs = med(ns);
    const ms: Record<string, number> = {};
    for (const [name, xs] of times) ms[name] = med(xs) - nsMs;
    return { ms, nsMs };
  } finally {
    if (server !== undefined && server.exitCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const fuse = await startParentMdevsOverFuse();
if (typeof fuse === 'string') {
  console.log(`\nstart-parent-mdevs over FUSE: skipped (${fuse})`);
} else {
  console.log(
    `\nstart-parent-mdevs mtty over FUSE, ${FUSE_DEFS} start=auto definitions (median of ${FUSE_REPS}, ms; entering the namespace, ${fuse.nsMs.toFixed(1)} ms, subtracted)`,
  );
  console.log(
    `${'1.2.0'.padStart(8)} ${'1.4.0'.padStart(8)} ${'mdevkit'.padStart(8)}  ${'x1.2.0'.padStart(6)} ${'x1.4.0'.padStart(6)}`,
  );
  const m = fuse.ms;
  console.log(
    `${fmt(m['1.2.0'] ?? NaN)} ${fmt(m['1.4.0'] ?? NaN)} ${fmt(m['mdevkit'] ?? NaN)}` +
      `  ${ratio(m['mdevkit'] ?? NaN, m['1.2.0'] ?? NaN)} ${ratio(m['mdevkit'] ?? NaN, m['1.4.0'] ?? NaN)}`,
  );
}

// Issue 13's goals: bin/mdevctl's time as a multiple of mdevctl's.
const GOALS: readonly { size: number; command: string; atMost: number }[] = [
  { size: 10, command: 'list', atMost: 3 },
  { size: 10, command: 'types', atMost: 3 },
  { size: 10, command: 'define', atMost: 3 },
  { size: 10000, command: 'list', atMost: 0.3 },
  { size: 10000, command: 'list -d --dumpjson', atMost: 0.5 },
];
const verdict = (x: number, goal: number): string =>
  Number.isNaN(x) ? '     -' : (x <= goal ? '   met' : '   not').padStart(6);
console.log(
  '\nissue 13: bin/mdevctl as a multiple of mdevctl (median wall time; CPU time in brackets)',
);
console.log(
  `${'devices'.padStart(7)}  ${'command'.padEnd(20)} ${'goal'.padStart(6)}` +
    `  ${'x1.4.0'.padStart(6)} ${'(cpu)'.padStart(7)} ${''.padStart(6)}` +
    `  ${'x1.2.0'.padStart(6)} ${'(cpu)'.padStart(7)} ${''.padStart(6)}`,
);
for (const g of GOALS) {
  const r = rows.find((x) => x.size === g.size && x.command === g.command);
  if (r === undefined) continue; // size not run (MDEVKIT_BENCH_SIZES)
  const v14 = r.cand / r.ref14;
  const v12 = r.cand / r.ref;
  console.log(
    `${String(g.size).padStart(7)}  ${g.command.padEnd(20)} ${`<=${g.atMost}`.padStart(6)}` +
      `  ${ratio(r.cand, r.ref14)} (${ratio(r.candCpu, r.ref14Cpu)}) ${verdict(v14, g.atMost)}` +
      `  ${ratio(r.cand, r.ref)} (${ratio(r.candCpu, r.refCpu)}) ${verdict(v12, g.atMost)}`,
  );
}
if (typeof fuse !== 'string') {
  const m = fuse.ms;
  const v14 = (m['mdevkit'] ?? NaN) / (m['1.4.0'] ?? NaN);
  const v12 = (m['mdevkit'] ?? NaN) / (m['1.2.0'] ?? NaN);
  console.log(
    `${'FUSE'.padStart(7)}  ${'start-parent-mdevs'.padEnd(20)} ${'<=1'.padStart(6)}` +
      `  ${ratio(m['mdevkit'] ?? NaN, m['1.4.0'] ?? NaN)} ${''.padStart(9)} ${verdict(v14, 1)}` +
      `  ${ratio(m['mdevkit'] ?? NaN, m['1.2.0'] ?? NaN)} ${''.padStart(9)} ${verdict(v12, 1)}`,
  );
}
if (!with14) console.log('(mdevctl 1.4.0 is not installed: scripts/install-mdevctl-ref.sh)');
