import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { environmentAt } from '../../../src/host/environment.js';
import {
  AttributeWriteError,
  defineDevice,
  modifyDevice,
  startDevice,
} from '../../../src/host/devices.js';
import { labWith, U1, U2 } from '../../support/labs.js';
import { tmpDir } from '../../support/tmp.js';
import { availability, devDir } from './_support.js';

/**
 * Seed 001's flow, end to end through the management side (the host
 * library over the lab's port, as mdevctl does it):
 *   mdevctl define -u U -p P -t T
 *   mdevctl modify -u U --addattr=mdev/aggregation/value --value=N
 *   mdevctl start -u U
 * start creates the device, then writes the attribute; when the write
 * fails, the device is unwound and the parent's capacity is as before.
 */
function hostWith(driver: string) {
  const lab = labWith([{ driver }]);
  const root = tmpDir('mdevkit-agg-');
  const env = environmentAt(root, lab.port);
  return { lab, env };
}

const aggregate = (
  env: ReturnType<typeof environmentAt>,
  uuid: string,
  parent: string,
  type: string,
  value: string,
): void => {
  defineDevice(env, { uuid, parent, type });
  modifyDevice(env, { uuid, addAttr: { name: 'mdev/aggregation/value', value } });
  startDevice(env, { uuid });
};

describe('aggregation through the mdevctl flow', () => {
  it('starts an aggregated GVT-g device', () => {
    const { lab, env } = hostWith('gvt');
    aggregate(env, U1, '0000:00:02.0', 'i915-GVTg_V5_8', '2');
    assert.equal(lab.port.read(`${devDir(U1)}/mdev/aggregation/value`), '2\n');
    assert.equal(availability(lab.port, '0000:00:02.0')['i915-GVTg_V5_8'], 5);
  });

  it('unwinds the device when the parent has too little left (ENOSPC)', () => {
    const { lab, env } = hostWith('siov');
    const parent = '0000:6a:01.0';
    aggregate(env, U1, parent, 'idxd-4wq', '4'); // 16 queues
    aggregate(env, '44444444-4444-4444-8444-444444444444', parent, 'idxd-4wq', '4');
    aggregate(env, '55555555-5555-4555-8555-555555555555', parent, 'idxd-4wq', '4');
    const before = availability(lab.port, parent);
    assert.deepEqual(before, { 'idxd-1wq': 16, 'idxd-2wq': 8, 'idxd-4wq': 4 });
    // 16 queues left: a fourth device of 4 x 4 fits, a 16 x 1wq fits, but
    // after one more queue is gone it does not.
    aggregate(env, '66666666-6666-4666-8666-666666666666', parent, 'idxd-1wq', '1');
    assert.throws(
      () => aggregate(env, U2, parent, 'idxd-1wq', '16'),
      (err: unknown) =>
        err instanceof AttributeWriteError &&
        err.attribute === 'mdev/aggregation/value' &&
        /No space left on device/.test(err.reason),
    );
    assert.equal(lab.port.kind(devDir(U2)), null, 'the failed start left no device');
    assert.deepEqual(availability(lab.port, parent), {
      'idxd-1wq': 15,
      'idxd-2wq': 7,
      'idxd-4wq': 3,
    });
  });
});
