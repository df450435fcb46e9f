import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runMdevkit } from '../support/cli.js';
import { MDEVCTL_NS, hasMdevctl, requires } from '../support/capabilities.js';
import { FUSE_NEEDS, serveLab, type ServedLab } from './served-lab.js';

/**
 * End to end on the live lab: an mdevctl runs in a mount namespace where
 * /sys is the lab's FUSE mount and /etc/mdevctl.d the lab's config dir, and
 * does what an administrator does. The same suite runs with Debian's
 * mdevctl 1.2.0 (the reference) and with mdevkit's drop-in (bin/mdevctl).
 */

const MDEVKIT_MDEVCTL = new URL('../../bin/mdevctl', import.meta.url).pathname;

interface Tool {
  name: string;
  argv: string[];
  needs: Record<string, boolean>;
}

const TOOLS: Tool[] = [
  { name: "Debian's mdevctl", argv: ['mdevctl'], needs: { ...FUSE_NEEDS, mdevctl: hasMdevctl } },
  { name: "mdevkit's mdevctl", argv: [MDEVKIT_MDEVCTL], needs: FUSE_NEEDS },
];

const GVT = '0000:00:02.0';
const M60_GPU = '0000:85:00.0';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

for (const tool of TOOLS) {
  describe(`${tool.name} on the live lab`, { concurrency: false }, () => {
    let lab: ServedLab;
    const usable = Object.values(tool.needs).every(Boolean);
    before(async () => {
      if (usable) lab = await serveLab();
    });
    after(() => lab?.close());

    const ctl = (...args: string[]): Run => {
      const r = spawnSync(MDEVCTL_NS, [lab.dir, '--', ...tool.argv, ...args], {
        encoding: 'utf8',
        timeout: 30000,
      });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    const ok = (...args: string[]): string => {
      const r = ctl(...args);
      assert.equal(r.status, 0, `mdevctl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    // mdevctl 1.2.0 ends a listing with an empty line; compare the lines.
    const lines = (out: string): string[] => out.split('\n').filter((l) => l !== '');
    const active = (): string[] => fs.readdirSync(path.join(lab.sys, 'bus/mdev/devices')).sort();
    const sysRead = (p: string): string => fs.readFileSync(path.join(lab.sys, p), 'utf8');
    const config = (parent: string, uuid: string): string => path.join(lab.configDir, parent, uuid);

    it('lists the types of every parent of the lab', (t) => {
      if (!requires(t, tool.needs, 'runs mdevctl on a FUSE-served lab')) return;
      const out = ok('types');
      for (const parent of fs.readdirSync(path.join(lab.sys, 'class/mdev_bus'))) {
        assert.match(out, new RegExp(`^${parent.replace(/\./g, '\\.')}$`, 'm'), parent);
      }
      assert.match(out, /^ {2}mtty-1\n {4}Available instances: 24\n {4}Device API: vfio-pci\n/m);
      assert.match(out, /^ {2}i915-GVTg_V5_4$/m);
      const json = JSON.parse(ok('types', '--dumpjson')) as unknown[];
      assert.ok(Array.isArray(json) && json.length > 0);
    });

    it('defines, starts, lists, stops and undefines a device', (t) => {
      if (!requires(t, tool.needs, 'runs mdevctl on a FUSE-served lab')) return;
      const u = '5a1e0001-0000-4000-8000-000000000001';
      ok('define', '-u', u, '-p', 'mtty', '-t', 'mtty-1');
      assert.deepEqual(JSON.parse(fs.readFileSync(config('mtty', u), 'utf8')), {
        mdev_type: 'mtty-1',
        start: 'manual',
        attrs: [],
      });
      assert.deepEqual(lines(ok('list', '--defined')), [`${u} mtty mtty-1 manual`]);
      assert.deepEqual(lines(ok('list')), []);
      ok('start', '-u', u);
      assert.deepEqual(active(), [u]);
      assert.equal(sysRead(`bus/mdev/devices/${u}/mdev_type/name`), 'Single port serial\n');
      assert.deepEqual(lines(ok('list')), [`${u} mtty mtty-1 manual (defined)`]);
      assert.deepEqual(lines(ok('list', '--defined')), [`${u} mtty mtty-1 manual (active)`]);
      const again = ctl('start', '-u', u);
      assert.notEqual(again.status, 0, 'an active device cannot start twice');
      ok('stop', '-u', u);
      assert.deepEqual(active(), []);
      assert.deepEqual(lines(ok('list')), []);
      ok('undefine', '-u', u);
      assert.ok(!fs.existsSync(config('mtty', u)));
      assert.deepEqual(lines(ok('list', '--defined')), []);
    });

    it('starts a transient device and stops it', (t) => {
      if (!requires(t, tool.needs, 'runs mdevctl on a FUSE-served lab')) return;
      const u = '5a1e0002-0000-4000-8000-000000000002';
      ok('start', '-u', u, '-p', 'mdpy', '-t', 'mdpy-vga');
      assert.deepEqual(active(), [u]);
      // mdevctl 1.2.0 shows a transient device as "manual" too.
      assert.deepEqual(lines(ok('list')), [`${u} mdpy mdpy-vga manual`]);
      ok('stop', '-u', u);
      assert.deepEqual(active(), []);
    });

    it('writes vendor attributes on start (NVIDIA vgpu_params)', (t) => {
      if (!requires(t, tool.needs, 'runs mdevctl on a FUSE-served lab')) return;
      const u = '5a1e0003-0000-4000-8000-000000000003';
      ok('define', '-u', u, '-p', M60_GPU, '-t', 'nvidia-11');
      ok('modify', '-u', u, '--addattr=nvidia/vgpu_params', '--value=frame_rate_limiter=0');
      ok('start', '-u', u);
      assert.equal(sysRead(`bus/mdev/devices/${u}/nvidia/vgpu_params`), 'frame_rate_limiter=0\n');
      // (the definition: a running device's listing shows the attributes a
      // callout reports as of mdevctl 1.4, the definition's in 1.2)
      const dumped = JSON.parse(ok('list', '--defined', '--dumpjson', '-u', u)) as unknown;
      assert.match(JSON.stringify(dumped), /"nvidia\/vgpu_params":"frame_rate_limiter=0"/);
      ok('stop', '-u', u);
      ok('undefine', '-u', u);
    });

    it('runs the seed-001 GVT-g aggregation flow, and unwinds the one the budget cannot hold', (t) => {
      if (!requires(t, tool.needs, 'runs mdevctl on a FUSE-served lab')) return;
      const avail = `class/mdev_bus/${GVT}/mdev_supported_types/i915-GVTg_V5_4/available_instances`;
      const before = Number(sysRead(avail));
      const u = '5a1e0004-0000-4000-8000-000000000004';
      // Verbatim from the thread:
      ok('define', '-u', u, '-p', GVT, '-t', 'i915-GVTg_V5_4');
      ok('modify', '-u', u, '--addattr=mdev/aggregation/value', '--value=2');
      ok('start', '-u', u);
      assert.equal(sysRead(`bus/mdev/devices/${u}/mdev/aggregation/value`), '2\n');
      assert.equal(Number(sysRead(avail)), before - 2, 'two instances worth of budget taken');

      // What is left cannot hold 64 more: the attribute write fails, and the
      // device that was created for it is removed again.
      const big = '5a1e0005-0000-4000-8000-000000000005';
      ok('define', '-u', big, '-p', GVT, '-t', 'i915-GVTg_V5_4');
      ok('modify', '-u', big, '--addattr=mdev/aggregation/value', '--value=64');
      const failed = ctl('start', '-u', big);
      assert.notEqual(failed.status, 0);
      assert.match(failed.stderr, /mdev\/aggregation\/value/);
      assert.deepEqual(active(), [u], 'no device left behind');
      assert.equal(Number(sysRead(avail)), before - 2);
      assert.ok(fs.existsSync(config(GVT, big)), 'the definition stays');

      ok('stop', '-u', u);
      assert.equal(Number(sysRead(avail)), before);
      ok('undefine', '-u', u);
      ok('undefine', '-u', big);
    });

    it('builds a vfio-ap matrix device from assign_* attributes', (t) => {
      if (!requires(t, tool.needs, 'runs mdevctl on a FUSE-served lab')) return;
      const u = '5a1e0006-0000-4000-8000-000000000006';
      ok('define', '-u', u, '-p', 'matrix', '-t', 'vfio_ap-passthrough');
      ok('modify', '-u', u, '--addattr=assign_adapter', '--value=0x05');
      ok('modify', '-u', u, '--addattr=assign_domain', '--value=0x47');
      ok('modify', '-u', u, '--addattr=assign_control_domain', '--value=0x47');
      ok('start', '-u', u);
      assert.equal(sysRead(`bus/mdev/devices/${u}/matrix`), '05.0047\n');
      assert.equal(sysRead(`bus/mdev/devices/${u}/control_domains`), '0047\n');
      ok('stop', '-u', u);
      ok('undefine', '-u', u);
    });

    it('brings start=auto devices back after a reboot, and loses no definition', async (t) => {
      if (!requires(t, tool.needs, 'runs mdevctl on a FUSE-served lab')) return;
      const auto = '5a1e0007-0000-4000-8000-000000000007';
      const manual = '5a1e0008-0000-4000-8000-000000000008';
      ok('define', '-u', auto, '-p', 'mtty', '-t', 'mtty-2', '--auto');
      ok('define', '-u', manual, '-p', 'mbochs', '-t', 'mbochs-small');
      ok('start', '-u', manual);
      assert.deepEqual(
        active(),
        [auto, manual].filter((x) => x === manual),
      );
      const r = runMdevkit(['lab', 'reboot', '--mount', lab.dir]);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(active(), [auto], 'the active device vanished, the auto one came back');
      assert.deepEqual(lines(ok('list', '--defined')).sort(), [
        `${auto} mtty mtty-2 auto (active)`,
        `${manual} mbochs mbochs-small manual`,
      ]);
      ok('stop', '-u', auto);
      ok('undefine', '-u', auto);
      ok('undefine', '-u', manual);
    });
  });
}
