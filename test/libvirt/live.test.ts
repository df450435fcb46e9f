import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { mdevNodeDeviceName } from '../../src/libvirt/names.js';
import { hasLibvirtSchemas, requires } from '../support/capabilities.js';
import { runMdevkit } from '../support/cli.js';
import { tmpDir } from '../support/tmp.js';
import { FUSE_NEEDS, serveLab, writeProfile, type ServedLab } from '../fuse/served-lab.js';
import { assertValidXml, domainXml } from './support.js';

/**
 * End to end on the live lab (FUSE, as root): define mdevs from libvirt
 * node device XML, then let the README's qemu hook start them the way
 * libvirt would before booting a VM — real writes to `create` and to the
 * attribute files, through the kernel's VFS.
 */

const GVT = '0000:00:02.0';
const VGPU = '7c1e4f1a-2b3c-4d5e-8f90-a1b2c3d4e5f6';
const SERIAL = '8d2f5a2b-3c4d-4e6f-9a01-b2c3d4e5f607';

describe('libvirt integration on the live lab', () => {
  it('nodedev-define, then the qemu hook starts the devices for the VM', async (t) => {
    if (!requires(t, FUSE_NEEDS, 'serves the lab over FUSE')) return;
    // Served and stopped within this test.
    const lab: ServedLab = await serveLab([
      '--profile',
      writeProfile([{ driver: 'gvt' }, { driver: 'mtty' }]),
    ]);
    try {
      const define = (xml: string) =>
        runMdevkit(['nodedev-define', '-', '--root', lab.dir], { input: xml });
      const vgpu = define(`<device>
    <name>vgpu</name>
    <parent>pci_0000_00_02_0</parent>
    <capability type='mdev'>
      <type id='i915-GVTg_V5_4'/>
      <uuid>${VGPU}</uuid>
      <attr name='mdev/aggregation/value' value='2'/>
    </capability>
  </device>`);
      assert.equal(vgpu.status, 0, vgpu.stderr);
      const serial = define(`<device>
    <name>serial</name>
    <parent>computer</parent>
    <capability type='mdev'>
      <type id='mtty-2'/>
      <uuid>${SERIAL}</uuid>
      <parent_addr>mtty</parent_addr>
    </capability>
  </device>`);
      assert.equal(serial.status, 0, serial.stderr);
      const inactive = runMdevkit([
        'nodedev-list',
        '--inactive',
        '--cap',
        'mdev',
        '--root',
        lab.dir,
      ]);
      assert.deepEqual(
        inactive.stdout.trim().split('\n'),
        [mdevNodeDeviceName(VGPU, GVT), mdevNodeDeviceName(SERIAL, 'mtty')].sort(),
      );

      // The hook as the README installs it, called as libvirt calls it.
      const readme = fs.readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
      const script = /cat > \/etc\/libvirt\/hooks\/qemu <<'EOF'\n([\s\S]*?)\nEOF\n/.exec(
        readme,
      )![1]!;
      const dir = tmpDir('mdevkit-live-hook-');
      fs.mkdirSync(path.join(dir, 'bin'));
      fs.symlinkSync(
        new URL('../../bin/mdevkit', import.meta.url).pathname,
        path.join(dir, 'bin', 'mdevkit'),
      );
      const hook = path.join(dir, 'qemu');
      fs.writeFileSync(hook, `${script}\n`, { mode: 0o755 });
      const xml = domainXml(
        'live-guest',
        [VGPU, SERIAL]
          .map(
            (
              u,
            ) => `    <hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='off'>
        <source>
          <address uuid='${u}'/>
        </source>
      </hostdev>
  `,
          )
          .join(''),
      );
      const env = {
        ...process.env,
        PATH: `${dir}/bin:${process.env['PATH'] ?? ''}`,
        MDEVCTL_ENV_ROOT: lab.dir,
      };
      const prepare = spawnSync(hook, ['live-guest', 'prepare', 'begin', '-'], {
        input: xml,
        env,
        encoding: 'utf8',
      });
      assert.equal(prepare.status, 0, prepare.stderr);

      const devices = path.join(lab.sys, 'bus/mdev/devices');
      assert.ok(fs.existsSync(path.join(devices, VGPU)), 'the vGPU runs');
      assert.ok(fs.existsSync(path.join(devices, SERIAL)), 'the serial card runs');
      assert.equal(
        fs.readFileSync(path.join(devices, VGPU, 'mdev/aggregation/value'), 'utf8').trim(),
        '2',
      );

      const dump = runMdevkit([
        'nodedev-dumpxml',
        mdevNodeDeviceName(VGPU, GVT),
        '--root',
        lab.dir,
      ]);
      assert.equal(dump.status, 0, dump.stderr);
      assert.match(
        dump.stdout,
        /<path>\/sys\/devices\/pci0000:00\/0000:00:02\.0\/7c1e4f1a[^<]*<\/path>/,
      );
      assert.match(
        dump.stdout,
        /<iommuGroup number='\d+'\/>\n {4}<attr name='mdev\/aggregation\/value' value='2'\/>/,
      );
      if (requires(t, { libvirtSchemas: hasLibvirtSchemas }, 'validates the live XML')) {
        assertValidXml(dump.stdout, 'nodedev');
      }

      // A second VM start finds them running and passes.
      const again = spawnSync(hook, ['live-guest', 'prepare', 'begin', '-'], {
        input: xml,
        env,
        encoding: 'utf8',
      });
      assert.equal(again.status, 0, again.stderr);
    } finally {
      // Unmount even when an assertion failed: a served lab keeps the test file alive.
      await lab.stop();
    }
  });
});
