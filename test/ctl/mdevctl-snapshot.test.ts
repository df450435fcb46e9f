/**
 * bin/mdevctl against Debian 13's mdevctl 1.4.0 on a tree written by
 * `mdevkit lab snapshot` (the emulated lab host, ten parents of six
 * drivers), with active devices and definitions added by hand: every
 * command and option of the issue runs in sequence on both sides (each in
 * a mount namespace, scripts/mdevctl-ns), and each step's exit status and
 * stdout, and the final /sys and /etc/mdevctl.d trees, must be identical.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isRoot, mdevctlReference, requires } from '../support/capabilities.js';
import { runMdevkit } from '../support/cli.js';
import { tmpDir } from '../support/tmp.js';
import {
  CANDIDATE,
  addActiveDevice,
  addDefinition,
  runInTree,
  type SideRun,
  type StepInput,
} from './support/differential.js';

const U = (n: number): string => `6a0f3c2e-1d4b-4e8a-9c7f-0000000000${String(n).padStart(2, '0')}`;
const ACTIVE_GVT = U(1);
const ACTIVE_NV = U(2);
const ACTIVE_CCW = U(3);
const DEF_NV_AUTO = U(11);
const DEF_GVT_ATTRS = U(12);
const DEF_TWO_PARENTS = U(13);
const FRESH = U(21);
const FRESH2 = U(22);

function buildTree(dir: string): string {
  const tree = path.join(dir, 'lab');
  const r = runMdevkit(['lab', 'snapshot', tree]);
  assert.equal(r.status, 0, r.stderr);
  fs.mkdirSync(path.join(tree, 'usr/lib/mdevctl/scripts.d/callouts'), { recursive: true });
  fs.mkdirSync(path.join(tree, 'usr/lib/mdevctl/scripts.d/notifiers'), { recursive: true });
  addActiveDevice(tree, '0000:00:02.0', 'i915-GVTg_V5_4', ACTIVE_GVT);
  addActiveDevice(tree, '0000:85:00.0', 'nvidia-11', ACTIVE_NV);
  addActiveDevice(tree, '0.0.0313', 'vfio_ccw-io', ACTIVE_CCW);
  addDefinition(tree, '0000:00:02.0', ACTIVE_GVT, {
    mdev_type: 'i915-GVTg_V5_4',
    start: 'auto',
    attrs: [{ fence: '4' }],
  });
  addDefinition(tree, '0000:86:00.0', DEF_NV_AUTO, {
    mdev_type: 'nvidia-12',
    start: 'auto',
    attrs: [],
  });
  addDefinition(tree, '0000:00:02.0', DEF_GVT_ATTRS, {
    mdev_type: 'i915-GVTg_V5_8',
    start: 'manual',
    attrs: [{ a: '1' }, { b: 'two' }, { c: '3' }],
  });
  addDefinition(tree, '0000:85:00.0', DEF_TWO_PARENTS, {
    mdev_type: 'nvidia-13',
    start: 'manual',
    attrs: [],
  });
  addDefinition(tree, '0000:86:00.0', DEF_TWO_PARENTS, {
    mdev_type: 'nvidia-13',
    start: 'auto',
    attrs: [],
  });
  return tree;
}

const JSON_INPUT = JSON.stringify({
  mdev_type: 'idxd-2wq',
  start: 'auto',
  attrs: [{ wq: 'wq0.1' }],
});

/** [args, stdin?] — every command and option of the issue, read-only ones first. */
const STEPS: [string[], string?][] = [
  [['list']],
  [['list', '-v']],
  [['list', '--dumpjson']],
  [['list', '-d']],
  [['list', '--defined', '--verbose']],
  [['list', '-d', '--dumpjson']],
  [['list', '-u', ACTIVE_GVT, '--dumpjson']],
  [['list', '-d', '-u', DEF_TWO_PARENTS, '--dumpjson']],
  [['list', '-d', '-p', '0000:00:02.0', '-v']],
  [['list', '-p', '0.0.0313']],
  [['list', '-dv']],
  [['types']],
  [['types', '--dumpjson']],
  [['types', '-p', 'matrix', '--dumpjson']],
  [['types', '-p', '0000:6a:01.0']],
  [['define', '-u', FRESH, '-p', '0000:6a:01.0', '-t', 'idxd-1wq']],
  [['define', '-u', FRESH, '-p', '0000:6a:01.0', '-t', 'idxd-1wq']],
  [['define', '-u', ACTIVE_NV]],
  [['define', '-u', FRESH2, '-p', '0000:6a:01.0', '--jsonfile', '/dev/stdin'], JSON_INPUT],
  [['define', '-u', FRESH2, '-p', '0000:85:00.0', '-t', 'nvidia-11', '-a']],
  [['modify', '-u', FRESH, '--addattr', 'wq', '--value', 'wq0.0']],
  [['modify', '-u', FRESH, '--addattr', 'mode', '--value', 'dedicated', '-i', '0']],
  [['modify', '-u', FRESH, '--delattr']],
  [['modify', '-u', FRESH, '-t', 'idxd-4wq', '--auto']],
  [['modify', '-u', FRESH2, '-m']],
  [['modify', '-u', FRESH2, '-p', '0000:6a:01.0', '-m']],
  [['modify', '-u', DEF_GVT_ATTRS, '--delattr', '--index', '1']],
  [['modify', '-u', DEF_TWO_PARENTS, '--manual']],
  [['list', '-d', '--dumpjson']],
  [['start', '-u', DEF_NV_AUTO]],
  [['start', '-u', DEF_TWO_PARENTS]],
  [['start', '-u', DEF_TWO_PARENTS, '-p', '0000:85:00.0']],
  [['start', '-p', '0000:00:02.0', '-t', 'i915-GVTg_V5_2', '-u', U(31)]],
  [['start', '-p', '0000:6a:01.0', '--jsonfile', '/dev/stdin', '-u', U(32)], JSON_INPUT],
  [['start', '-u', ACTIVE_GVT]],
  [['start', '-u', U(33), '-p', '0000:00:02.0', '-t', 'i915-GVTg_V5_9']],
  [['stop', '-u', ACTIVE_CCW]],
  [['stop', '-u', U(34)]],
  [['start-parent-mdevs', '0000:86:00.0']],
  [['undefine', '-u', DEF_TWO_PARENTS, '-p', '0000:85:00.0']],
  [['undefine', '-u', FRESH2]],
  [['undefine', '-u', U(35)]],
  [['list', '-d']],
];

/** Run STEPS with `argv` in a fresh copy of `tree`. */
function runSide(tree: string, work: string, argv: string): Promise<SideRun> {
  const copy = path.join(work, 'tree');
  fs.cpSync(tree, copy, { recursive: true, verbatimSymlinks: true });
  const steps = STEPS.map(([args, stdin], i): StepInput => {
    if (stdin === undefined) return { args };
    const stdinFile = path.join(work, `stdin-${i}`);
    fs.writeFileSync(stdinFile, stdin);
    return { args, stdinFile };
  });
  return runInTree(copy, work, { label: argv, argv: [argv] }, steps);
}

test(
  'a lab snapshot: every command, option by option, as mdevctl 1.4.0',
  { timeout: 180_000 },
  async (t) => {
    const reference = mdevctlReference('1.4.0');
    const needs = { root: isRoot, 'mdevctl 1.4.0': reference !== undefined };
    if (!requires(t, needs, 'runs mdevctl 1.4.0 in a mount namespace')) return;
    const dir = tmpDir('mdevkit-snapshot-');
    const tree = buildTree(dir);
    const [ref, cand] = await Promise.all([
      runSide(tree, path.join(dir, 'ref'), reference!),
      runSide(tree, path.join(dir, 'cand'), CANDIDATE),
    ]);
    ref.steps.forEach((r, i) => {
      const c = cand.steps[i]!;
      const what = `step ${i}: mdevctl ${r.args.join(' ')}\nref stderr: ${r.stderr}\ncand stderr: ${c.stderr}`;
      assert.equal(c.status, r.status, what);
      assert.equal(c.stdout, r.stdout, what);
      assert.equal(c.stderr === '', r.stderr === '', `stderr presence differs at ${what}`);
    });
    assert.deepEqual(cand.tree, ref.tree);
    // The sequence did real work on both sides.
    assert.ok(ref.steps.filter((s) => s.status === 0).length > 20);
    assert.ok([...ref.tree.keys()].some((k) => k.endsWith(`etc/mdevctl.d/0000:6a:01.0/${FRESH}`)));
  },
);
