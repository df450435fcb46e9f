/**
 * Crash debris (issue 12, item 18): the temp files of atomic writes that a
 * killed writer leaves (`.#<uuid>.<pid>.<n>`) are removed by the next write
 * in the same directory — only files that are ours and stale: named as we
 * name them, regular files owned by us, written by a process that is gone,
 * and older than a write could take. Anything else starting with ".#" stays.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import {
  STALE_TEMP_AGE_MS,
  cleanConfigDirDebris,
  cleanStaleTempFiles,
} from '../../src/host/config-store.js';
import { startAgent } from '../agent/running.js';
import { isRoot, requires } from '../support/capabilities.js';
import { runMdevkit } from '../support/cli.js';
import { uuidN } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { hostLab, mdevctl } from './host-support.js';

/** The PID of a process that has exited. */
function deadPid(): number {
  const r = spawnSync('sh', ['-c', 'echo $$']);
  return Number(String(r.stdout).trim());
}

const OLD = new Date(Date.now() - 10 * 60_000);
const DEF = JSON.stringify({ mdev_type: 'mtty-1', start: 'manual', attrs: [] }, null, 2);

function plant(dir: string, name: string, old = true): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, DEF.slice(0, 17)); // what a kill mid-write leaves: a torn start
  if (old) fs.utimesSync(p, OLD, OLD);
  return p;
}

describe('debris of interrupted writes', () => {
  it('the next write in the directory removes ours that are stale, and nothing else', () => {
    const h = hostLab();
    const mtty = path.join(h.configDir, 'mtty');
    const mdpy = path.join(h.configDir, 'mdpy');
    fs.mkdirSync(mtty);
    fs.mkdirSync(mdpy);
    const dead = deadPid();
    const u = uuidN(1);
    const stale = [plant(mtty, `.#${u}.${dead}.0`), plant(mtty, `.#${uuidN(2)}.${dead}.17`)];
    const kept = [
      plant(mtty, `.#${u}.${process.pid}.3`), // a live writer's
      plant(mtty, `.#${u}.${dead}.1`, false), // too young to be sure
      plant(mtty, '.#notes'), // not a name we make
      plant(mtty, `.#${u}.${dead}.x`),
      plant(mtty, `.#${u}.0${dead}.1`),
      plant(mdpy, `.#${u}.${dead}.0`), // another directory: no write there
    ];
    fs.symlinkSync(path.join(h.outside, 'shadow'), path.join(mtty, `.#${u}.${dead}.2`));
    kept.push(path.join(mtty, `.#${u}.${dead}.2`));
    fs.mkdirSync(path.join(mtty, `.#${u}.${dead}.4`));
    kept.push(path.join(mtty, `.#${u}.${dead}.4`));

    // Listing is read-only: it skips debris and removes nothing.
    const list = mdevctl(h, ['list', '-d']);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.stderr, '');
    for (const p of stale) assert.ok(fs.existsSync(p));

    assert.equal(mdevctl(h, ['define', '-u', uuidN(9), '-p', 'mtty', '-t', 'mtty-1']).code, 0);
    for (const p of stale) assert.ok(!fs.existsSync(p), `${path.basename(p)} is still there`);
    for (const p of kept) {
      assert.ok(fs.lstatSync(p, { throwIfNoEntry: false }), `${path.basename(p)} was removed`);
    }
    assert.equal(fs.readFileSync(path.join(h.outside, 'shadow'), 'utf8').length > 0, true);

    // An undefine is a write in the directory too.
    const again = plant(mtty, `.#${uuidN(3)}.${dead}.5`);
    assert.equal(mdevctl(h, ['undefine', '-u', uuidN(9)]).code, 0);
    assert.ok(!fs.existsSync(again));
  });

  it('a young temp file becomes debris once it is older than a write could take', () => {
    const h = hostLab();
    const dir = path.join(h.configDir, 'mtty');
    fs.mkdirSync(dir);
    const name = `.#${uuidN(1)}.${deadPid()}.0`;
    plant(dir, name, false);
    assert.deepEqual(cleanStaleTempFiles(dir), []);
    assert.deepEqual(cleanStaleTempFiles(dir, Date.now() + STALE_TEMP_AGE_MS + 1000), [name]);
  });

  it('a program that starts cleans every parent directory at once, links and scripts.d aside', () => {
    const h = hostLab();
    const dead = deadPid();
    const stale: string[] = [];
    for (const p of ['mtty', 'mdpy', '0000:00:02.0']) {
      fs.mkdirSync(path.join(h.configDir, p));
      stale.push(plant(path.join(h.configDir, p), `.#${uuidN(1)}.${dead}.0`));
    }
    const inScripts = plant(path.join(h.configDir, 'scripts.d'), `.#${uuidN(1)}.${dead}.0`);
    fs.mkdirSync(path.join(h.outside, 'linked'));
    const behindLink = plant(path.join(h.outside, 'linked'), `.#${uuidN(1)}.${dead}.0`);
    fs.symlinkSync(path.join(h.outside, 'linked'), path.join(h.configDir, 'linked'));
    assert.deepEqual(cleanConfigDirDebris(h.configDir).sort(), stale.sort());
    assert.ok(fs.existsSync(inScripts));
    assert.ok(fs.existsSync(behindLink));
  });

  it("another user's temp file is not ours to remove", (t) => {
    if (!requires(t, { root: isRoot }, 'the file is given to another user (chown)')) return;
    const h = hostLab();
    const dir = path.join(h.configDir, 'mtty');
    fs.mkdirSync(dir);
    const p = plant(dir, `.#${uuidN(1)}.${deadPid()}.0`);
    fs.chownSync(p, 65534, 65534);
    assert.deepEqual(cleanStaleTempFiles(dir), []);
    assert.ok(fs.existsSync(p));
  });

  it('the agent cleans its config dir at start, on its lab and with --root', async () => {
    const dead = deadPid();
    const lab = tmpDir('mdevkit-sec-debris-agent-');
    const root = tmpDir('mdevkit-sec-debris-root-');
    assert.equal(runMdevkit(['lab', 'snapshot', root]).status, 0);
    for (const [configDir, args] of [
      [path.join(lab, 'etc/mdevctl.d'), ['--state-dir', lab]],
      [path.join(root, 'etc/mdevctl.d'), ['--root', root, '--state-dir', tmpDir('mdevkit-sec-')]],
    ] as const) {
      const mtty = path.join(configDir, 'mtty');
      fs.mkdirSync(mtty, { recursive: true, mode: 0o755 });
      const stale = plant(mtty, `.#${uuidN(1)}.${dead}.0`);
      const notOurs = plant(mtty, '.#notes');
      const agent = await startAgent(['--listen', '127.0.0.1:0', ...args]);
      try {
        assert.equal(fs.existsSync(stale), false, `${args.join(' ')}: the debris is still there`);
        assert.ok(fs.existsSync(notOurs), `${args.join(' ')}: a file not ours was removed`);
      } finally {
        await agent.stop();
      }
    }
  });
});
