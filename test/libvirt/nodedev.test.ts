import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { defineDevice, startDevice } from '../../src/host/devices.js';
import { environmentAt } from '../../src/host/environment.js';
import { mdevNodeDeviceName, nodeDeviceName } from '../../src/libvirt/names.js';
import {
  findNodeDevice,
  formatNodeDeviceXml,
  listNodeDevices,
  nodeDeviceJson,
} from '../../src/libvirt/nodedev.js';
import { defineFromRequest, parseMdevNodeDeviceXml } from '../../src/libvirt/nodedev-define.js';
import { parseXml } from '../../src/libvirt/xml.js';
import { writeSnapshot } from '../../src/sim/sysfs/snapshot.js';
import { hasLibvirtSchemas, requires } from '../support/capabilities.js';
import { U1, U2, U3, labWith } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { assertValidXml, labEnvironment } from './support.js';

const GVT = '0000:00:02.0';
const SCHEMA_REASON = "libvirt's RNG schemas validate the XML we produce";

/** GVT-g (PCI), two vfio-ccw subchannels, the vfio_ap matrix and the mtty sample. */
function mixedLab() {
  return labWith([
    { driver: 'gvt' },
    { driver: 'vfio-ccw' },
    { driver: 'vfio-ap' },
    { driver: 'mtty' },
  ]);
}

describe('libvirt node device names', () => {
  it('flattens every non-alphanumeric character as nodeDeviceGenerateName does', () => {
    assert.equal(nodeDeviceName('pci', '0000:00:02.0'), 'pci_0000_00_02_0');
    assert.equal(nodeDeviceName('css', '0.0.0313'), 'css_0_0_0313');
    assert.equal(
      mdevNodeDeviceName('4B20D080-1B54-4048-85B3-A6A62D165C01', '0000:00:02.0'),
      'mdev_4b20d080_1b54_4048_85b3_a6a62d165c01_0000_00_02_0',
    );
  });
});

describe('parents as node devices', () => {
  it('lists PCI, css, ap_matrix and mtty parents with mdev_types, and no node device for other virtual parents', () => {
    const env = labEnvironment(
      labWith([
        { driver: 'gvt' },
        { driver: 'vfio-ccw' },
        { driver: 'vfio-ap' },
        { driver: 'mtty' },
        { driver: 'mdpy' },
      ]),
    );
    const names = listNodeDevices(env, { caps: ['mdev_types'] }).map((d) => d.name);
    // libvirt 9 knows the mtty sample's subsystem by name; mdpy's it does not.
    assert.deepEqual(names, [
      'ap_matrix',
      'css_0_0_0313',
      'css_0_0_0314',
      'mtty_mtty',
      'pci_0000_00_02_0',
    ]);
    assert.deepEqual(
      listNodeDevices(env, { caps: ['pci'] }).map((d) => d.name),
      ['pci_0000_00_02_0'],
    );
  });

  it('reads the PCI capability from sysfs files and the types live', (t) => {
    const lab = mixedLab();
    const env = labEnvironment(lab);
    const before = findNodeDevice(env, 'pci_0000_00_02_0');
    assert.ok(before?.kind === 'parent' && before.capability.type === 'pci');
    const cap = before.capability;
    assert.equal(
      cap.vendorId,
      parseInt(lab.port.read(`/sys/bus/pci/devices/${GVT}/vendor`).trim(), 16),
    );
    assert.equal(
      cap.productId,
      parseInt(lab.port.read(`/sys/bus/pci/devices/${GVT}/device`).trim(), 16),
    );
    assert.deepEqual(cap.address, { domain: 0, bus: 0, slot: 2, function: 0 });
    const v54 = (d: typeof before) =>
      d.types.find((ty) => ty.id === 'i915-GVTg_V5_4')!.availableInstances;
    const avail = v54(before);
    startDevice(env, { uuid: U1, parent: GVT, type: 'i915-GVTg_V5_4' });
    const after = findNodeDevice(env, 'pci_0000_00_02_0');
    assert.ok(after?.kind === 'parent');
    assert.equal(v54(after), avail - 1, 'availableInstances follows sysfs');

    const xml = formatNodeDeviceXml(after);
    const doc = parseXml(xml, 'dump');
    const pci = doc.children.find((c) => c.name === 'capability')!;
    assert.equal(pci.attrs['type'], 'pci');
    // libvirt's order: class, domain, bus, slot, function, product, vendor,
    // mdev_types, iommuGroup, pci-express (the IGD is an integrated Express endpoint)
    assert.deepEqual(
      pci.children.map((c) => c.name),
      [
        'class',
        'domain',
        'bus',
        'slot',
        'function',
        'product',
        'vendor',
        'capability',
        'iommuGroup',
        'pci-express',
      ],
    );
    assert.match(xml, /<pci-express\/>/, 'no link for a root complex integrated endpoint');
    assert.match(xml, /<product id='0x[0-9a-f]{4}'\/>/);
    assert.match(xml, /<deviceAPI>vfio-pci<\/deviceAPI>/);
    if (requires(t, { libvirtSchemas: hasLibvirtSchemas }, SCHEMA_REASON)) {
      assertValidXml(xml, 'nodedev');
    }
  });

  it('shapes css and ap_matrix parents as libvirt does, valid against nodedev.rng', (t) => {
    const env = labEnvironment(mixedLab());
    const css = formatNodeDeviceXml(findNodeDevice(env, 'css_0_0_0313')!);
    assert.match(css, /<cssid>0x0<\/cssid>\n {4}<ssid>0x0<\/ssid>\n {4}<devno>0x0313<\/devno>/);
    assert.match(css, /<deviceAPI>vfio-ccw<\/deviceAPI>/);
    const ap = formatNodeDeviceXml(findNodeDevice(env, 'ap_matrix')!);
    assert.match(ap, /<capability type='ap_matrix'>\n {4}<capability type='mdev_types'>/);
    assert.match(ap, /<deviceAPI>vfio-ap<\/deviceAPI>/);
    if (requires(t, { libvirtSchemas: hasLibvirtSchemas }, SCHEMA_REASON)) {
      assertValidXml(css, 'nodedev');
      assertValidXml(ap, 'nodedev');
    }
  });

  it('copes with a PCI parent whose sysfs lacks ids, class and IOMMU group', (t) => {
    const lab = labWith([{ driver: 'gvt' }]);
    const root = tmpDir();
    writeSnapshot(lab.kernel.tree, root);
    const dev = fs.realpathSync(path.join(root, 'sys/class/mdev_bus', GVT));
    for (const f of ['vendor', 'device', 'class', 'iommu_group', 'driver']) {
      fs.rmSync(path.join(dev, f), { force: true });
    }
    const env = environmentAt(root);
    const parent = findNodeDevice(env, 'pci_0000_00_02_0');
    assert.ok(parent?.kind === 'parent');
    const xml = formatNodeDeviceXml(parent);
    assert.doesNotMatch(xml, /<class>|<iommuGroup|<driver>/);
    assert.match(xml, /<product id='0x0000'\/>\n {4}<vendor id='0x0000'\/>/);
    if (requires(t, { libvirtSchemas: hasLibvirtSchemas }, SCHEMA_REASON)) {
      assertValidXml(xml, 'nodedev');
    }
  });
});

describe('mediated devices as node devices', () => {
  it('shows a running device with path, driver, IOMMU group and its definition\u2019s attributes', (t) => {
    const lab = mixedLab();
    const env = labEnvironment(lab);
    defineDevice(env, {
      uuid: U1,
      parent: GVT,
      json: {
        name: 'test',
        read: () =>
          JSON.stringify({
            mdev_type: 'i915-GVTg_V5_4',
            start: 'auto',
            attrs: [{ 'mdev/aggregation/value': '1' }],
          }),
      },
    });
    startDevice(env, { uuid: U1 });
    const name = mdevNodeDeviceName(U1, GVT);
    const dev = findNodeDevice(env, name);
    assert.ok(dev?.kind === 'mdev');
    assert.equal(dev.parent, 'pci_0000_00_02_0');
    assert.equal(dev.active, true);
    assert.equal(dev.persistent, true);
    assert.equal(dev.autostart, true);
    const group = lab.port.readlink(`/sys/bus/mdev/devices/${U1}/iommu_group`);
    assert.equal(dev.iommuGroup, Number(path.basename(group)));
    const xml = formatNodeDeviceXml(dev);
    assert.equal(
      xml,
      `<device>
  <name>${name}</name>
  <path>${lab.port.realpath(`/sys/bus/mdev/devices/${U1}`)}</path>
  <parent>pci_0000_00_02_0</parent>
  <driver>
    <name>${dev.driver}</name>
  </driver>
  <capability type='mdev'>
    <type id='i915-GVTg_V5_4'/>
    <uuid>${U1}</uuid>
    <parent_addr>${GVT}</parent_addr>
    <iommuGroup number='${dev.iommuGroup}'/>
    <attr name='mdev/aggregation/value' value='1'/>
  </capability>
</device>
`,
    );
    // --inactive: the definition only; libvirt prints IOMMU group 0 there
    assert.doesNotMatch(formatNodeDeviceXml(dev, true), /<path>|<driver>/);
    assert.match(formatNodeDeviceXml(dev, true), /<iommuGroup number='0'\/>/);
    if (requires(t, { libvirtSchemas: hasLibvirtSchemas }, SCHEMA_REASON)) {
      assertValidXml(xml, 'nodedev');
      assertValidXml(formatNodeDeviceXml(dev, true), 'nodedev');
    }
  });

  it('lists defined but inactive devices with --inactive/--all only, and names `computer` for a virtual parent', (t) => {
    const env = labEnvironment(labWith([{ driver: 'gvt' }, { driver: 'mdpy' }]));
    defineDevice(env, { uuid: U2, parent: GVT, type: 'i915-GVTg_V5_8' });
    startDevice(env, { uuid: U3, parent: 'mdpy', type: 'mdpy-vga' });
    const names = (state: 'active' | 'inactive' | 'all') =>
      listNodeDevices(env, { caps: ['mdev'], state }).map((d) => d.name);
    const inactive = mdevNodeDeviceName(U2, GVT);
    const running = mdevNodeDeviceName(U3, 'mdpy');
    assert.deepEqual(names('active'), [running]);
    assert.deepEqual(names('inactive'), [inactive]);
    assert.deepEqual(names('all'), [inactive, running].sort());
    const off = findNodeDevice(env, inactive);
    assert.ok(off?.kind === 'mdev');
    assert.equal(off.active, false);
    assert.deepEqual(nodeDeviceJson(off), {
      name: inactive,
      kind: 'mdev',
      capabilities: ['mdev'],
      uuid: U2,
      parent: 'pci_0000_00_02_0',
      parentAddress: GVT,
      type: 'i915-GVTg_V5_8',
      active: false,
      persistent: true,
      autostart: false,
      path: null,
      driver: null,
      iommuGroup: null,
      attrs: [],
    });
    const onMdpy = findNodeDevice(env, U3); // a bare UUID finds it too
    assert.ok(onMdpy?.kind === 'mdev');
    assert.equal(onMdpy.parent, 'computer', 'mdpy is no node device of libvirt');
    assert.match(formatNodeDeviceXml(off), /<iommuGroup number='0'\/>/);
    if (requires(t, { libvirtSchemas: hasLibvirtSchemas }, SCHEMA_REASON)) {
      assertValidXml(formatNodeDeviceXml(off), 'nodedev');
      assertValidXml(formatNodeDeviceXml(onMdpy), 'nodedev');
    }
  });
});

describe('nodedev-define', () => {
  const request = (parentLine: string, body: string): string => `<device>
  ${parentLine}
  <capability type='mdev'>
${body}
  </capability>
</device>
`;

  it('round trip: define from node device XML, dump it, compare', (t) => {
    const env = labEnvironment(mixedLab());
    // libvirt ignores the name of a device to define, but its schema wants one
    const input = request(
      '<name>new_mdev</name>\n  <parent>pci_0000_00_02_0</parent>',
      `    <type id='i915-GVTg_V5_4'/>
    <uuid>${U1}</uuid>
    <attr name='mdev/aggregation/value' value='2'/>
    <attr name='vendor/note' value='a &amp; b &lt;c&gt; &apos;d&apos;'/>`,
    );
    const req = parseMdevNodeDeviceXml(env, input);
    const outcome = defineFromRequest(env, req);
    assert.equal(outcome.name, mdevNodeDeviceName(U1, GVT));
    assert.equal(outcome.replaced, false);
    // stored exactly as mdevctl stores it
    assert.equal(
      fs.readFileSync(path.join(env.configDir, GVT, U1), 'utf8'),
      JSON.stringify(
        {
          mdev_type: 'i915-GVTg_V5_4',
          start: 'manual',
          attrs: [{ 'mdev/aggregation/value': '2' }, { 'vendor/note': "a & b <c> 'd'" }],
        },
        null,
        2,
      ),
    );
    const dumped = formatNodeDeviceXml(findNodeDevice(env, outcome.name)!);
    assert.equal(
      dumped,
      `<device>
  <name>${outcome.name}</name>
  <parent>pci_0000_00_02_0</parent>
  <capability type='mdev'>
    <type id='i915-GVTg_V5_4'/>
    <uuid>${U1}</uuid>
    <parent_addr>${GVT}</parent_addr>
    <iommuGroup number='0'/>
    <attr name='mdev/aggregation/value' value='2'/>
    <attr name='vendor/note' value='a &amp; b &lt;c&gt; &apos;d&apos;'/>
  </capability>
</device>
`,
    );
    // and the dump defines the same device again (libvirt updates the definition)
    const again = defineFromRequest(env, parseMdevNodeDeviceXml(env, dumped));
    assert.equal(again.replaced, true);
    assert.equal(formatNodeDeviceXml(findNodeDevice(env, outcome.name)!), dumped);
    if (requires(t, { libvirtSchemas: hasLibvirtSchemas }, SCHEMA_REASON)) {
      assertValidXml(input, 'nodedev');
      assertValidXml(dumped, 'nodedev');
    }
  });

  it('takes <parent_addr> for a parent with no node device, and makes up a UUID when there is none', () => {
    const env = labEnvironment(mixedLab());
    const req = parseMdevNodeDeviceXml(
      env,
      request(
        '<parent>computer</parent>',
        "    <type id='mtty-2'/>\n    <parent_addr>mtty</parent_addr>",
      ),
    );
    assert.equal(req.parent, 'mtty');
    assert.equal(req.generatedUuid, true);
    const outcome = defineFromRequest(env, req);
    assert.ok(fs.existsSync(path.join(env.configDir, 'mtty', outcome.uuid)));
  });

  it('redefining replaces type and attributes (libvirt modifies the definition)', () => {
    const env = labEnvironment(mixedLab());
    const def = (type: string, attrs: string) =>
      defineFromRequest(
        env,
        parseMdevNodeDeviceXml(
          env,
          request(
            '<parent>pci_0000_00_02_0</parent>',
            `    <type id='${type}'/>\n    <uuid>${U2}</uuid>${attrs}`,
          ),
        ),
      );
    def('i915-GVTg_V5_4', "\n    <attr name='a' value='1'/>");
    def('i915-GVTg_V5_8', '');
    const stored = JSON.parse(fs.readFileSync(path.join(env.configDir, GVT, U2), 'utf8'));
    assert.deepEqual(stored, { mdev_type: 'i915-GVTg_V5_8', start: 'manual', attrs: [] });
  });

  it('refuses what libvirt refuses, saying why', () => {
    const env = labEnvironment(mixedLab());
    const refuse = (xml: string, re: RegExp) =>
      assert.throws(() => parseMdevNodeDeviceXml(env, xml, 'in.xml'), re);
    refuse('<device><name>x</name>', /in\.xml is not well-formed XML/);
    refuse('<domain/>', /not a node device: its root element is <domain>/);
    refuse(
      "<device><parent>pci_0000_00_02_0</parent><capability type='pci'/></device>",
      /only mediated devices can be defined.*found pci/,
    );
    refuse(
      request('<parent>pci_0000_00_02_0</parent>', '    <uuid>' + U1 + '</uuid>'),
      /needs <type id='...'\/>/,
    );
    refuse(request('', "    <type id='mtty-1'/>"), /without a parent/);
    refuse(
      request('<parent>pci_0000_99_00_0</parent>', "    <type id='x'/>"),
      /no parent node device named 'pci_0000_99_00_0' \(parents here: ap_matrix, css_0_0_0313/,
    );
    refuse(
      request('<parent>pci_0000_00_02_0</parent>', "    <type id='x'/>\n    <uuid>nope</uuid>"),
      /<uuid> "nope" is not a UUID/,
    );
    refuse(
      request('<parent>pci_0000_00_02_0</parent>', "    <type id='x'/>\n    <attr name='a'/>"),
      /every <attr> needs name='...' and value='...'/,
    );
    refuse(
      request(
        '<parent>pci_0000_00_02_0</parent>',
        "    <type id='x'/>\n    <parent_addr>0.0.0313</parent_addr>",
      ),
      /is 0000:00:02\.0, not <parent_addr>0\.0\.0313/,
    );
  });
});
