/**
 * The differential scenarios by hand (root): what test/ctl/mdevctl-compat.test.ts
 * checks, with the details a person needs to work on a difference.
 *
 *   node --import tsx test/ctl/support/diff-cli.ts [options]
 *
 *   --ref 1.2.0|1.4.0   reference release (repeatable; default: every one installed)
 *   --only REGEX        scenarios whose name matches (repeatable)
 *   --candidate PATH    program to compare (default bin/mdevctl)
 *   --show-ref          only run the reference; print its exit codes, output and tree changes
 *   -v, --verbose       print both sides of every difference
 *   --record            write what was seen into test/ctl/known-differences/<release>.json:
 *                       differences of the scenarios run replace the listed ones, new
 *                       entries become "todo" with an empty "why" to fill in, entries
 *                       that no longer differ are dropped
 *   --jobs N            scenarios at once (default 2)
 *   --coverage          write test/ctl/upstream-coverage.md (which scenario covers
 *                       which of upstream mdevctl's own test cases) and exit
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  MDEVCTL_VERSIONS,
  mdevctlReference,
  type MdevctlVersion,
} from '../../support/capabilities.js';
import {
  CANDIDATE,
  SCRATCH_BASE,
  block,
  compareSides,
  pool,
  runScenario,
  snapshotTree,
  type Difference,
  type Program,
  type SideRun,
} from './differential.js';
import {
  knownDifferencesFile,
  listedSignatures,
  loadKnownDifferences,
  type KnownDifferences,
} from './known-differences.js';
import { buildTree, loadScenarios, type Scenario } from './scenarios.js';
import { COVERAGE_MAP_FILE, coverageMap, loadUpstreamCases } from './upstream-coverage.js';

const { values } = parseArgs({
  options: {
    ref: { type: 'string', multiple: true },
    only: { type: 'string', multiple: true },
    candidate: { type: 'string' },
    'show-ref': { type: 'boolean' },
    verbose: { type: 'boolean', short: 'v' },
    record: { type: 'boolean' },
    jobs: { type: 'string' },
    coverage: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  const src = fs.readFileSync(new URL(import.meta.url), 'utf8');
  process.stdout.write(
    `${src.slice(src.indexOf('/**') + 4, src.indexOf('*/')).replace(/^ \* ?/gm, '')}`,
  );
  process.exit(0);
}
if (values.coverage) {
  fs.writeFileSync(COVERAGE_MAP_FILE, coverageMap(loadScenarios(), loadUpstreamCases()));
  process.stderr.write(`diff-cli: wrote ${path.relative(process.cwd(), COVERAGE_MAP_FILE)}\n`);
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  process.stderr.write('diff-cli: needs root (mount namespaces)\n');
  process.exit(2);
}
const versions = (values.ref ?? MDEVCTL_VERSIONS) as MdevctlVersion[];
for (const v of versions) {
  if (!MDEVCTL_VERSIONS.includes(v)) {
    process.stderr.write(`diff-cli: unknown reference ${v} (${MDEVCTL_VERSIONS.join(', ')})\n`);
    process.exit(2);
  }
}
const refs = versions.flatMap((v): [MdevctlVersion, Program][] => {
  const bin = mdevctlReference(v);
  if (bin === undefined) {
    process.stderr.write(`diff-cli: mdevctl ${v} is not installed here; left out\n`);
    return [];
  }
  return [[v, { label: `mdevctl ${v}`, argv: [bin] }]];
});
if (refs.length === 0) process.exit(2);
const patterns = (values.only ?? []).map((p) => new RegExp(p));
const scenarios = loadScenarios().filter(
  (s) => patterns.length === 0 || patterns.some((p) => p.test(s.name)),
);
const candidate: Program = {
  label: 'candidate',
  argv: [path.resolve(values.candidate ?? CANDIDATE)],
};
const jobs = Number(values.jobs ?? '2');

/** What the reference changed in the tree, for --show-ref. */
function treeChanges(s: Scenario, dir: string, after: SideRun): string {
  const before = path.join(dir, 'before');
  buildTree(before, s.tree, path.join(dir, 'input'));
  const b = snapshotTree(before);
  const out: string[] = [];
  for (const p of [...new Set([...b.keys(), ...after.tree.keys()])].sort()) {
    const x = b.get(p);
    const y = after.tree.get(p);
    if (JSON.stringify(x) === JSON.stringify(y)) continue;
    out.push(`  ${x === undefined ? '+' : y === undefined ? '-' : '~'} ${p}`);
    if (y?.kind === 'file') out.push(block('    new', y.content).trimEnd());
    if (y?.kind === 'link') out.push(`    -> ${y.target}`);
  }
  return out.length > 0 ? `  tree changes:\n${out.join('\n')}\n` : '  tree changes: none\n';
}

const scratch = fs.mkdtempSync(path.join(SCRATCH_BASE, 'mdevkit-diff-'));
const seen = new Map<MdevctlVersion, Map<string, Difference[]>>(refs.map(([v]) => [v, new Map()]));
try {
  await pool(scenarios, jobs, async (s, i) => {
    const mine = refs.filter(([v]) => s.refs.includes(v));
    if (mine.length === 0) return;
    const dir = path.join(scratch, `${String(i).padStart(3, '0')}-${s.name}`);
    const programs = [...mine.map(([, p]) => p), ...(values['show-ref'] ? [] : [candidate])];
    const sides = await runScenario(s, dir, programs);
    let text = '';
    if (values['show-ref']) {
      mine.forEach(([v], k) => {
        const side = sides[k]!;
        text += `=== ${s.name} (mdevctl ${v}): ${s.description}\n`;
        for (const st of side.steps) {
          text += `$ mdevctl ${st.args.join(' ')}\n  exit: ${st.status}\n`;
          text += block('stdout', st.stdout) + block('stderr', st.stderr);
        }
        text += treeChanges(s, path.join(dir, `changes-${k}`), side);
      });
    } else {
      const cand = sides[sides.length - 1]!;
      mine.forEach(([v], k) => {
        const diffs = compareSides(s, sides[k]!, cand);
        seen.get(v)!.set(s.name, diffs);
        const listed = new Set(listedSignatures(loadKnownDifferences(v), s.name));
        const news = diffs.filter((d) => !listed.has(d.signature));
        const gone = [...listed].filter((x) => !diffs.some((d) => d.signature === x));
        const verdict =
          news.length > 0 || gone.length > 0 ? 'FAIL' : diffs.length > 0 ? 'KNOWN' : 'PASS';
        text += `${verdict.padEnd(5)} ${v} ${s.name}`;
        if (diffs.length > 0)
          text += `: ${diffs.map((d) => (listed.has(d.signature) ? d.signature : `*${d.signature}`)).join('; ')}`;
        if (gone.length > 0) text += ` (listed but gone: ${gone.join('; ')})`;
        text += '\n';
        if (values.verbose)
          for (const d of diffs) text += d.detail.replace(/^/gm, '    ').trimEnd() + '\n';
      });
    }
    process.stdout.write(text);
    fs.rmSync(dir, { recursive: true, force: true });
  });
} finally {
  fs.rmSync(scratch, { recursive: true, force: true });
}

if (values.record && !values['show-ref']) {
  for (const [v, bySeen] of seen) {
    const known: KnownDifferences = loadKnownDifferences(v);
    const differences = { ...known.differences };
    for (const [name, diffs] of bySeen) {
      if (diffs.length === 0) {
        delete differences[name];
        continue;
      }
      // Signatures stay in the entry that lists them; new ones form a to-do
      // entry whose "why" is left for a person to write.
      const now = new Set(diffs.map((d) => d.signature));
      const kept = (differences[name] ?? [])
        .map((e) => ({ ...e, differs: e.differs.filter((x) => now.has(x)) }))
        .filter((e) => e.differs.length > 0);
      const listed = new Set(kept.flatMap((e) => e.differs));
      const fresh = [...now].filter((x) => !listed.has(x));
      if (fresh.length > 0) kept.push({ kind: 'todo', differs: fresh, why: '' });
      differences[name] = kept;
    }
    const sorted = Object.fromEntries(
      Object.entries(differences).sort(([a], [b]) => a.localeCompare(b)),
    );
    const file = knownDifferencesFile(v);
    fs.writeFileSync(file, `${JSON.stringify({ ...known, differences: sorted }, null, 2)}\n`);
    process.stderr.write(`diff-cli: wrote ${path.relative(process.cwd(), file)}\n`);
  }
}
