/**
 * mdevkit's mdevctl commands side by side with Debian's mdevctl 1.2.0 (and
 * 1.4.0 when scripts/install-mdevctl-ref.sh has installed it), on the same
 * generated trees (test/support/gen-tree.ts: 8 parents x 4 types) of 10, 1k
 * and 10k devices (N active, N defined, half of them both): `list`,
 * `list -d --dumpjson`, `types` and `define`. mdevctl 1.2.0 always works on
 * "/", so every timing runs inside one private mount namespace per tree
 * (scripts/mdevctl-ns) where the tree is /sys and /etc/mdevctl.d; a small
 * driver there alternates the programs and `node -e 0`, and the median and
 * best wall time of each are reported. Needs root and mdevctl 1.2.0.
 *
 *   npm run bench mdevctl            (MDEVKIT_BENCH_SIZES=10,1000 to pick sizes)
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
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
const reps = (n: number): number => (n >= 10000 ? 7 : n >= 1000 ? 11 : 21);

if (process.getuid?.() !== 0 || REFERENCE === undefined) {
  console.log('mdevctl bench: needs root and mdevctl 1.2.0 (apt-get install mdevctl); skipped');
  process.exit(0);
}

// The driver runs inside the namespace: for each command, alternate
// reference, candidate and `node -e 0`, and print the medians as JSON.
const DRIVER = `
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
const [ref, cand, repsArg, freeParent, freeType, ref14] = process.argv.slice(2);
const reps = Number(repsArg);
const commands = {
  'list': () => ['list'],
  'list -d --dumpjson': () => ['list', '-d', '--dumpjson'],
  'types': () => ['types'],
  'define': () => ['define', '-u', randomUUID(), '-p', freeParent, '-t', freeType],
};
function time(cmd, args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(cmd + ' ' + args.join(' ') + ' failed: ' + r.stderr);
  return ms;
}
const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
const min = (xs) => Math.min(...xs);
const out = {};
const node = [];
for (const [name, args] of Object.entries(commands)) {
  const r = [], c = [], r14 = [];
  time(ref, args()); time(cand, args()); // warm the page cache
  if (ref14) time(ref14, args());
  for (let i = 0; i < reps; i++) {
    r.push(time(ref, args()));
    c.push(time(cand, args()));
    if (ref14) r14.push(time(ref14, args()));
    node.push(time(process.execPath, ['-e', '0']));
  }
  out[name] = { ref: median(r), cand: median(c), refMin: min(r), candMin: min(c),
    ref14: ref14 ? median(r14) : NaN, ref14Min: ref14 ? min(r14) : NaN };
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
const fmt = (ms: number): string => ms.toFixed(1).padStart(8);
const ratio = (a: number, b: number): string => (a / b).toFixed(2).padStart(5);
console.log(
  `wall time per command, ms: median and best of the runs (node -e 0: median ${nodeMs.toFixed(1)}, best ${nodeMin.toFixed(1)})`,
);
// "mdevctl" is 1.2.0, as before; 1.4.0's median and mdevkit's ratio to it
// follow when it is installed.
const with14 = REFERENCE_14 !== undefined;
console.log(
  `${'devices'.padStart(7)}  ${'command'.padEnd(20)} ${'mdevctl'.padStart(8)} ${'mdevkit'.padStart(8)}  ratio  over node` +
    `   ${'best:ref'.padStart(8)} ${'cand'.padStart(8)}  ratio  over node` +
    (with14 ? `   ${'1.4.0'.padStart(8)}  ratio` : ''),
);
for (const r of rows) {
  console.log(
    `${String(r.size).padStart(7)}  ${r.command.padEnd(20)} ${fmt(r.ref)} ${fmt(r.cand)}  ${ratio(r.cand, r.ref)}  ${fmt(r.cand - nodeMs)}` +
      `   ${fmt(r.refMin)} ${fmt(r.candMin)}  ${ratio(r.candMin, r.refMin)}  ${fmt(r.candMin - nodeMin)}` +
      (with14 ? `   ${fmt(r.ref14)}  ${ratio(r.cand, r.ref14)}` : ''),
  );
}
