import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runMdevkit } from '../support/cli.js';
import { requires } from '../support/capabilities.js';
import { uuidN } from '../support/labs.js';
import { FUSE_NEEDS, serveLab, serveLabIn, writeProfile, type ServedLab } from './served-lab.js';

/**
 * The live lab seen from other processes: sysfs semantics over a real FUSE
 * mount, checked with node:fs and with bash as a user's script would.
 */

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
};

describe('lab serve: sysfs semantics over FUSE', { concurrency: false }, () => {
  let lab: ServedLab;
  let mtty: string;
  const bash = (script: string) => spawnSync('bash', ['-c', script], { encoding: 'utf8' });
  after(() => lab?.close());

  before(async () => {
    if (!FUSE_NEEDS.root || !FUSE_NEEDS.fuse) return;
    // mtty with 10 ports: available_instances goes from "10\n" to "9\n",
    // a change of length that a page cache would get wrong.
    lab = await serveLab(['--profile', writeProfile([{ driver: 'mtty', options: { ports: 10 } }])]);
    mtty = path.join(lab.sys, 'class/mdev_bus/mtty/mdev_supported_types/mtty-1');
  });

  it('reports attribute files with size 4096 and sysfs modes; links are symlinks', (t) => {
    if (!requires(t, FUSE_NEEDS, 'mounts the lab over FUSE')) return;
    const st = (f: string) => fs.lstatSync(path.join(mtty, f));
    assert.equal(st('available_instances').size, 4096);
    assert.equal(st('name').size, 4096);
    assert.equal(st('create').mode & 0o7777, 0o200, 'create is write-only');
    assert.equal(st('available_instances').mode & 0o7777, 0o444);
    assert.ok(st('create').isFile());
    assert.ok(st('devices').isDirectory());
    const cls = fs.lstatSync(path.join(lab.sys, 'class/mdev_bus/mtty'));
    assert.ok(cls.isSymbolicLink());
    assert.equal(
      fs.readlinkSync(path.join(lab.sys, 'class/mdev_bus/mtty')),
      '../../devices/virtual/mtty/mtty',
    );
    // Entries come with their types (no lstat per entry needed), plus . and ..
    const entries = fs.readdirSync(path.join(lab.sys, 'class/mdev_bus'), { withFileTypes: true });
    assert.deepEqual(
      entries.map((e) => [e.name, e.isSymbolicLink()]),
      [['mtty', true]],
    );
    assert.match(bash(`ls -a ${lab.sys}/class`).stdout, /^\.\n\.\.\n/);
  });

  it('shows the current value on every read, also through a descriptor held open', (t) => {
    if (!requires(t, FUSE_NEEDS, 'mounts the lab over FUSE')) return;
    const avail = path.join(mtty, 'available_instances');
    const fd = fs.openSync(avail, 'r');
    try {
      const pread = () => {
        const buf = Buffer.alloc(4096);
        return buf.toString('utf8', 0, fs.readSync(fd, buf, 0, 4096, 0));
      };
      assert.equal(pread(), '10\n');
      const u = uuidN(1);
      fs.writeFileSync(path.join(mtty, 'create'), u);
      assert.equal(pread(), '9\n');
      assert.equal(fs.readFileSync(avail, 'utf8'), '9\n');
      fs.writeFileSync(path.join(lab.sys, 'bus/mdev/devices', u, 'remove'), '1');
      assert.equal(pread(), '10\n', 'a longer value is not cut to the old size');
      assert.equal(fs.readFileSync(avail, 'utf8'), '10\n');
    } finally {
      fs.closeSync(fd);
    }
  });

  it("fails a write with the store's errno, as the shell shows it", (t) => {
    if (!requires(t, FUSE_NEEDS, 'mounts the lab over FUSE')) return;
    const r = bash(`echo x > ${mtty}/create`);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Invalid argument/);
    assert.equal(
      codeOf(() => fs.writeFileSync(path.join(mtty, 'create'), 'not-a-uuid')),
      'EINVAL',
    );
    assert.equal(
      codeOf(() => fs.readFileSync(path.join(mtty, 'create'))),
      'EACCES',
    );
    assert.equal(
      codeOf(() => fs.writeFileSync(path.join(mtty, 'available_instances'), '3')),
      'EACCES',
    );
    assert.equal(
      codeOf(() => fs.writeFileSync(path.join(mtty, 'no-such-file'), '1')),
      'EACCES',
      'sysfs directories take no new files',
    );
    const u = uuidN(2);
    const ok = bash(`echo ${u} > ${mtty}/create`);
    assert.equal(ok.status, 0, ok.stderr);
    const dup = bash(`echo ${u.toUpperCase()} > ${mtty}/create`);
    assert.match(dup.stderr, /File exists/);
    assert.equal(bash(`echo 1 > ${lab.sys}/bus/mdev/devices/${u}/remove`).status, 0);
  });

  it('lists a device created a moment ago, and forgets one removed a moment ago', (t) => {
    if (!requires(t, FUSE_NEEDS, 'mounts the lab over FUSE')) return;
    const devices = path.join(lab.sys, 'bus/mdev/devices');
    for (let i = 10; i < 15; i++) {
      const u = uuidN(i);
      assert.ok(!fs.readdirSync(devices).includes(u));
      fs.writeFileSync(path.join(mtty, 'create'), u);
      assert.ok(fs.readdirSync(devices).includes(u), 'listed at once');
      assert.equal(bash(`ls ${devices}`).stdout, `${u}\n`);
      assert.deepEqual(fs.readdirSync(path.join(mtty, 'devices')), [u]);
      assert.equal(
        fs.realpathSync(path.join(devices, u)),
        path.join(lab.sys, 'devices/virtual/mtty/mtty', u),
      );
      fs.writeFileSync(path.join(devices, u, 'remove'), '1');
      assert.deepEqual(fs.readdirSync(devices), [], 'gone at once');
      assert.ok(!fs.existsSync(path.join(devices, u)), 'its link no longer resolves');
      assert.ok(
        !fs.existsSync(path.join(lab.sys, 'devices/virtual/mtty/mtty', u)),
        'its directory is gone at once, although the kernel had it cached',
      );
    }
  });

  it('refuses a write through a descriptor whose device has gone (ENODEV)', (t) => {
    if (!requires(t, FUSE_NEEDS, 'mounts the lab over FUSE')) return;
    const u = uuidN(20);
    fs.writeFileSync(path.join(mtty, 'create'), u);
    const remove = path.join(lab.sys, 'bus/mdev/devices', u, 'remove');
    const first = fs.openSync(remove, 'w');
    const second = fs.openSync(remove, 'w');
    try {
      fs.writeSync(first, '1');
      assert.equal(
        codeOf(() => fs.writeSync(second, '1')),
        'ENODEV',
      );
    } finally {
      fs.closeSync(first);
      fs.closeSync(second);
    }
  });

  it('refuses to serve a directory that a running lab serves', (t) => {
    if (!requires(t, FUSE_NEEDS, 'mounts the lab over FUSE')) return;
    // (A timeout, so that a regression fails here instead of hanging the run.)
    const r = runMdevkit(['lab', 'serve', '--mount', lab.dir], { timeout: 10000 });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /already served by a running lab/);
  });
});

describe('lab serve: lifecycle', () => {
  const mounted = (dir: string) =>
    fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${path.join(dir, 'sys')} `);

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`unmounts and exits 0 on ${signal}`, async (t) => {
      if (!requires(t, FUSE_NEEDS, 'mounts the lab over FUSE')) return;
      const lab = await serveLab();
      t.after(() => lab.close());
      assert.ok(mounted(lab.dir));
      assert.equal(await lab.stop(signal), 0);
      assert.ok(!mounted(lab.dir), 'unmounted');
    });
  }

  it('clears a stale mount left by a crash, with a message', async (t) => {
    if (!requires(t, FUSE_NEEDS, 'mounts the lab over FUSE')) return;
    const crashed = await serveLab();
    t.after(() => crashed.close());
    await crashed.stop('SIGKILL');
    assert.ok(mounted(crashed.dir), 'a killed server leaves its mount behind');
    assert.equal(
      codeOf(() => fs.readdirSync(crashed.sys)),
      'ENOTCONN',
    );
    const again = await serveLabIn(crashed.dir);
    t.after(() => again.close()); // runs before crashed.close(): unmount, then remove
    assert.match(again.errors(), /cleared a stale mount at .*\/sys/);
    assert.ok(fs.readdirSync(again.sys).includes('bus'));
    assert.equal(await again.stop(), 0);
    assert.ok(!mounted(crashed.dir));
  });
});
