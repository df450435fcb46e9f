import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { environmentAt } from '../../src/host/environment.js';
import {
  AttributeWriteError,
  defineDevice,
  modifyDevice,
  startDevice,
  stopDevice,
} from '../../src/host/devices.js';
import { U1, U2, labWith } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';

/**
 * Persistent vfio-ap definitions the mdevctl way: a definition whose attrs
 * are assign_adapter/assign_domain/... is applied in order when it starts,
 * and the device is removed again when one write fails (here: a queue that
 * another matrix device holds, EADDRINUSE). Runs the host library (what
 * `mdevctl start` uses) against an in-process lab.
 */

const PARENT = 'matrix';
const TYPE = 'vfio_ap-passthrough';

function setup() {
  const lab = labWith([
    {
      driver: 'vfio-ap',
      options: {
        adapters: [{ id: 5, type: 'CEX8', mode: 'cca' }, { id: 6 }],
        domains: [4, 0x47],
        apmask: '-5,-6',
      },
    },
  ]);
  const env = environmentAt(tmpDir(), lab.port);
  const define = (uuid: string, attrs: [string, string][]): void => {
    defineDevice(env, { uuid, parent: PARENT, type: TYPE });
    for (const [name, value] of attrs) modifyDevice(env, { uuid, addAttr: { name, value } });
  };
  return { lab, env, define };
}

describe('vfio-ap definitions started through the host library', () => {
  it('applies assign_* attributes in order on start and keeps them in the config file', () => {
    const { lab, env, define } = setup();
    define(U1, [
      ['assign_adapter', '5'],
      ['assign_domain', '0x47'],
      ['assign_domain', '4'],
      ['assign_control_domain', '0x47'],
    ]);
    const file = path.join(env.configDir, PARENT, U1);
    const config = JSON.parse(fs.readFileSync(file, 'utf8')) as {
      attrs: Record<string, string>[];
    };
    assert.deepEqual(config.attrs, [
      { assign_adapter: '5' },
      { assign_domain: '0x47' },
      { assign_domain: '4' },
      { assign_control_domain: '0x47' },
    ]);
    startDevice(env, { uuid: U1 });
    assert.equal(lab.port.read(`/sys/bus/mdev/devices/${U1}/matrix`), '05.0004\n05.0047\n');
    assert.equal(lab.port.read(`/sys/bus/mdev/devices/${U1}/control_domains`), '0047\n');
    assert.equal(lab.port.read('/sys/bus/ap/devices/05.0047/status'), 'assigned\n');
    // Stop gives the queues back; a restart claims them again.
    stopDevice(env, U1);
    assert.equal(lab.port.read('/sys/bus/ap/devices/05.0047/status'), 'unassigned\n');
    startDevice(env, { uuid: U1 });
    assert.equal(lab.port.read('/sys/bus/ap/devices/05.0047/status'), 'assigned\n');
  });

  it('unwinds a start whose assignment conflicts: the device is removed, the queues stay with their owner', () => {
    const { lab, env, define } = setup();
    define(U1, [
      ['assign_adapter', '5'],
      ['assign_domain', '0x47'],
    ]);
    define(U2, [
      ['assign_domain', '0x47'],
      ['assign_adapter', '6'],
      ['assign_adapter', '5'], // 05.0047 is U1's
    ]);
    startDevice(env, { uuid: U1 });
    assert.throws(
      () => startDevice(env, { uuid: U2 }),
      (err: unknown) => {
        assert.ok(err instanceof AttributeWriteError, String(err));
        assert.equal(err.attribute, 'assign_adapter');
        assert.equal(err.value, '5');
        assert.match(err.message, /EADDRINUSE/);
        assert.match(err.message, /the device was removed again/);
        return true;
      },
    );
    assert.equal(lab.port.kind(`/sys/bus/mdev/devices/${U2}`), null);
    // 06.0047, which U2 had claimed before the failing write, is free again.
    assert.equal(lab.port.read('/sys/bus/ap/devices/06.0047/status'), 'unassigned\n');
    assert.equal(lab.port.read(`/sys/bus/mdev/devices/${U1}/matrix`), '05.0047\n');
    // A host-owned queue unwinds the same way (EADDRNOTAVAIL).
    lab.port.write('/sys/bus/ap/apmask', '+6');
    stopDevice(env, U1);
    modifyDevice(env, { uuid: U2, delAttr: true }); // drop assign_adapter 5
    assert.throws(
      () => startDevice(env, { uuid: U2 }),
      (err: unknown) => err instanceof AttributeWriteError && /EADDRNOTAVAIL/.test(err.message),
    );
    assert.equal(lab.port.kind(`/sys/bus/mdev/devices/${U2}`), null);
  });
});
