import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FUSE_NEEDS } from '../fuse/served-lab.js';
import { hasLibvirtd, hasNetns, requires } from '../support/capabilities.js';
import { MDEVKIT_BIN, runMdevkit } from '../support/cli.js';
import { domainXml } from './support.js';

/**
 * Real libvirtd (Debian's) on the live lab, as the judge of what libvirt
 * sees of NVIDIA's VF vGPUs: it learns of the VFs from the lab's udev
 * events when sriov-manage enables them, and `virsh nodedev-dumpxml` of
 * the GPU and of every VF equals mdevkit's (blank space aside); a domain
 * with mdevkit's `<hostdev type='pci' managed='no'>` is one libvirt defines.
 */

const NEEDS = { ...FUSE_NEEDS, libvirtd: hasLibvirtd, netns: hasNetns };
const REASON = 'runs Debian libvirtd on the live lab (libvirt-daemon, libvirt-daemon-driver-qemu)';
const GPU = '0000:41:00.0';

const normal = (xml: string): string =>
  xml
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join('\n');

describe('libvirtd on the live lab: NVIDIA VF vGPUs', () => {
  let dir = '';
  let child: ChildProcess | undefined;
  let exited: Promise<void> | undefined;
  const virsh = (...args: string[]) => {
    const r = spawnSync(
      'virsh',
      ['-c', `qemu:///system?socket=${dir}/libvirt/run/libvirt-sock`, ...args],
      { encoding: 'utf8' },
    );
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };

  before(async () => {
    if (!Object.values(NEEDS).every(Boolean)) return;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdevkit-vf-libvirtd-'));
    child = spawn(process.execPath, [MDEVKIT_BIN, 'lab', 'libvirtd', '--mount', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    exited = new Promise<void>((resolve) => child!.once('exit', () => resolve()));
    let out = '';
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`lab libvirtd not ready: ${err}`)), 90_000);
      child!.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes(`ready ${dir}\n`)) {
          clearTimeout(timer);
          resolve();
        }
      });
      void exited!.then(() => reject(new Error(`lab libvirtd exited: ${err}`)));
    });
  });
  after(async () => {
    if (child !== undefined && child.exitCode === null) child.kill('SIGTERM');
    await exited;
    if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
  });

  it('sees the VFs sriov-manage enables, each node device as mdevkit dumps it', async (t) => {
    if (!requires(t, NEEDS, REASON)) return;
    const pci = () => virsh('nodedev-list', '--cap', 'pci').stdout;
    assert.doesNotMatch(pci(), /pci_0000_41_00_4/, 'no VFs yet');
    const on = runMdevkit(['lab', 'sriov-manage', '-e', 'ALL', '--lab', dir]);
    assert.equal(on.status, 0, on.stderr);
    const made = runMdevkit(['vf', 'create', '--gpu', GPU, '--type', 'L40S-24Q', '--root', dir]);
    assert.equal(made.status, 0, made.stderr);
    const until = Date.now() + 5000;
    while (!/pci_0000_41_04_3/.test(pci()) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const ours = runMdevkit(['nodedev-list', '--cap', 'pci', '--root', dir]);
    const names = ours.stdout.split('\n').filter((n) => n.startsWith('pci_0000_41_'));
    assert.equal(names.length, 33, 'the GPU and its 32 VFs');
    for (const name of names) {
      assert.match(pci(), new RegExp(`^${name}$`, 'm'), `libvirt lists ${name}`);
      const theirs = virsh('nodedev-dumpxml', name);
      assert.equal(theirs.status, 0, theirs.stderr);
      const mine = runMdevkit(['nodedev-dumpxml', name, '--root', dir]);
      assert.equal(normal(mine.stdout), normal(theirs.stdout), name);
    }
  });

  it("defines a domain with mdevkit's <hostdev type='pci' managed='no'>", (t) => {
    if (!requires(t, NEEDS, REASON)) return;
    const list = JSON.parse(runMdevkit(['vf', 'list', '--json', '--root', dir]).stdout) as {
      vgpus: { uuid: string }[];
    };
    const uuid = list.vgpus[0]!.uuid;
    const hostdev = runMdevkit(['hostdev-xml', uuid, '--root', dir]).stdout;
    const file = path.join(dir, 'vm.xml');
    fs.writeFileSync(file, domainXml('vgpu-vm', hostdev.replace(/^/gm, '    ')));
    const def = virsh('define', file);
    assert.equal(def.status, 0, def.stderr);
    const dumped = virsh('dumpxml', 'vgpu-vm').stdout;
    assert.match(dumped, /<hostdev mode='subsystem' type='pci' managed='no'>/);
    assert.match(dumped, /<address domain='0x0000' bus='0x41' slot='0x00' function='0x4'\/>/);
    // libvirt's hook input is this XML: ensure-started finds the vGPU running.
    const ensure = runMdevkit(['ensure-started', '-', '--root', dir], { input: dumped });
    assert.equal(ensure.status, 0, ensure.stderr);
    assert.match(
      ensure.stdout,
      new RegExp(`vGPU ${uuid} on VF 0000:41:00\\.4 .*: already running`),
    );
    assert.equal(virsh('undefine', 'vgpu-vm').status, 0);
  });
});
