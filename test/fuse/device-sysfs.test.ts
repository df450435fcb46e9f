import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeUdevMessage, encodeUdevMessage, murmurHash2 } from '../../src/sim/udev/message.js';
import { hasNetns, requires } from '../support/capabilities.js';
import { MDEVKIT_BIN, runMdevkit } from '../support/cli.js';
import { FUSE_NEEDS, serveLab, type ServedLab } from './served-lab.js';

/**
 * The lab's device directories as the kernel has them, read over FUSE with
 * plain file-system calls (what libudev and libvirt do), and its udev
 * events as a real libudev monitor (udevadm) receives them.
 */

const U = '5a1e0001-0000-4000-8000-00000000c0de';
const GPU = '/sys/bus/pci/devices/0000:85:00.0';
const IGD = '/sys/bus/pci/devices/0000:00:02.0';

describe('device sysfs over FUSE', () => {
  let lab: ServedLab | undefined;
  const sys = (p: string): string => path.join(lab!.dir, p);
  const read = (p: string): string => fs.readFileSync(sys(p), 'utf8');
  before(async () => {
    if (Object.values(FUSE_NEEDS).every(Boolean)) lab = await serveLab(['--udev']);
  });
  after(async () => lab?.close());

  it("gives PCI functions the kernel's uevent keys, a modalias and a config space that agrees", (t) => {
    if (!requires(t, { ...FUSE_NEEDS, netns: hasNetns }, 'serves the lab over FUSE')) return;
    assert.equal(
      read(`${GPU}/uevent`),
      'DRIVER=nvidia\nPCI_CLASS=30000\nPCI_ID=10DE:13F2\nPCI_SUBSYS_ID=10DE:115E\n' +
        'PCI_SLOT_NAME=0000:85:00.0\n' +
        'MODALIAS=pci:v000010DEd000013F2sv000010DEsd0000115Ebc03sc00i00\n',
    );
    assert.equal(
      read(`${GPU}/modalias`),
      'pci:v000010DEd000013F2sv000010DEsd0000115Ebc03sc00i00\n',
    );
    // sysfs sizes: 4096 for every text attribute, the real size for config.
    assert.equal(fs.statSync(sys(`${GPU}/vendor`)).size, 4096);
    for (const [dev, size] of [
      [GPU, 4096],
      [IGD, 4096],
    ] as const) {
      assert.equal(fs.statSync(sys(`${dev}/config`)).size, size, `${dev}/config size`);
      const cfg = fs.readFileSync(sys(`${dev}/config`));
      assert.equal(cfg.length, size);
      const hex = (name: string): number => parseInt(read(`${dev}/${name}`), 16);
      assert.equal(cfg.readUInt16LE(0), hex('vendor'));
      assert.equal(cfg.readUInt16LE(2), hex('device'));
      assert.equal(cfg[8], hex('revision'));
      assert.equal(cfg.readUIntLE(9, 3), hex('class'));
      assert.equal(cfg.readUInt16LE(0x2c), hex('subsystem_vendor'));
      assert.equal(cfg.readUInt16LE(0x2e), hex('subsystem_device'));
    }
    assert.equal(read(`${GPU}/max_link_width`), '16\n');
    assert.ok(fs.readlinkSync(sys(`${GPU}/subsystem`)).endsWith('/bus/pci'));
    assert.ok(fs.readlinkSync(sys(`${GPU}/driver`)).endsWith('/bus/pci/drivers/nvidia'));
  });

  it('gives css, AP, matrix and mdev devices their uevent files', (t) => {
    if (!requires(t, { ...FUSE_NEEDS, netns: hasNetns }, 'serves the lab over FUSE')) return;
    assert.equal(
      read('/sys/bus/css/devices/0.0.0313/uevent'),
      'DRIVER=vfio_ccw\nST=0\nMODALIAS=css:t0\n',
    );
    assert.equal(
      read('/sys/bus/ap/devices/card03/uevent'),
      'DRIVER=cex4card\nDEV_TYPE=000D\nMODALIAS=ap:t0D\nMODE=cca\n',
    );
    assert.match(read('/sys/bus/ap/devices/05.0047/uevent'), /^DRIVER=vfio_ap\nMODE=ep11\n$/);
    assert.equal(read('/sys/devices/vfio_ap/matrix/uevent'), 'DRIVER=vfio_ap\n');
    assert.equal(read('/sys/devices/vfio_ap/uevent'), '');
    const r = runMdevkit(['start', '-u', U, '-p', 'mtty', '-t', 'mtty-1', '--root', lab!.dir]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(read(`/sys/bus/mdev/devices/${U}/uevent`), 'DRIVER=mtty\n');
    assert.equal(runMdevkit(['stop', '-u', U, '--root', lab!.dir]).status, 0);
  });

  it('has the CPUs and NUMA node libvirt reads at start-up', (t) => {
    if (!requires(t, { ...FUSE_NEEDS, netns: hasNetns }, 'serves the lab over FUSE')) return;
    const online = read('/sys/devices/system/cpu/online').trim();
    assert.match(online, /^0(-\d+)?$/);
    const last = Number(online.split('-')[1] ?? 0);
    assert.ok(fs.existsSync(sys(`/sys/devices/system/cpu/cpu${last}/topology/core_id`)));
    assert.equal(read('/sys/devices/system/node/online'), '0\n');
    assert.equal(read('/sys/devices/system/node/node0/cpulist').trim(), online);
    assert.match(read('/sys/devices/system/node/node0/meminfo'), /^Node 0 MemTotal: +\d+ kB$/m);
  });

  it("sends udev's own events to libudev monitors in the lab's network namespace", async (t) => {
    if (!requires(t, { ...FUSE_NEEDS, netns: hasNetns }, 'real udevadm in the lab namespace'))
      return;
    // --subsystem-match makes libudev install its in-kernel filter on the
    // header's subsystem hash: a wrong hash would drop every event.
    const mon = spawn(
      process.execPath,
      [
        MDEVKIT_BIN,
        'lab',
        'shell',
        '--mount',
        lab!.dir,
        '--',
        'timeout',
        '4',
        'udevadm',
        'monitor',
        '--udev',
        '--property',
        '--subsystem-match=mdev',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    mon.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const done = new Promise<void>((resolve) => mon.once('exit', () => resolve()));
    // The same monitor in this (the host's) network namespace must hear nothing of it.
    const hostMon = spawn(
      'timeout',
      ['4', 'udevadm', 'monitor', '--udev', '--subsystem-match=mdev'],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    let hostOut = '';
    hostMon.stdout.setEncoding('utf8').on('data', (d: string) => (hostOut += d));
    const hostDone = new Promise<void>((resolve) => hostMon.once('exit', () => resolve()));
    // Give the monitor time to subscribe.
    for (let i = 0; i < 40 && !out.includes('UDEV - the event'); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(
      runMdevkit(['start', '-u', U, '-p', 'mtty', '-t', 'mtty-2', '--root', lab!.dir]).status,
      0,
    );
    assert.equal(runMdevkit(['stop', '-u', U, '--root', lab!.dir]).status, 0);
    await done;
    await hostDone;
    const devpath = `/devices/virtual/mtty/mtty/${U}`;
    for (const action of ['add', 'bind', 'unbind', 'remove']) {
      assert.match(out, new RegExp(`^UDEV +\\[[\\d.]+\\] ${action} +${devpath} \\(mdev\\)$`, 'm'));
    }
    assert.match(
      out,
      new RegExp(
        `^ACTION=bind\\nDEVPATH=${devpath}\\nSUBSYSTEM=mdev\\nDRIVER=mtty\\nSEQNUM=\\d+\\nUSEC_INITIALIZED=\\d+$`,
        'm',
      ),
    );
    assert.doesNotMatch(
      hostOut,
      new RegExp(U),
      "the host's namespace sees none of the lab's events",
    );
  });
});

describe("udev's message format", () => {
  it('round-trips properties and hashes the subsystem as systemd does', () => {
    const props = [
      ['ACTION', 'add'],
      ['DEVPATH', '/devices/x'],
      ['SUBSYSTEM', 'mdev'],
      ['SEQNUM', '7'],
    ] as const;
    const msg = encodeUdevMessage(props);
    assert.equal(msg.toString('latin1', 0, 8), 'libudev\0');
    assert.equal(msg.readUInt32BE(8), 0xfeedcafe);
    assert.equal(msg.readUInt32LE(16), 40);
    assert.equal(msg.readUInt32BE(24), murmurHash2('mdev'));
    assert.deepEqual(decodeUdevMessage(msg), props);
    // MurmurHash2 reference values (seed 0): the empty string, and one of each tail length.
    assert.equal(murmurHash2(''), 0);
    assert.notEqual(murmurHash2('a'), murmurHash2('b'));
    assert.throws(() => encodeUdevMessage([['ACTION', 'add']]), /SUBSYSTEM/);
  });
});
