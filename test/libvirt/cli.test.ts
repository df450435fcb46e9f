import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import { defineDevice, startDevice } from '../../src/host/devices.js';
import { environmentAt } from '../../src/host/environment.js';
import { mdevNodeDeviceName } from '../../src/libvirt/names.js';
import { writeSnapshot } from '../../src/sim/sysfs/snapshot.js';
import { hasLibvirtSchemas, requires } from '../support/capabilities.js';
import { MDEVKIT_BIN, runMdevkit } from '../support/cli.js';
import { U1, U2, U3, labWith } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { assertValidXml, domainXml } from './support.js';

/**
 * The libvirt commands as users and libvirt run them: bin/mdevkit against a
 * frozen lab (`lab snapshot` layout: DIR/sys and DIR/etc/mdevctl.d), and the
 * hook script from the README as libvirt would call it.
 */

const GVT = '0000:00:02.0';
const FIXTURES = new URL('./fixtures/', import.meta.url);
const VGPU_GUEST = fs.readFileSync(new URL('vgpu-guest.xml', FIXTURES), 'utf8');
const GVT_UUID = 'b1e0a5f4-6c1d-4c3e-9a1f-0d2b3c4d5e6f';
const MTTY_UUID = 'c2f1b6a7-7d2e-4d4f-8b2a-1e3c4d5f6a7b';
const SCHEMA_REASON = "libvirt's RNG schemas validate what the commands print";

const root = tmpDir('mdevkit-libvirt-cli-');

/** A lab with GVT-g, vfio-ccw, vfio-ap and mtty: U1 running and defined, U2 defined only, the fixture's two devices running. */
before(() => {
  const lab = labWith([
    { driver: 'gvt' },
    { driver: 'vfio-ccw' },
    { driver: 'vfio-ap' },
    { driver: 'mtty' },
  ]);
  fs.mkdirSync(path.join(root, 'etc', 'mdevctl.d'), { recursive: true });
  const env = environmentAt(root, lab.port);
  defineDevice(env, { uuid: U1, parent: GVT, type: 'i915-GVTg_V5_4' });
  startDevice(env, { uuid: U1 });
  defineDevice(env, { uuid: U2, parent: '0.0.0313', type: 'vfio_ccw-io' });
  startDevice(env, { uuid: U3, parent: 'matrix', type: 'vfio_ap-passthrough' });
  startDevice(env, { uuid: GVT_UUID, parent: GVT, type: 'i915-GVTg_V5_8' });
  startDevice(env, { uuid: MTTY_UUID, parent: 'mtty', type: 'mtty-1' });
  writeSnapshot(lab.kernel.tree, root);
});

const mdevkit = (args: string[], input?: string, env: NodeJS.ProcessEnv = process.env) =>
  runMdevkit([...args], { input, env });
const withRoot = (args: string[], input?: string) => mdevkit([...args, '--root', root], input);

describe('nodedev commands through bin/mdevkit', () => {
  it('nodedev-list prints libvirt names, inactive ones with --all, JSON with --json', () => {
    const active = withRoot(['nodedev-list']);
    assert.equal(active.status, 0, active.stderr);
    const names = active.stdout.trim().split('\n');
    for (const n of [
      'ap_matrix',
      'css_0_0_0313',
      'pci_0000_00_02_0',
      mdevNodeDeviceName(U1, GVT),
    ]) {
      assert.ok(names.includes(n), `${n} in ${names.join(' ')}`);
    }
    assert.ok(!names.includes(mdevNodeDeviceName(U2, '0.0.0313')));
    assert.deepEqual(names, [...names].sort());

    const caps = withRoot(['nodedev-list', '--cap', 'css,ap_matrix']);
    assert.equal(caps.stdout, 'ap_matrix\ncss_0_0_0313\ncss_0_0_0314\n');
    const badCap = withRoot(['nodedev-list', '--cap', 'usb']);
    assert.equal(badCap.status, 2);
    assert.match(badCap.stderr, /^mdevkit: unknown capability 'usb'/);

    const inactive = withRoot(['nodedev-list', '--inactive', '--cap', 'mdev']);
    assert.equal(inactive.stdout, `${mdevNodeDeviceName(U2, '0.0.0313')}\n`);

    const json = withRoot(['nodedev-list', '--all', '--cap', 'mdev', '--json']);
    const list = JSON.parse(json.stdout) as {
      uuid: string;
      active: boolean;
      persistent: boolean;
    }[];
    assert.deepEqual(
      list.map((d) => [d.uuid, d.active, d.persistent]).sort(),
      [
        [U1, true, true],
        [U2, false, true],
        [U3, true, false],
        [GVT_UUID, true, false],
        [MTTY_UUID, true, false],
      ].sort(),
    );
  });

  it('nodedev-dumpxml prints valid XML for parents and mdevs, by name or UUID', (t) => {
    const docs: string[] = [];
    for (const name of [
      'pci_0000_00_02_0',
      'css_0_0_0313',
      'ap_matrix',
      mdevNodeDeviceName(U1, GVT),
      U2,
      U3,
    ]) {
      const r = withRoot(['nodedev-dumpxml', name]);
      assert.equal(r.status, 0, `${name}: ${r.stderr}`);
      assert.match(r.stdout, /^<device>\n {2}<name>/);
      docs.push(r.stdout);
    }
    assert.match(
      docs[3]!,
      new RegExp(
        `<uuid>${U1}</uuid>\\n {4}<parent_addr>${GVT}</parent_addr>\\n {4}<iommuGroup number='\\d+'/>`,
      ),
    );
    assert.match(
      docs[5]!,
      /<type id='vfio_ap-passthrough'\/>[\s\S]*<parent>ap_matrix<\/parent>|<parent>ap_matrix<\/parent>[\s\S]*<type id='vfio_ap-passthrough'\/>/,
    );
    const missing = withRoot(['nodedev-dumpxml', 'pci_0000_99_00_0']);
    assert.equal(missing.status, 1);
    assert.equal(missing.stderr, "mdevkit: no node device with matching name 'pci_0000_99_00_0'\n");
    const notPersistent = withRoot(['nodedev-dumpxml', '--inactive', U3]);
    assert.equal(notPersistent.status, 1);
    assert.match(notPersistent.stderr, /is not persistent/);
    if (requires(t, { libvirtSchemas: hasLibvirtSchemas }, SCHEMA_REASON)) {
      for (const d of docs) assertValidXml(d, 'nodedev');
    }
  });

  it('nodedev-define round trip: define from XML on stdin, dump, define the dump again', (t) => {
    const uuid = '9d5c6a1e-3f4b-4c2d-8e7f-1a2b3c4d5e6f';
    const input = `<device>
  <name>new</name>
  <parent>pci_0000_00_02_0</parent>
  <capability type='mdev'>
    <type id='i915-GVTg_V5_2'/>
    <uuid>${uuid}</uuid>
    <attr name='mdev/aggregation/value' value='1'/>
  </capability>
</device>
`;
    const def = withRoot(['nodedev-define', '-'], input);
    assert.equal(def.status, 0, def.stderr);
    const name = mdevNodeDeviceName(uuid, GVT);
    assert.equal(def.stdout, `Node device '${name}' defined from standard input\n`);
    const dump = withRoot(['nodedev-dumpxml', name]);
    assert.equal(
      dump.stdout,
      `<device>
  <name>${name}</name>
  <parent>pci_0000_00_02_0</parent>
  <capability type='mdev'>
    <type id='i915-GVTg_V5_2'/>
    <uuid>${uuid}</uuid>
    <parent_addr>${GVT}</parent_addr>
    <iommuGroup number='0'/>
    <attr name='mdev/aggregation/value' value='1'/>
  </capability>
</device>
`,
    );
    const file = path.join(tmpDir(), 'dev.xml');
    fs.writeFileSync(file, dump.stdout);
    const again = withRoot(['nodedev-define', file, '--json']);
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout), {
      name,
      uuid,
      parent: GVT,
      replaced: true,
      generatedUuid: false,
    });
    assert.equal(withRoot(['nodedev-dumpxml', name]).stdout, dump.stdout);
    const bad = withRoot(['nodedev-define', '-'], '<device><capability type="pci"/></device>');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^mdevkit: standard input: only mediated devices can be defined/);
    if (requires(t, { libvirtSchemas: hasLibvirtSchemas }, SCHEMA_REASON)) {
      assertValidXml(input, 'nodedev');
      assertValidXml(dump.stdout, 'nodedev');
    }
  });
});

describe('a broken definition file', () => {
  it('is skipped with a warning; the listing goes on', () => {
    const dir = tmpDir('mdevkit-libvirt-broken-');
    fs.cpSync(root, dir, { recursive: true, verbatimSymlinks: true });
    const broken = path.join(dir, 'etc/mdevctl.d', GVT, '0a0b0c0d-0e0f-4a1b-8c2d-3e4f5a6b7c8d');
    fs.writeFileSync(broken, '{ "mdev_type": ');
    const r = mdevkit(['nodedev-list', '--all', '--cap', 'mdev', '--root', dir]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stdout.includes(mdevNodeDeviceName(U2, '0.0.0313')));
    assert.match(r.stderr, new RegExp(`^mdevkit: warning: skipping Invalid definition ${broken}`));
  });
});

describe('hostdev-xml and qemu-args through bin/mdevkit', () => {
  it('print the hostdev and the -device argument for each model', (t) => {
    const xml = withRoot(['hostdev-xml', U1, '--display', '--ramfb']);
    assert.equal(xml.status, 0, xml.stderr);
    assert.match(
      xml.stdout,
      /^<hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='on' ramfb='on'>/,
    );
    const ccw = withRoot(['hostdev-xml', U2]);
    assert.match(ccw.stdout, /model='vfio-ccw'>/);
    const ap = withRoot(['hostdev-xml', U3, '--json']);
    assert.equal(JSON.parse(ap.stdout).model, 'vfio-ap');

    const dev = `/sys/bus/mdev/devices/${U1}`;
    assert.equal(
      withRoot(['qemu-args', U1]).stdout,
      `-device '{"driver":"vfio-pci","id":"hostdev0","sysfsdev":"${dev}","display":"off"}'\n`,
    );
    assert.equal(
      withRoot(['qemu-args', U1, '--display', '--ramfb', '--syntax', 'classic', '--id', 'hostdev2'])
        .stdout,
      `-device vfio-pci-nohotplug,id=hostdev2,sysfsdev=${dev},display=on,ramfb=on\n`,
    );
    const json = JSON.parse(withRoot(['qemu-args', U2, '--json']).stdout);
    assert.deepEqual(json.classic, [
      '-device',
      `vfio-ccw,id=hostdev0,sysfsdev=/sys/bus/mdev/devices/${U2}`,
    ]);
    assert.deepEqual(JSON.parse(json.json[1]), {
      driver: 'vfio-ccw',
      id: 'hostdev0',
      sysfsdev: `/sys/bus/mdev/devices/${U2}`,
    });
    if (requires(t, { libvirtSchemas: hasLibvirtSchemas }, SCHEMA_REASON)) {
      assertValidXml(domainXml('t', xml.stdout + ccw.stdout + JSON.parse(ap.stdout).xml), 'domain');
    }
  });

  it('say what is wrong, with usage errors exiting 2', () => {
    const display = withRoot(['qemu-args', U2, '--display']);
    assert.equal(display.status, 1);
    assert.match(display.stderr, /only supported with model='vfio-pci'/);
    const unknown = withRoot(['hostdev-xml', '5e0d6c4a-1111-4222-8333-444455556666']);
    assert.equal(unknown.status, 1);
    assert.equal(
      unknown.stderr,
      'mdevkit: mediated device 5e0d6c4a-1111-4222-8333-444455556666 is neither running nor defined\n',
    );
    const notUuid = withRoot(['qemu-args', 'gpu0']);
    assert.equal(notUuid.status, 2);
    assert.match(notUuid.stderr, /^mdevkit: 'gpu0' is not a UUID\n/);
    const syntax = withRoot(['qemu-args', U1, '--syntax', 'yaml']);
    assert.equal(syntax.status, 2);
    assert.doesNotMatch(
      syntax.stderr + unknown.stderr + display.stderr,
      /\n\s+at /,
      'no stack traces',
    );
  });
});

describe('ensure-started and the README hook script', () => {
  /** The hook script of README.md, installed in a temp dir with mdevkit on its PATH. */
  function installHook(): { hook: string; env: NodeJS.ProcessEnv } {
    const readme = fs.readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const m = /cat > \/etc\/libvirt\/hooks\/qemu <<'EOF'\n([\s\S]*?)\nEOF\n/.exec(readme);
    assert.ok(m, 'README.md shows the hook script');
    const dir = tmpDir('mdevkit-hook-');
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    fs.symlinkSync(MDEVKIT_BIN, path.join(bin, 'mdevkit'));
    const hook = path.join(dir, 'qemu');
    fs.writeFileSync(hook, `${m[1]}\n`, { mode: 0o755 });
    return {
      hook,
      env: { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}`, MDEVCTL_ENV_ROOT: root },
    };
  }

  it('the hook lets a VM whose mdevs run start, and ignores the other phases', () => {
    const { hook, env } = installHook();
    const run = (args: string[], input: string) =>
      spawnSync(hook, args, { input, env, encoding: 'utf8' });
    const prepare = run(['vgpu-guest', 'prepare', 'begin', '-'], VGPU_GUEST);
    assert.equal(prepare.status, 0, prepare.stderr);
    assert.equal(prepare.stdout, '');
    for (const phase of [
      ['start', 'begin'],
      ['started', 'begin'],
      ['stopped', 'end'],
      ['release', 'end'],
    ]) {
      const r = run(['vgpu-guest', ...phase, '-'], 'not even XML');
      assert.equal(r.status, 0, `${phase.join(' ')}: ${r.stderr}`);
    }
  });

  it('the hook fails a VM start naming the mdev that is neither running nor defined', () => {
    const { hook, env } = installHook();
    const missing = '0f0e0d0c-0b0a-4909-8807-060504030201';
    const xml = domainXml(
      'broken-guest',
      `    <hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='off'>
      <source>
        <address uuid='${missing}'/>
      </source>
    </hostdev>
`,
    );
    const r = spawnSync(hook, ['broken-guest', 'prepare', 'begin', '-'], {
      input: xml,
      env,
      encoding: 'utf8',
    });
    assert.equal(r.status, 1);
    assert.equal(
      r.stderr,
      `mdevkit: mediated device ${missing} for domain 'broken-guest' is neither running nor defined\n`,
    );
  });

  it('ensure-started reads a file or standard input and reports per device', () => {
    const file = fileURLToPathSafe(new URL('vgpu-guest.xml', FIXTURES));
    const r = withRoot(['ensure-started', file]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.stdout,
      `${GVT_UUID} (parent ${GVT}, type i915-GVTg_V5_8): already running\n` +
        `${MTTY_UUID} (parent mtty, type mtty-1): already running\n`,
    );
    const json = JSON.parse(withRoot(['ensure-started', '-', '--json'], VGPU_GUEST).stdout);
    assert.equal(json.ok, true);
    assert.deepEqual(
      json.devices.map((d: { state: string }) => d.state),
      ['running', 'running'],
    );
    const none = withRoot(['ensure-started', '/nonexistent/vm.xml']);
    assert.equal(none.status, 1);
    assert.equal(
      none.stderr,
      "mdevkit: cannot read domain XML '/nonexistent/vm.xml': no such file\n",
    );
  });
});

function fileURLToPathSafe(u: URL): string {
  return decodeURIComponent(u.pathname);
}
