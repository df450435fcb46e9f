import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatIdList } from '../../../src/sim/drivers/siov.js';
import { labWith, uuidN, U1, U2, U3 } from '../../support/labs.js';
import { availability, devDir, errnoOf, typeDir } from './_support.js';

const DSA = '0000:6a:01.0';
const Q1 = 'idxd-1wq';
const Q2 = 'idxd-2wq';
const Q4 = 'idxd-4wq';
const queues = (port: { read(p: string): string }, u: string): string =>
  port.read(`${devDir(u)}/vendor/queues`);
const value = (u: string): string => `${devDir(u)}/mdev/aggregation/value`;

describe('siov (idxd-like queue device)', () => {
  it('is a PCI accelerator whose types draw on one pool of 64 work queues', () => {
    const { port } = labWith([{ driver: 'siov' }]);
    assert.deepEqual(port.list('/sys/class/mdev_bus'), [DSA]);
    assert.equal(port.read(`/sys/bus/pci/devices/${DSA}/device`), '0x0b25\n');
    assert.equal(port.realpath(`/sys/bus/pci/devices/${DSA}/driver`), '/sys/bus/pci/drivers/idxd');
    assert.deepEqual(availability(port, DSA), { [Q1]: 64, [Q2]: 32, [Q4]: 16 });
    assert.equal(port.read(`${typeDir(DSA, Q2)}/name`), 'DSA 2 work queues\n');
    assert.equal(port.read(`${typeDir(DSA, Q2)}/description`), 'work_queues: 2\n');
    // The per-device ceiling of 16 queues, in instances of each type.
    assert.equal(port.read(`${typeDir(DSA, Q1)}/aggregation`), '16\n');
    assert.equal(port.read(`${typeDir(DSA, Q2)}/aggregation`), '8\n');
    assert.equal(port.read(`${typeDir(DSA, Q4)}/aggregation`), '4\n');
  });

  it('lists the queues each device holds, and moves them with the aggregation', () => {
    const { port } = labWith([{ driver: 'siov' }]);
    port.write(`${typeDir(DSA, Q1)}/create`, U1);
    port.write(`${typeDir(DSA, Q2)}/create`, U2);
    port.write(`${typeDir(DSA, Q4)}/create`, U3);
    assert.equal(queues(port, U1), '0\n');
    assert.equal(queues(port, U2), '1-2\n');
    assert.equal(queues(port, U3), '3-6\n');
    assert.deepEqual(availability(port, DSA), { [Q1]: 57, [Q2]: 28, [Q4]: 14 });

    port.write(value(U1), '3');
    assert.equal(queues(port, U1), '0,7-8\n');
    port.write(value(U2), '2');
    assert.equal(queues(port, U2), '1-2,9-10\n');
    assert.deepEqual(availability(port, DSA), { [Q1]: 53, [Q2]: 26, [Q4]: 13 });
    // Lowering gives back the highest ids the device holds.
    port.write(value(U1), '2');
    assert.equal(queues(port, U1), '0,7\n');
    assert.deepEqual(availability(port, DSA), { [Q1]: 54, [Q2]: 27, [Q4]: 13 });
    // A freed queue is the next one taken.
    port.write(`${devDir(U1)}/remove`, '1');
    port.write(`${typeDir(DSA, Q4)}/create`, U1);
    assert.equal(queues(port, U1), '0,7-8,11\n');
    assert.equal(port.read(`${devDir(U1)}/mdev/aggregation/max`), '4\n');
  });

  it('refuses what the pool cannot hold with ENOSPC, and limits with EINVAL', () => {
    const lab = labWith([{ driver: 'siov', options: { queues: 8, max_queues_per_device: 8 } }]);
    const { port } = lab;
    port.write(`${typeDir(DSA, Q1)}/create`, U1);
    port.write(`${typeDir(DSA, Q4)}/create`, U2);
    // Three queues left; doubling U2 needs four.
    assert.equal(
      errnoOf(() => port.write(value(U2), '2')),
      'ENOSPC',
    );
    assert.equal(queues(port, U2), '1-4\n');
    assert.equal(port.read(value(U2)), '1\n');
    assert.deepEqual(availability(port, DSA), { [Q1]: 3, [Q2]: 1, [Q4]: 0 });
    assert.equal(
      errnoOf(() => port.write(`${typeDir(DSA, Q4)}/create`, U3)),
      'ENOSPC',
    );
    // Above the per-device ceiling: EINVAL, whatever is free.
    assert.equal(
      errnoOf(() => port.write(value(U2), '3')),
      'EINVAL',
    );
    assert.equal(
      errnoOf(() => port.write(value(U1), '9')),
      'EINVAL',
    );
    port.write(value(U1), '4');
    assert.equal(queues(port, U1), '0,5-7\n');
    // Open: EBUSY.
    lab.open(U1);
    assert.equal(
      errnoOf(() => port.write(value(U1), '1')),
      'EBUSY',
    );
    assert.equal(queues(port, U1), '0,5-7\n');
    lab.close(U1);
    port.write(value(U1), '1');
    assert.equal(queues(port, U1), '0\n');
  });

  it('checks its options', () => {
    assert.throws(
      () => labWith([{ driver: 'siov', options: { queues: 4, max_queues_per_device: 8 } }]),
      /max_queues_per_device: max_queues_per_device cannot exceed queues/,
    );
    const { port } = labWith([{ driver: 'siov', options: { address: '0000:e7:01.0' } }]);
    assert.deepEqual(port.list('/sys/class/mdev_bus'), ['0000:e7:01.0']);
    port.write(`${typeDir('0000:e7:01.0', Q1)}/create`, uuidN(1));
  });

  it('prints id lists as the kernel does', () => {
    assert.equal(formatIdList([]), '');
    assert.equal(formatIdList([5]), '5');
    assert.equal(formatIdList([0, 1, 2, 4, 6, 7]), '0-2,4,6-7');
  });
});
