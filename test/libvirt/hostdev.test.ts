import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defineDevice, startDevice } from '../../src/host/devices.js';
import {
  HostdevError,
  deviceApiOf,
  formatHostdevXml,
  mdevHostdev,
  qemuDeviceClassic,
  qemuDeviceJson,
  shellQuote,
} from '../../src/libvirt/hostdev.js';
import { hasLibvirtSchemas, requires } from '../support/capabilities.js';
import { U1, U2, U3, labWith, uuidN } from '../support/labs.js';
import { assertValidXml, domainXml, labEnvironment } from './support.js';

const SCHEMA_REASON = "libvirt's RNG schemas validate the domain XML we produce";

function lab() {
  return labWith([{ driver: 'gvt' }, { driver: 'vfio-ccw' }, { driver: 'vfio-ap' }]);
}

describe('device API of an mdev', () => {
  it('comes from the running device, or from the type of its definition', () => {
    const env = labEnvironment(lab());
    startDevice(env, { uuid: U1, parent: '0000:00:02.0', type: 'i915-GVTg_V5_4' });
    defineDevice(env, { uuid: U2, parent: '0.0.0313', type: 'vfio_ccw-io' });
    defineDevice(env, { uuid: U3, parent: 'matrix', type: 'vfio_ap-passthrough' });
    assert.equal(deviceApiOf(env, U1), 'vfio-pci');
    assert.equal(deviceApiOf(env, U2), 'vfio-ccw');
    assert.equal(deviceApiOf(env, U3), 'vfio-ap');
    assert.throws(
      () => deviceApiOf(env, uuidN(9)),
      (err: unknown) =>
        err instanceof HostdevError &&
        err.message === `mediated device ${uuidN(9)} is neither running nor defined`,
    );
    defineDevice(env, { uuid: uuidN(10), parent: 'gone', type: 'x-1' });
    assert.throws(() => deviceApiOf(env, uuidN(10)), /type x-1 is not offered by parent gone/);
  });
});

describe('domain <hostdev> for an mdev', () => {
  it('uses the model of the device API; vfio-pci gets display off by default', (t) => {
    const cases = [
      {
        h: mdevHostdev(U1, 'vfio-pci'),
        xml: `<hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='off'>
  <source>
    <address uuid='${U1}'/>
  </source>
</hostdev>
`,
      },
      {
        h: mdevHostdev(U1, 'vfio-pci', { display: true, ramfb: true }),
        xml: `<hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='on' ramfb='on'>
  <source>
    <address uuid='${U1}'/>
  </source>
</hostdev>
`,
      },
      {
        h: mdevHostdev(U2, 'vfio-ccw'),
        xml: `<hostdev mode='subsystem' type='mdev' managed='no' model='vfio-ccw'>
  <source>
    <address uuid='${U2}'/>
  </source>
</hostdev>
`,
      },
      {
        h: mdevHostdev(U3.toUpperCase(), 'vfio-ap'),
        xml: `<hostdev mode='subsystem' type='mdev' managed='no' model='vfio-ap'>
  <source>
    <address uuid='${U3}'/>
  </source>
</hostdev>
`,
      },
    ];
    for (const c of cases) assert.equal(formatHostdevXml(c.h), c.xml);
    if (requires(t, { libvirtSchemas: hasLibvirtSchemas }, SCHEMA_REASON)) {
      for (const c of cases)
        assertValidXml(domainXml('t', formatHostdevXml(c.h, '    ')), 'domain');
    }
  });

  it('refuses what libvirt refuses', () => {
    assert.throws(() => mdevHostdev(U1, 'vfio-pci', { ramfb: true }), /ramfb requires the display/);
    assert.throws(
      () => mdevHostdev(U1, 'vfio-ccw', { display: true }),
      /only supported with model='vfio-pci'; mediated device .* is vfio-ccw/,
    );
    assert.throws(() => mdevHostdev(U1, 'vfio-platform'), /device API 'vfio-platform'/);
    assert.throws(() => mdevHostdev('not-a-uuid', 'vfio-pci'), /invalid UUID/);
  });
});

describe('QEMU -device arguments', () => {
  const sysfsdev = `/sys/bus/mdev/devices/${U1}`;

  it('match what libvirt generates, in JSON and classic syntax', () => {
    const plain = mdevHostdev(U1, 'vfio-pci');
    assert.equal(
      qemuDeviceJson(plain),
      `{"driver":"vfio-pci","id":"hostdev0","sysfsdev":"${sysfsdev}","display":"off"}`,
    );
    assert.equal(qemuDeviceClassic(plain), `vfio-pci,id=hostdev0,sysfsdev=${sysfsdev},display=off`);

    const ramfb = mdevHostdev(U1, 'vfio-pci', { display: true, ramfb: true });
    assert.equal(
      qemuDeviceJson(ramfb, 'hostdev3'),
      `{"driver":"vfio-pci-nohotplug","id":"hostdev3","sysfsdev":"${sysfsdev}","display":"on","ramfb":true}`,
    );
    assert.equal(
      qemuDeviceClassic(ramfb, 'hostdev3'),
      `vfio-pci-nohotplug,id=hostdev3,sysfsdev=${sysfsdev},display=on,ramfb=on`,
    );
    const display = mdevHostdev(U1, 'vfio-pci', { display: true });
    assert.equal(
      qemuDeviceClassic(display),
      `vfio-pci,id=hostdev0,sysfsdev=${sysfsdev},display=on`,
    );

    assert.equal(
      qemuDeviceJson(mdevHostdev(U1, 'vfio-ccw')),
      `{"driver":"vfio-ccw","id":"hostdev0","sysfsdev":"${sysfsdev}"}`,
    );
    assert.equal(
      qemuDeviceClassic(mdevHostdev(U1, 'vfio-ap')),
      `vfio-ap,id=hostdev0,sysfsdev=${sysfsdev}`,
    );
  });

  it('quote for a shell so the JSON survives as one argument', () => {
    assert.equal(shellQuote('vfio-ap,id=hostdev0'), 'vfio-ap,id=hostdev0');
    assert.equal(shellQuote('{"a":"b"}'), `'{"a":"b"}'`);
    assert.equal(shellQuote("it's"), `'it'\\''s'`);
  });
});
