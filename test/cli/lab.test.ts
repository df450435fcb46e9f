import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { listActiveDevices, listParents } from '../../src/host/sysfs-model.js';
import { FsSysfsPort } from '../../src/port/fs-port.js';
import { Lab } from '../../src/sim/lab.js';
import { writeSnapshot } from '../../src/sim/sysfs/snapshot.js';
import { MDEVCTL_NS, hasMdevctl, isRoot, requires } from '../support/capabilities.js';
import { runMdevkit } from '../support/cli.js';
import { uuidN } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';

function mdevctl(tree: string, args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(MDEVCTL_NS, [tree, '--', 'mdevctl', ...args], { encoding: 'utf8' });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('mdevkit lab summary', () => {
  it('shows every parent and type of the lab with its free instances', () => {
    const r = runMdevkit(['lab', 'summary']);
    assert.equal(r.status, 0, r.stderr);
    const lab = Lab.fromProfile('lab');
    for (const p of listParents(lab.port)) {
      assert.match(
        r.stdout,
        new RegExp(`^${p.name.replace(/[.]/g, '\\.')}$`, 'm'),
        `parent ${p.name} listed`,
      );
      for (const t of p.types) {
        const row = r.stdout.split('\n').find((l) => l.trimStart().startsWith(`${t.id} `));
        assert.ok(row !== undefined, `type ${t.id} listed`);
        assert.match(
          row,
          new RegExp(`\\s${t.availableInstances}\\s+0$`),
          `${t.id}: free ${t.availableInstances}, used 0`,
        );
      }
    }
  });

  it('explains a bad profile and exits 1; a usage error exits 2', () => {
    const dir = tmpDir();
    const bad = path.join(dir, 'p.json');
    fs.writeFileSync(
      bad,
      JSON.stringify({ name: 'p', devices: [{ driver: 'mbochs', options: { max_mbytes: -1 } }] }),
    );
    const r = runMdevkit(['lab', 'summary', '--profile', bad]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /p\.json: devices\[0\]\.options\.max_mbytes/);
    assert.doesNotMatch(r.stderr, /at .*\.js/, 'no stack trace');
    assert.equal(runMdevkit(['lab', 'summary', '--bogus']).status, 2);
    assert.equal(runMdevkit(['lab', 'snapshot']).status, 2);
    assert.equal(runMdevkit(['nosuchcommand']).status, 2);
  });
});

describe('mdevkit lab snapshot', () => {
  it('writes DIR/sys and a DIR/etc/mdevctl.d without definitions, with sysfs modes', () => {
    const dir = path.join(tmpDir(), 'lab');
    const r = runMdevkit(['lab', 'snapshot', dir]);
    assert.equal(r.status, 0, r.stderr);
    // No definitions: only mdevctl's script directory (test/security/cli-lab-snapshot.test.ts).
    assert.deepEqual(fs.readdirSync(path.join(dir, 'etc', 'mdevctl.d')), ['scripts.d']);
    const port = new FsSysfsPort(dir);
    assert.deepEqual(listParents(port), listParents(Lab.fromProfile('lab').port));
    const create = path.join(dir, 'sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1/create');
    assert.equal(fs.statSync(create).mode & 0o777, 0o200);
    const again = runMdevkit(['lab', 'snapshot', dir]);
    assert.equal(again.status, 1, 'refuses to overwrite');
    assert.match(again.stderr, /exists already/);
  });

  it("is read correctly by Debian's mdevctl 1.2.0: types", (t) => {
    if (
      !requires(
        t,
        { root: isRoot, mdevctl: hasMdevctl },
        'runs the real mdevctl in a mount namespace (scripts/mdevctl-ns)',
      )
    )
      return;
    const dir = path.join(tmpDir(), 'lab');
    assert.equal(runMdevkit(['lab', 'snapshot', dir]).status, 0);
    const r = mdevctl(dir, ['types', '--dumpjson']);
    assert.equal(r.status, 0, r.stderr);
    const seen = (
      JSON.parse(r.stdout) as Record<string, Record<string, Record<string, unknown>>[]>[]
    ).flatMap((entry) =>
      Object.entries(entry).flatMap(([parent, types]) =>
        types.flatMap((t) => Object.entries(t).map(([id, v]) => ({ parent, id, ...v }))),
      ),
    );
    const expected = listParents(Lab.fromProfile('lab').port).flatMap((p) =>
      p.types.map((t) => ({
        parent: p.name,
        id: t.id,
        available_instances: t.availableInstances,
        device_api: t.deviceApi,
        ...(t.name ? { name: t.name } : {}),
        ...(t.description ? { description: t.description.trim().split('\n').join(', ') } : {}),
      })),
    );
    const key = (x: { parent: string; id: string }) => `${x.parent}/${x.id}`;
    assert.deepEqual(
      [...seen].sort((a, b) => key(a).localeCompare(key(b))),
      [...expected].sort((a, b) => key(a).localeCompare(key(b))),
    );
  });

  it("is read correctly by Debian's mdevctl 1.2.0: list of active devices", (t) => {
    if (
      !requires(
        t,
        { root: isRoot, mdevctl: hasMdevctl },
        'runs the real mdevctl in a mount namespace (scripts/mdevctl-ns)',
      )
    )
      return;
    const lab = Lab.fromProfile('lab');
    const made: { uuid: string; parent: string; type: string }[] = [];
    let n = 1;
    for (const p of listParents(lab.port)) {
      const t = p.types.find((x) => x.availableInstances > 0);
      if (t === undefined) continue;
      const uuid = uuidN(n++);
      lab.port.write(`/sys/class/mdev_bus/${p.name}/mdev_supported_types/${t.id}/create`, uuid);
      made.push({ uuid, parent: p.name, type: t.id });
    }
    assert.deepEqual(
      listActiveDevices(lab.port).sort((a, b) => a.uuid.localeCompare(b.uuid)),
      made.sort((a, b) => a.uuid.localeCompare(b.uuid)),
    );
    const dir = tmpDir();
    writeSnapshot(lab.kernel.tree, dir);
    const r = mdevctl(dir, ['list']);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    assert.deepEqual(
      lines.sort(),
      // Active, undefined devices: "UUID PARENT TYPE manual".
      made.map((d) => `${d.uuid} ${d.parent} ${d.type} manual`).sort(),
    );
  });
});
