/**
 * `lab serve` stops on the first SIGTERM or SIGINT even when its mount was
 * removed from outside (`fusermount -u`) first (issue 12, item 15): it used
 * to report the failed unmount and then stay up, held by the FUSE binding,
 * until a second signal killed it.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { isMountpoint } from '../../src/sim/fuse/sysfs-fuse.js';
import { FUSE_NEEDS, serveLabIn } from '../fuse/served-lab.js';
import { requires } from '../support/capabilities.js';
import { MDEVKIT_BIN } from '../support/cli.js';

/** The exit status, or 'still running' when `ms` pass first. */
function exitWithin(
  lab: { stop(signal?: NodeJS.Signals): Promise<number | null> },
  signal: NodeJS.Signals,
  ms: number,
): Promise<number | null | 'still running'> {
  return Promise.race([
    lab.stop(signal),
    new Promise<'still running'>((r) => setTimeout(() => r('still running'), ms).unref()),
  ]);
}

describe('lab serve after its mount was removed from outside', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`exits on the first ${signal}, saying the mount was gone`, async (t) => {
      if (!requires(t, FUSE_NEEDS, 'serves a lab over FUSE')) return;
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdevkit-sec-serve-'));
      const lab = await serveLabIn(dir);
      try {
        execFileSync('fusermount', ['-u', lab.sys]);
        assert.ok(!isMountpoint(lab.sys), 'fusermount -u removed the mount');
        const status = await exitWithin(lab, signal, 10_000);
        assert.equal(status, 0, `after one ${signal}: ${String(status)}\n${lab.errors()}`);
        assert.match(lab.errors(), /already unmounted|removed from outside/);
        assert.doesNotMatch(lab.errors(), /^\s+at /m);
      } finally {
        if (lab.child.exitCode === null && lab.child.signalCode === null) lab.child.kill('SIGKILL');
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('a lab that was never disturbed still unmounts and exits 0 on SIGTERM', async (t) => {
    if (!requires(t, FUSE_NEEDS, 'serves a lab over FUSE')) return;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdevkit-sec-serve-'));
    const lab = await serveLabIn(dir);
    try {
      assert.ok(isMountpoint(lab.sys));
      assert.equal(await exitWithin(lab, 'SIGTERM', 10_000), 0, lab.errors());
      assert.ok(!isMountpoint(lab.sys));
      assert.equal(lab.errors(), '');
    } finally {
      if (lab.child.exitCode === null && lab.child.signalCode === null) lab.child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('lab serve --cache', () => {
  it('takes seconds from 0 to 3600 written as decimals, and nothing else', (t) => {
    if (!requires(t, FUSE_NEEDS, 'lab serve checks for FUSE first')) return;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdevkit-sec-cache-'));
    try {
      for (const v of [
        '',
        ' ',
        '0x10',
        '1e3',
        '-1',
        '3601',
        'NaN',
        'Infinity',
        '1_0',
        '\u0661',
        '5s',
      ]) {
        const r = spawnSync(
          process.execPath,
          [MDEVKIT_BIN, 'lab', 'serve', '--mount', dir, '--cache', v],
          {
            encoding: 'utf8',
            timeout: 20_000,
          },
        );
        assert.equal(
          r.status,
          2,
          `--cache ${JSON.stringify(v)}: ${r.status} ${r.signal} ${r.stderr}`,
        );
        // "-1" looks like an option to the parser, which says so.
        assert.match(r.stderr, /--cache takes seconds|'--cache' argument is ambiguous/);
        assert.ok(!isMountpoint(path.join(dir, 'sys')));
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('lab serve at start', () => {
  it('removes the stale temp files a killed writer left in its config dir', async (t) => {
    if (!requires(t, FUSE_NEEDS, 'serves a lab over FUSE')) return;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdevkit-sec-debris-'));
    const mtty = path.join(dir, 'etc/mdevctl.d/mtty');
    fs.mkdirSync(mtty, { recursive: true });
    const dead = Number(String(spawnSync('sh', ['-c', 'echo $$']).stdout).trim());
    const stale = path.join(mtty, `.#00000000-0000-4000-8000-000000000001.${dead}.0`);
    const foreign = path.join(mtty, '.#notes');
    for (const f of [stale, foreign]) {
      fs.writeFileSync(f, '{"mdev_ty');
      fs.utimesSync(f, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    }
    const lab = await serveLabIn(dir);
    try {
      assert.equal(fs.existsSync(stale), false, 'the debris is still there');
      assert.equal(fs.existsSync(foreign), true, 'a file that is not ours was removed');
    } finally {
      await lab.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
