/**
 * bin/mdevctl against the real mdevctl, scenario by scenario
 * (test/ctl/scenarios, run by test/ctl/support/differential.ts): every
 * scenario runs in identical throw-away trees, once per program, and exit
 * codes, stdout, stderr presence and the resulting trees are compared.
 *
 * Two references: Debian 12's mdevctl 1.2.0 (/usr/bin/mdevctl) and Debian
 * 13's 1.4.0 (scripts/install-mdevctl-ref.sh). For each, the drop-in may
 * differ only as test/ctl/known-differences/<release>.json says; the file
 * marked "target" (the release the drop-in claims to be) may hold only
 * deliberate and newer-upstream entries, the others also to-dos. A listed
 * difference that stops occurring fails too, so the lists stay true.
 *
 *   MDEVKIT_REF=1.4.0          only that reference
 *   MDEVKIT_SCENARIOS=REGEX    only the scenarios whose name matches
 *   node --import tsx test/ctl/support/diff-cli.ts --help   (by hand)
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, test, type TestContext } from 'node:test';
import {
  MDEVCTL_VERSIONS,
  isRoot,
  mdevctlReference,
  requires,
  type MdevctlVersion,
} from '../support/capabilities.js';
import { tmpDir } from '../support/tmp.js';
import {
  CANDIDATE,
  REPO,
  SCRATCH_BASE,
  compareSides,
  pool,
  runScenario,
  type Difference,
  type Program,
  type SideRun,
} from './support/differential.js';
import {
  documentedDeliberate,
  explain,
  judge,
  loadKnownDifferences,
} from './support/known-differences.js';
import { loadScenarios, type Scenario } from './support/scenarios.js';
import { COMMAND_SPECS } from '../../src/ctl/mdevctl/spec.js';
import {
  COVERAGE_MAP_FILE,
  coverage,
  coverageMap,
  loadUpstreamCases,
} from './support/upstream-coverage.js';

const onlyRef = process.env['MDEVKIT_REF'];
if (onlyRef !== undefined && !MDEVCTL_VERSIONS.includes(onlyRef as MdevctlVersion)) {
  throw new Error(`MDEVKIT_REF=${onlyRef}: known references are ${MDEVCTL_VERSIONS.join(', ')}`);
}
const VERSIONS = MDEVCTL_VERSIONS.filter((v) => onlyRef === undefined || v === onlyRef);
const pattern = new RegExp(process.env['MDEVKIT_SCENARIOS'] ?? '');
const ALL = loadScenarios();
const SCENARIOS = ALL.filter((s) => pattern.test(s.name));

const DROP_IN: Program = { label: 'bin/mdevctl', argv: [CANDIDATE] };
const COMMAND_NAMES = new Set(COMMAND_SPECS.map((c) => c.name));

/** What bin/mdevkit printed, with its own name where mdevctl says "mdevctl" (usage lines, versions). */
function asMdevctl(side: SideRun): SideRun {
  const rename = (t: string): string =>
    t.replaceAll(' (mdevkit)', '').replace(/\bmdevkit\b/g, 'mdevctl');
  return {
    ...side,
    steps: side.steps.map((st) => ({
      ...st,
      stdout: rename(st.stdout),
      stderr: rename(st.stderr),
    })),
  };
}
const MDEVKIT: Program = { label: 'bin/mdevkit', argv: [`${REPO}bin/mdevkit`] };
const reference = (v: MdevctlVersion, again = false): Program | undefined => {
  const bin = mdevctlReference(v);
  return bin === undefined
    ? undefined
    : { label: `mdevctl ${v}${again ? ' (again)' : ''}`, argv: [bin] };
};

const need = (t: TestContext, v?: MdevctlVersion): boolean =>
  requires(
    t,
    {
      root: isRoot,
      ...(v !== undefined ? { [`mdevctl ${v}`]: mdevctlReference(v) !== undefined } : {}),
    },
    v === '1.4.0'
      ? 'runs mdevctl 1.4.0 (scripts/install-mdevctl-ref.sh) in mount namespaces'
      : 'runs the reference mdevctl in mount namespaces',
  );

/** scenario name -> program label -> what it did */
const runs = new Map<string, Map<string, SideRun>>();

function differences(ref: string, cand: string, scenarios = SCENARIOS): Map<string, Difference[]> {
  const seen = new Map<string, Difference[]>();
  for (const s of scenarios) {
    const sides = runs.get(s.name);
    const r = sides?.get(ref);
    const c = sides?.get(cand);
    if (r !== undefined && c !== undefined) seen.set(s.name, compareSides(s, r, c));
  }
  return seen;
}

describe('mdevctl differential scenarios', { concurrency: false }, () => {
  before(async () => {
    if (!isRoot) return;
    const work = tmpDir('mdevkit-compat-');
    const scratch = fs.mkdtempSync(path.join(SCRATCH_BASE, 'mdevkit-compat-'));
    try {
      await pool(SCENARIOS, 2, async (s: Scenario, i) => {
        const programs: Program[] = [];
        for (const v of VERSIONS.filter((x) => s.refs.includes(x))) {
          const ref = reference(v);
          // The reference twice: a scenario whose outcome is not deterministic
          // (directory order, time) would make every comparison meaningless.
          if (ref !== undefined) programs.push(ref, reference(v, true)!);
        }
        if (programs.length === 0) return;
        // bin/mdevkit shares src/ctl with bin/mdevctl and differs only in how
        // it is entered; every fourth scenario checks that, to spare CI a
        // Node start-up per step (not those about the program level, where
        // mdevkit has commands of its own).
        const commandsOnly = s.steps.every((st) => COMMAND_NAMES.has(st.args[0] ?? ''));
        programs.push(DROP_IN, ...(i % 4 === 0 && commandsOnly ? [MDEVKIT] : []));
        const dir = path.join(scratch, `${String(i).padStart(3, '0')}-${s.name}`);
        const sides = (await runScenario(s, dir, programs)).map((side) =>
          side.program === MDEVKIT ? asMdevctl(side) : side,
        );
        runs.set(s.name, new Map(sides.map((side) => [side.program.label, side])));
        fs.rmSync(dir, { recursive: true, force: true });
      });
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
      fs.rmSync(work, { recursive: true, force: true });
    }
  });

  for (const v of VERSIONS) {
    test(`the scenarios are deterministic: mdevctl ${v} agrees with itself`, (t) => {
      if (!need(t, v)) return;
      const seen = differences(`mdevctl ${v}`, `mdevctl ${v} (again)`);
      assert.ok(seen.size > 0, 'no scenario ran');
      const differing = [...seen].filter(([, d]) => d.length > 0);
      assert.deepEqual(
        differing.map(([name, d]) => `${name}: ${d.map((x) => x.signature).join('; ')}`),
        [],
        differing.flatMap(([, d]) => d.map((x) => x.detail)).join('\n'),
      );
    });

    test(`bin/mdevctl against mdevctl ${v}: only the listed differences`, (t) => {
      if (!need(t, v)) return;
      const known = loadKnownDifferences(v);
      const seen = differences(`mdevctl ${v}`, DROP_IN.label);
      assert.ok(
        seen.size >= (pattern.source === '(?:)' ? 100 : 1),
        `only ${seen.size} scenarios ran`,
      );
      const verdict = judge(known, seen);
      assert.ok(verdict.unexpected.size === 0 && verdict.vanished.size === 0, explain(v, verdict));
      // The scenarios did real work: most of them succeed on the reference.
      const ok = [...seen.keys()].filter((n) =>
        runs
          .get(n)!
          .get(`mdevctl ${v}`)!
          .steps.some((s) => s.status === 0),
      );
      assert.ok(ok.length * 3 > seen.size, `only ${ok.length} of ${seen.size} scenarios succeed`);
    });
  }

  test('bin/mdevkit behaves as bin/mdevctl (both front ends of src/ctl)', (t) => {
    if (!need(t)) return;
    const seen = differences(DROP_IN.label, MDEVKIT.label);
    // (a selection of scenarios may hold none about commands)
    assert.ok(seen.size > 0 || pattern.source !== '(?:)', 'no scenario ran');
    const differing = [...seen].filter(([, d]) => d.length > 0);
    assert.deepEqual(
      differing.map(([name, d]) => `${name}: ${d.map((x) => x.signature).join('; ')}`),
      [],
      differing.flatMap(([, d]) => d.map((x) => x.detail)).join('\n'),
    );
  });
});

describe('the lists of known differences', () => {
  test('the target release has no to-dos, and every entry names a scenario', () => {
    const targets = MDEVCTL_VERSIONS.filter((v) => loadKnownDifferences(v).target);
    assert.equal(targets.length, 1, 'exactly one reference is the target');
    for (const v of MDEVCTL_VERSIONS) {
      const known = loadKnownDifferences(v);
      for (const [name, entries] of Object.entries(known.differences)) {
        const s = ALL.find((x) => x.name === name);
        assert.ok(s, `${v}.json names ${name}, which is no scenario`);
        assert.ok(s.refs.includes(v), `${v}.json names ${name}, which does not run against ${v}`);
        const sigs = entries.flatMap((e) => e.differs);
        assert.equal(
          new Set(sigs).size,
          sigs.length,
          `${v}.json lists a difference of ${name} twice`,
        );
        for (const e of entries) {
          assert.notEqual(e.why.trim(), '', `${v}.json: ${name} needs a "why"`);
          if (known.target) assert.notEqual(e.kind, 'todo', `${v} is the target: ${name}`);
        }
      }
    }
  });

  test('deliberate differences are the ones docs/mdevctl-compat.md explains', () => {
    const deliberate = new Set<string>();
    for (const v of MDEVCTL_VERSIONS) {
      for (const [name, entries] of Object.entries(loadKnownDifferences(v).differences)) {
        if (entries.some((e) => e.kind === 'deliberate')) deliberate.add(name);
      }
    }
    assert.deepEqual([...deliberate].sort(), documentedDeliberate());
  });
});

describe("upstream mdevctl's own test cases", () => {
  test('each is covered by a scenario, and test/ctl/upstream-coverage.md is current', () => {
    const upstream = loadUpstreamCases();
    const covered = coverage(ALL);
    for (const [id, by] of covered) {
      assert.ok(
        upstream.cases.includes(id),
        `${by[0]!.name} names ${id}, which is no upstream case`,
      );
    }
    const missing = upstream.cases.filter((c) => !covered.has(c) && !(c in upstream.uncovered));
    assert.deepEqual(missing, [], 'upstream cases no scenario covers');
    assert.equal(
      fs.readFileSync(COVERAGE_MAP_FILE, 'utf8'),
      coverageMap(ALL, upstream),
      'regenerate it: node --import tsx test/ctl/support/diff-cli.ts --coverage',
    );
  });
});

describe('the differential runner', () => {
  test('notices each kind of difference', async (t) => {
    if (!need(t, '1.2.0')) return;
    const ref = reference('1.2.0')!;
    const scenario = ALL.find((s) => s.name === 'define-uuid-parent-type-then-list');
    assert.ok(scenario, 'the scenario the mutants run');
    // Wrappers around the reference, each wrong in one way.
    const mutant = (label: string, script: string): Program => ({
      label,
      argv: ['sh', '-c', script, 'sh', ref.argv[0]!],
    });
    const bin = 'b=$1; shift;';
    const onList = (filter: string): string =>
      `${bin} if [ "$1" = list ]; then "$b" "$@" | ${filter}; else exec "$b" "$@"; fi`;
    const mutants: [Program, string[]][] = [
      [mutant('same', `${bin} exec "$b" "$@"`), []],
      [
        mutant('list fails', `${bin} "$b" "$@"; rc=$?; [ "$1" = list ] && exit 1; exit $rc`),
        ['step 2: exit-status'],
      ],
      [mutant('other exit code', `${bin} "$b" "$@" || exit 3`), ['step 3: exit-code']],
      [mutant('JSON spacing', onList("tr -d ' '")), ['step 2: stdout-text']],
      [mutant('JSON content', onList('sed s/manual/auto/')), ['step 2: stdout-json']],
      [
        mutant('stderr', `${bin} "$b" "$@"; rc=$?; echo note >&2; exit $rc`),
        ['step 1: stderr-presence', 'step 2: stderr-presence'],
      ],
      [
        mutant('tree', `${bin} "$b" "$@"; rc=$?; touch /etc/mdevctl.d/stray; exit $rc`),
        ['tree etc/mdevctl.d/stray'],
      ],
    ];
    const dir = fs.mkdtempSync(path.join(SCRATCH_BASE, 'mdevkit-mutants-'));
    try {
      const sides = await runScenario(scenario, dir, [ref, ...mutants.map(([p]) => p)]);
      mutants.forEach(([p, expected], i) => {
        const got = compareSides(scenario, sides[0]!, sides[i + 1]!).map((d) => d.signature);
        assert.deepEqual(got, expected, p.label);
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
