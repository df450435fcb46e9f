import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import { environmentAt } from '../../src/host/environment.js';
import { createVgpu } from '../../src/host/vf-vgpu.js';
import {
  EnsureStartedError,
  domainMdevs,
  ensureStarted,
} from '../../src/libvirt/ensure-started.js';
import { findNodeDevice, formatNodeDeviceXml, listNodeDevices } from '../../src/libvirt/nodedev.js';
import { findVfHostdev, formatVfHostdevXml } from '../../src/libvirt/vf-hostdev.js';
import { writeSnapshot } from '../../src/sim/sysfs/snapshot.js';
import { hasLibvirtSchemas, requires } from '../support/capabilities.js';
import { runMdevkit } from '../support/cli.js';
import { labWith } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { assertValidXml, domainXml, labEnvironment } from './support.js';

/**
 * NVIDIA VF vGPUs as libvirt and QEMU take them: the PCI hostdev
 * (managed='no'), the node devices of the GPU and its VFs, QEMU's vfio-pci
 * arguments with -uuid, and ensure-started writing a vGPU's type before a
 * VM boots. Every XML passes libvirt's schemas.
 */

const GPU = '0000:41:00.0';
const SCHEMA_REASON = "libvirt's RNG schemas validate what is printed";
const OWNER = 'user:test';

function vfLab() {
  const lab = labWith([{ driver: 'nvidia-l40s', options: { vfs: 8 } }]);
  lab.sriovManage(true, 'ALL');
  return { lab, env: labEnvironment(lab) };
}

describe('VF vGPU hostdev and node devices', () => {
  it("gives <hostdev type='pci' managed='no'> with the VF's address, valid in a domain", (t) => {
    const { env } = vfLab();
    const a = createVgpu(env, { gpu: GPU, type: 'L40S-12Q', owner: OWNER, vf: 3 });
    const h = findVfHostdev(env, a.definition.uuid)!;
    assert.equal(h.address, '0000:41:00.7');
    const xml = formatVfHostdevXml(h);
    assert.equal(
      xml,
      `<hostdev mode='subsystem' type='pci' managed='no'>
  <source>
    <address domain='0x0000' bus='0x41' slot='0x00' function='0x7'/>
  </source>
</hostdev>
`,
    );
    assert.deepEqual(findVfHostdev(env, '41:00.7')!.uuid, a.definition.uuid, 'by address too');
    if (!requires(t, { schemas: hasLibvirtSchemas }, SCHEMA_REASON)) return;
    assertValidXml(domainXml('vgpu-vm', xml.replace(/^/gm, '    ')), 'domain');
  });

  it('shows the GPU and its VFs as PCI node devices, SR-IOV relations included', (t) => {
    const { env } = vfLab();
    const names = listNodeDevices(env, { caps: ['pci'] }).map((d) => d.name);
    assert.deepEqual(names, [
      'pci_0000_41_00_0',
      'pci_0000_41_00_4',
      'pci_0000_41_00_5',
      'pci_0000_41_00_6',
      'pci_0000_41_00_7',
      'pci_0000_41_01_0',
      'pci_0000_41_01_1',
      'pci_0000_41_01_2',
      'pci_0000_41_01_3',
    ]);
    const pf = formatNodeDeviceXml(findNodeDevice(env, 'pci_0000_41_00_0')!);
    assert.match(pf, /<driver>\n {4}<name>nvidia<\/name>\n {2}<\/driver>/);
    assert.match(
      pf,
      /<capability type='virt_functions' maxCount='8'>\n {6}<address domain='0x0000' bus='0x41' slot='0x00' function='0x4'\/>/,
    );
    const vf = formatNodeDeviceXml(findNodeDevice(env, 'pci_0000_41_01_3')!);
    assert.match(
      vf,
      /<capability type='phys_function'>\n {6}<address domain='0x0000' bus='0x41' slot='0x00' function='0x0'\/>\n {4}<\/capability>/,
    );
    assert.match(vf, /<product id='0x26b9'\/>\n {4}<vendor id='0x10de'\/>/);
    assert.match(
      vf,
      /<iommuGroup number='\d+'>\n {6}<address domain='0x0000' bus='0x41' slot='0x01' function='0x3'\/>/,
    );
    assert.match(vf, /<link validity='cap' port='0' speed='16' width='16'\/>/);
    if (!requires(t, { schemas: hasLibvirtSchemas }, SCHEMA_REASON)) return;
    assertValidXml(pf, 'nodedev');
    assertValidXml(vf, 'nodedev');
  });
});

describe('ensure-started with VF vGPUs', () => {
  const domain = (addr: string, managed = 'no') =>
    domainXml(
      'vgpu-vm',
      `    <hostdev mode='subsystem' type='pci' managed='${managed}'>
      <source>
        <address domain='0x0000' bus='0x${addr.slice(5, 7)}' slot='0x${addr.slice(8, 10)}' function='0x${addr.slice(11)}'/>
      </source>
    </hostdev>
`,
    );

  it('writes the type of a defined vGPU before the VM boots, and leaves a running one be', () => {
    const { env } = vfLab();
    const a = createVgpu(env, { gpu: GPU, type: 'L40S-24Q', owner: OWNER, defineOnly: true });
    const xml = domain(a.vfAddress);
    assert.deepEqual(domainMdevs(xml).pci, [{ address: '0000:41:00.4', managed: false }]);
    const first = ensureStarted(env, domainMdevs(xml));
    assert.deepEqual(first, [
      {
        uuid: a.definition.uuid,
        vf: '0000:41:00.4',
        state: 'started',
        parent: GPU,
        type: 'nvidia-1155',
      },
    ]);
    assert.equal(
      env.port.read('/sys/bus/pci/devices/0000:41:00.4/nvidia/current_vgpu_type'),
      '1155\n',
    );
    assert.equal(ensureStarted(env, domainMdevs(xml))[0]!.state, 'running');
    // Other PCI devices are libvirt's business: ignored.
    assert.deepEqual(ensureStarted(env, domainMdevs(domain('0000:03:00.0'))), []);
  });

  it('refuses when the VF is taken, naming the holder, and undoes what it started', () => {
    const { lab, env } = vfLab();
    const a = createVgpu(env, {
      gpu: GPU,
      type: 'L40S-24Q',
      owner: OWNER,
      vf: 0,
      defineOnly: true,
    });
    const b = createVgpu(env, {
      gpu: GPU,
      type: 'L40S-24Q',
      owner: OWNER,
      vf: 1,
      defineOnly: true,
    });
    lab.port.write('/sys/bus/pci/devices/0000:41:00.5/nvidia/current_vgpu_type', '1165');
    const xml = domainXml(
      'two',
      [a.vfAddress, b.vfAddress]
        .map(
          (addr) => `    <hostdev mode='subsystem' type='pci'>
      <source><address bus='0x41' slot='0x00' function='0x${addr.slice(11)}'/></source>
    </hostdev>
`,
        )
        .join(''),
    );
    let err: EnsureStartedError | undefined;
    try {
      ensureStarted(env, domainMdevs(xml));
    } catch (e) {
      err = e as EnsureStartedError;
    }
    assert.ok(err instanceof EnsureStartedError);
    assert.equal(
      err.message,
      `cannot make vGPU ${b.definition.uuid} (L40S-24Q) on VF 0000:41:00.5 for domain 'two': cannot make vGPU ${b.definition.uuid} (L40S-24Q): VF 0000:41:00.5 is taken by a L40S-24A vGPU that mdevkit did not make`,
    );
    assert.deepEqual(
      err.outcomes.map((o) => [o.uuid, o.state]),
      [[a.definition.uuid, 'rolled-back']],
    );
    assert.equal(
      env.port.read('/sys/bus/pci/devices/0000:41:00.4/nvidia/current_vgpu_type'),
      '0\n',
    );
  });

  it("refuses managed='yes' and a VF with neither a vGPU nor a definition", () => {
    const { env } = vfLab();
    const a = createVgpu(env, { gpu: GPU, type: 'L40S-8Q', owner: OWNER, defineOnly: true });
    assert.throws(
      () => ensureStarted(env, domainMdevs(domain(a.vfAddress, 'yes'))),
      /managed='yes', so libvirt would rebind the VF to vfio-pci/,
    );
    assert.throws(
      () => ensureStarted(env, domainMdevs(domain('0000:41:00.6'))),
      /VF 0000:41:00\.6 for domain 'vgpu-vm' holds no vGPU and no definition names it/,
    );
  });
});

describe('VF vGPU commands on a lab snapshot', () => {
  const root = tmpDir('mdevkit-vf-cli-');
  let uuid = '';
  before(() => {
    const lab = labWith([{ driver: 'nvidia-l40s' }, { driver: 'mtty' }]);
    lab.sriovManage(true, 'ALL');
    fs.mkdirSync(path.join(root, 'etc', 'mdevctl.d'), { recursive: true });
    const env = environmentAt(root, lab.port);
    for (let i = 0; i < 4; i++) {
      uuid = createVgpu(env, { gpu: GPU, type: 'L40S-12Q', owner: OWNER, start: 'auto' }).definition
        .uuid;
    }
    writeSnapshot(lab.kernel.tree, root);
  });
  const run = (...args: string[]) => runMdevkit([...args, '--root', root]);

  it('lists, types and capacity from the frozen tree', () => {
    const list = run('vf', 'list');
    assert.equal(list.status, 0, list.stderr);
    assert.match(
      list.stdout,
      /^GPU 0000:41:00\.0 \(L40S, 48 GB\): 4 vGPUs on 32 VFs \(28 free\), 48 of 48 GB used, runs 12 GB types\n {2}VF {2}ADDRESS {7}TYPE {13}STATE {3}UUID/,
    );
    assert.match(
      list.stdout,
      new RegExp(`  3   0000:41:00\\.7  L40S-12Q \\(1153\\)  active  ${uuid}  user:test\\n$`),
    );
    const json = JSON.parse(run('vf', 'list', '--json').stdout) as { vgpus: { state: string }[] };
    assert.deepEqual(
      json.vgpus.map((v) => v.state),
      ['active', 'active', 'active', 'active'],
    );
    const cap = run('vf', 'capacity');
    assert.match(cap.stdout, /mode: equal-size; fits now: nothing/);
  });

  it('prints the hostdev XML and QEMU arguments of one, valid for libvirt', (t) => {
    const xml = run('hostdev-xml', uuid);
    assert.equal(xml.status, 0, xml.stderr);
    assert.match(xml.stdout, /<address domain='0x0000' bus='0x41' slot='0x00' function='0x7'\/>/);
    const q = run('qemu-args', uuid);
    assert.equal(
      q.stdout,
      `-uuid ${uuid} -device '{"driver":"vfio-pci","host":"0000:41:00.7","id":"hostdev0"}'\n`,
    );
    const classic = run('qemu-args', '0000:41:00.7', '--sysfsdev', '--syntax', 'classic');
    assert.equal(
      classic.stdout,
      `-uuid ${uuid} -device vfio-pci,sysfsdev=/sys/bus/pci/devices/0000:41:00.7,id=hostdev0\n`,
    );
    const display = run('hostdev-xml', uuid, '--display');
    assert.equal(display.status, 2);
    assert.match(display.stderr, /--display and --ramfb are for mediated devices/);
    const dump = run('nodedev-dumpxml', 'pci_0000_41_00_0');
    assert.equal(dump.status, 0, dump.stderr);
    if (!requires(t, { schemas: hasLibvirtSchemas }, SCHEMA_REASON)) return;
    assertValidXml(domainXml('vm', xml.stdout.replace(/^/gm, '    ')), 'domain');
    assertValidXml(dump.stdout, 'nodedev');
  });

  it('says the VFs are not enabled on a snapshot taken without them', () => {
    const bare = tmpDir('mdevkit-vf-bare-');
    const snap = runMdevkit(['lab', 'snapshot', path.join(bare, 'h')]);
    assert.equal(snap.status, 0, snap.stderr);
    const r = runMdevkit([
      'vf',
      'create',
      '--gpu',
      GPU,
      '--type',
      'L40S-12Q',
      '--root',
      path.join(bare, 'h'),
    ]);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'mdevkit: VFs are not enabled on 0000:41:00.0: run sriov-manage -e\n');
    const on = runMdevkit(['lab', 'snapshot', '--sriov-manage', 'ALL', path.join(bare, 'e')]);
    assert.equal(on.status, 0, on.stderr);
    const types = runMdevkit(['vf', 'types', '--root', path.join(bare, 'e')]);
    assert.match(types.stdout, /1153  L40S-12Q  12 GB {8}yes {12}4\n/);
  });
});
