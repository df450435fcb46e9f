/**
 * `mdevkit lab snapshot DIR` makes a tree the mdevctl programs accept as it
 * is (issue 12, item 18): besides DIR/sys and DIR/etc/mdevctl.d, the script
 * directories each release requires — etc/mdevctl.d/scripts.d/{callouts,
 * notifiers} (1.2.0, and bin/mdevctl) and usr/lib/mdevctl/scripts.d/...
 * (1.3 on) — so `MDEVCTL_ENV_ROOT=DIR bin/mdevctl types` works on a fresh one.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { hasMdevctl14, mdevctlReference, requires } from '../support/capabilities.js';
import { runMdevkit } from '../support/cli.js';
import { tmpDir } from '../support/tmp.js';

const MDEVCTL_BIN = new URL('../../bin/mdevctl', import.meta.url).pathname;

describe('lab snapshot', () => {
  const dir = path.join(tmpDir('mdevkit-sec-snap-'), 'lab');
  const snap = runMdevkit(['lab', 'snapshot', dir]);

  it('creates the script directories mdevctl requires', () => {
    assert.equal(snap.status, 0, snap.stderr);
    for (const d of [
      'etc/mdevctl.d/scripts.d/callouts',
      'etc/mdevctl.d/scripts.d/notifiers',
      'usr/lib/mdevctl/scripts.d/callouts',
      'usr/lib/mdevctl/scripts.d/notifiers',
    ]) {
      assert.ok(fs.statSync(path.join(dir, d)).isDirectory(), d);
      assert.deepEqual(fs.readdirSync(path.join(dir, d)), [], `${d} is empty`);
    }
  });

  it('bin/mdevctl accepts a fresh snapshot', () => {
    const r = spawnSync(MDEVCTL_BIN, ['types'], {
      env: { ...process.env, MDEVCTL_ENV_ROOT: dir },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /mdpy-hd|nvidia-11|i915-GVTg/);
    assert.equal(r.stderr, '');
  });

  it('mdevctl 1.4.0 accepts it too', (t) => {
    if (!requires(t, { mdevctl14: hasMdevctl14() }, 'the reference takes MDEVCTL_ENV_ROOT')) return;
    const r = spawnSync(mdevctlReference('1.4.0')!, ['types'], {
      env: { ...process.env, MDEVCTL_ENV_ROOT: dir },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /available instances/i);
  });
});
