import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { MDEVCTL_NS, hasFuse, hasMdevctl, isRoot, requires } from '../support/capabilities.js';
import { MDEVKIT_BIN, runMdevkit } from '../support/cli.js';
import { U1, U2 } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';

/**
 * `mdevkit ap` end to end through bin/mdevkit (the built bundle, `npm run
 * build`): `ap show` reads a `lab snapshot` tree; the changing commands run
 * against a live lab served over FUSE (`lab serve`), where their writes reach
 * the emulated kernel and its errno comes back through the file system.
 */

const TYPE = 'sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough';

describe('mdevkit ap on a lab snapshot', () => {
  const root = tmpDir();
  const snap = runMdevkit(['lab', 'snapshot', root]);

  it('writes a snapshot with the AP bus of the lab profile', () => {
    assert.equal(snap.status, 0, snap.stderr);
    assert.ok(fs.existsSync(path.join(root, 'sys/bus/ap/apmask')));
  });

  it('shows the grid of the lab profile (--root and MDEVCTL_ENV_ROOT)', () => {
    const r = runMdevkit(['ap', 'show', '--root', root]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /4 adapters, 4 domains/);
    assert.match(r.stdout, /^03 CEX7C\s+H\s+H\s+\.\s+\.$/m);
    assert.match(r.stdout, /^05 CEX8P\s+\.\s+\.\s+\.\s+\.$/m);
    assert.match(r.stdout, /No matrix devices/);
    const j = runMdevkit(['ap', 'show', '--json'], {
      env: { ...process.env, MDEVCTL_ENV_ROOT: root },
    });
    assert.equal(j.status, 0, j.stderr);
    const json = JSON.parse(j.stdout) as { adapters: { id: number }[]; queues: unknown[] };
    assert.deepEqual(
      json.adapters.map((a) => a.id),
      [3, 5, 6, 10],
    );
    assert.equal(json.queues.length, 16);
  });

  it('fails in words on a root without an AP bus, and on bad lists with usage', () => {
    const empty = tmpDir();
    const r = runMdevkit(['ap', 'show', '--root', empty]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^mdevkit: no AP bus at \/sys\/bus\/ap .*not an s390 host/);
    const bad = runMdevkit(['ap', 'reserve', '--adapters', '5-x', '--root', root]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /adapter list: '5-x' is not a number/);
    assert.doesNotMatch(bad.stderr, /at .*\.js/, 'no stack trace');
  });
});

/** `bin/mdevkit lab serve --mount DIR` in a child; resolves once it prints "ready DIR". */
async function serveLab(dir: string): Promise<() => Promise<void>> {
  const child = spawn(process.execPath, [MDEVKIT_BIN, 'lab', 'serve', '--mount', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`lab serve not ready: ${err}`)), 15000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes(`ready ${dir}`)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => reject(new Error(`lab serve exited early: ${err}`)));
  });
  return async () => {
    child.kill('SIGTERM');
    await exited;
  };
}

describe('mdevkit ap on a live lab over FUSE', () => {
  it('reserves, assigns with explanations, refuses a release in use, and shows the result', async (t) => {
    if (!requires(t, { root: isRoot, fuse: hasFuse }, 'serves the lab as a FUSE mount')) return;
    const dir = tmpDir('mdevkit-ap-fuse-');
    const stop = await serveLab(dir);
    // Unmount before tmpDir's cleanup runs: rm -r must never walk a live mount.
    try {
      await exerciseServedLab(dir);
    } finally {
      await stop();
    }
  });
});

async function exerciseServedLab(dir: string): Promise<void> {
  const ap = (...args: string[]) => runMdevkit(['ap', ...args, '--root', dir]);

  fs.writeFileSync(path.join(dir, TYPE, 'create'), U1);
  fs.writeFileSync(path.join(dir, TYPE, 'create'), U2);

  // Adapter 3 is the host's: the assignment is explained and refused.
  const refused = ap('assign', U1, '--adapters', '3', '--domains', '4');
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /queue 03\.0004 belongs to the host/);
  assert.match(refused.stderr, /mdevkit ap reserve --adapters 0x3/);

  const reserve = ap('reserve', '--adapters', '3');
  assert.equal(reserve.status, 0, reserve.stderr);
  assert.match(reserve.stdout, /queues to guests \(vfio_ap\): 03\.0004 03\.0006\n/);
  assert.match(fs.readFileSync(path.join(dir, 'sys/bus/ap/apmask'), 'utf8'), /^0xe9f/);

  const assign = ap('assign', U1, '--adapters', '3,5', '--domains', '4,0x47');
  assert.equal(assign.status, 0, assign.stderr);
  assert.equal(
    fs.readFileSync(path.join(dir, 'sys/bus/mdev/devices', U1, 'matrix'), 'utf8'),
    '03.0004\n03.0047\n05.0004\n05.0047\n',
  );
  const taken = ap('assign', U2, '--adapters', '5', '--domains', '0x47');
  assert.equal(taken.status, 1);
  assert.match(taken.stderr, new RegExp(`queue 05\\.0047 is assigned to matrix device ${U1}`));

  const release = ap('release', '--adapters', '3');
  assert.equal(release.status, 1);
  assert.match(release.stderr, new RegExp(`queue 03\\.0004 is assigned to matrix device ${U1}`));
  assert.match(fs.readFileSync(path.join(dir, 'sys/bus/ap/apmask'), 'utf8'), /^0xe9f/, 'unchanged');

  const show = ap('show');
  assert.equal(show.status, 0, show.stderr);
  assert.match(show.stdout, /^03 CEX7C\s+A\s+\.\s+A\s+\.$/m);
  assert.match(show.stdout, /^05 CEX8P\s+A\s+\.\s+A\s+\.$/m);
  assert.match(show.stdout, new RegExp(`A  ${U1}\\n\\s+adapters 03,05; domains 0004,0047`));
}

describe("Debian's mdevctl on a live lab: vfio-ap definitions", () => {
  it('starts a definition with assign_* attrs in order, and unwinds one that conflicts', async (t) => {
    const needs = { root: isRoot, fuse: hasFuse, mdevctl: hasMdevctl };
    if (!requires(t, needs, 'runs the real mdevctl 1.2.0 against a FUSE-served lab')) return;
    const dir = tmpDir('mdevkit-ap-mdevctl-');
    const stop = await serveLab(dir);
    try {
      const mdevctl = (...args: string[]) => {
        const r = spawnSync(MDEVCTL_NS, [dir, '--', 'mdevctl', ...args], { encoding: 'utf8' });
        return { status: r.status, stdout: r.stdout, stderr: r.stderr };
      };
      const define = (uuid: string, attrs: [string, string][]): void => {
        const d = mdevctl('define', '-u', uuid, '-p', 'matrix', '-t', 'vfio_ap-passthrough');
        assert.equal(d.status, 0, d.stderr);
        for (const [name, value] of attrs) {
          const m = mdevctl('modify', '-u', uuid, `--addattr=${name}`, `--value=${value}`);
          assert.equal(m.status, 0, m.stderr);
        }
      };
      define(U1, [
        ['assign_adapter', '5'],
        ['assign_domain', '0x47'],
        ['assign_control_domain', '0x47'],
      ]);
      const started = mdevctl('start', '-u', U1);
      assert.equal(started.status, 0, started.stderr);
      const devDir = path.join(dir, 'sys/bus/mdev/devices');
      assert.equal(fs.readFileSync(path.join(devDir, U1, 'matrix'), 'utf8'), '05.0047\n');
      assert.equal(fs.readFileSync(path.join(devDir, U1, 'control_domains'), 'utf8'), '0047\n');

      define(U2, [
        ['assign_domain', '0x47'],
        ['assign_adapter', '5'], // 05.0047 is U1's
      ]);
      const refused = mdevctl('start', '-u', U2);
      assert.notEqual(refused.status, 0);
      assert.match(refused.stderr, /assign_adapter/);
      assert.match(refused.stderr, /Address already in use/);
      assert.deepEqual(fs.readdirSync(devDir), [U1], 'the failed device was removed again');

      // mdevkit ap show sees the result the same way.
      const show = runMdevkit(['ap', 'show', '--root', dir]);
      assert.equal(show.status, 0, show.stderr);
      assert.match(show.stdout, /^05 CEX8P\s+\.\s+\.\s+A\s+\.$/m);
    } finally {
      await stop();
    }
  });
});
