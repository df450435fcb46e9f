/**
 * mdevkit against Debian's mdevctl 1.2.0, through the shared differential
 * harness (../shared/compat): every scenario runs in two identical trees,
 * one per program, and exit codes, stdout, configs and sysfs writes are
 * compared. The harness's own scenarios must all pass except exactly those
 * docs/mdevctl-compat.md lists as deliberate; mdevkit's scenarios
 * (test/ctl/scenarios) must all pass, for bin/mdevkit and bin/mdevctl —
 * and for mdevctl itself, which keeps those scenarios honest.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SHARED_DIR, hasMdevctl, isRoot, requires } from '../support/capabilities.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const COMPAT = `${SHARED_DIR}compat/compat`;
const OWN_SCENARIOS = `${ROOT}test/ctl/scenarios`;
const TMP = fs.existsSync('/dev/shm') ? '/dev/shm' : '/tmp';

interface CompatResult {
  passed: number;
  failed: string[];
  output: string;
}

function compat(candidate: string, extra: string[] = []): CompatResult {
  const r = spawnSync(COMPAT, ['--tmpdir', TMP, ...extra, '--', candidate], {
    encoding: 'utf8',
    cwd: ROOT,
    maxBuffer: 64 * 1024 * 1024,
  });
  const output = `${r.stdout}\n${r.stderr}`;
  const summary = /^(\d+) passed, (\d+) failed$/m.exec(r.stdout);
  assert.ok(summary, `compat printed no summary (exit ${r.status}):\n${output}`);
  const failed = [...r.stdout.matchAll(/^FAIL ([^:\s]+)/gm)].map((m) => m[1]!);
  assert.equal(failed.length, Number(summary[2]), output);
  return { passed: Number(summary[1]), failed, output };
}

/** The scenario names docs/mdevctl-compat.md allows to differ. */
function deliberateDifferences(): string[] {
  const doc = fs.readFileSync(`${ROOT}docs/mdevctl-compat.md`, 'utf8');
  const start = doc.indexOf('## Scenarios that differ on purpose');
  assert.ok(start >= 0, 'docs/mdevctl-compat.md lost its list of deliberate differences');
  const end = doc.indexOf('\n## ', start + 1);
  const section = doc.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/^- `([^`]+)`/gm)].map((m) => m[1]!).sort();
}

const canRun = (t: Parameters<typeof requires>[0]): boolean =>
  requires(
    t,
    { root: isRoot, mdevctl: hasMdevctl, 'compat harness': fs.existsSync(COMPAT) },
    'runs mdevctl 1.2.0 side by side in mount namespaces',
  );

test(
  'the harness scenarios: identical to mdevctl 1.2.0 except the documented improvements',
  { timeout: 600_000 },
  (t) => {
    if (!canRun(t)) return;
    const allowed = deliberateDifferences();
    assert.ok(allowed.length > 0);
    const r = compat(`${ROOT}bin/mdevkit`);
    assert.ok(r.passed >= 100, `only ${r.passed} scenarios passed:\n${r.output}`);
    assert.deepEqual(
      r.failed.sort(),
      allowed,
      `unexpected differences from mdevctl 1.2.0:\n${r.output}`,
    );
  },
);

test(
  'mdevkit scenarios: the reference passes them (they are deterministic)',
  { timeout: 300_000 },
  (t) => {
    if (!canRun(t)) return;
    const r = compat('/usr/bin/mdevctl', ['--scenarios', OWN_SCENARIOS]);
    assert.deepEqual(r.failed, [], r.output);
    assert.ok(r.passed >= 50, r.output);
  },
);

for (const bin of ['bin/mdevkit', 'bin/mdevctl']) {
  test(`mdevkit scenarios: ${bin} behaves as mdevctl 1.2.0`, { timeout: 300_000 }, (t) => {
    if (!canRun(t)) return;
    const r = compat(`${ROOT}${bin}`, ['--scenarios', OWN_SCENARIOS]);
    assert.deepEqual(r.failed, [], r.output);
    assert.ok(r.passed >= 50, r.output);
  });
}
