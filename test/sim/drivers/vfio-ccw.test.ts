import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EmulatedKernel } from '../../../src/sim/core/kernel.js';
import { MdevCore } from '../../../src/sim/core/mdev-core.js';
import { vfioCcwModule } from '../../../src/sim/drivers/vfio-ccw.js';
import { TreeSysfsPort } from '../../../src/sim/sysfs/tree-port.js';
import { labWith, U1, U2, U3 } from '../../support/labs.js';
import { devDir, errnoOf, readNumber, typeDir } from './_support.js';

const SCH = '0.0.0313';
const TYPE = 'vfio_ccw-io';

describe('vfio-ccw', () => {
  it('registers each subchannel under /sys/devices/css0 with the io type', () => {
    const { port } = labWith([{ driver: 'vfio-ccw' }]);
    assert.deepEqual(port.list('/sys/class/mdev_bus').sort(), ['0.0.0313', '0.0.0314']);
    assert.equal(port.realpath(`/sys/class/mdev_bus/${SCH}`), `/sys/devices/css0/${SCH}`);
    assert.equal(port.realpath(`/sys/bus/css/devices/${SCH}`), `/sys/devices/css0/${SCH}`);
    assert.equal(
      port.realpath(`/sys/bus/css/devices/${SCH}/driver`),
      '/sys/bus/css/drivers/vfio_ccw',
    );
    assert.equal(port.read(`/sys/bus/css/devices/${SCH}/type`), '0\n');
    assert.deepEqual(port.list(`/sys/class/mdev_bus/${SCH}/mdev_supported_types`), [TYPE]);
    const dir = typeDir(SCH, TYPE);
    assert.equal(port.read(`${dir}/name`), 'I/O subchannel (Non-QDIO)\n');
    assert.equal(port.read(`${dir}/device_api`), 'vfio-ccw\n');
    assert.equal(readNumber(port, `${dir}/available_instances`), 1);
    assert.equal(port.kind(`${dir}/description`), null, 'vfio_ccw has no description');
    assert.equal(port.kind(`${dir}/aggregation`), null);
  });

  it('allows one instance per subchannel (EUSERS after that)', () => {
    const lab = labWith([{ driver: 'vfio-ccw' }]);
    const { port } = lab;
    port.write(`${typeDir(SCH, TYPE)}/create`, U1);
    assert.equal(readNumber(port, `${typeDir(SCH, TYPE)}/available_instances`), 0);
    assert.equal(
      errnoOf(() => port.write(`${typeDir(SCH, TYPE)}/create`, U2)),
      'EUSERS',
    );
    assert.equal(port.kind(devDir(U2)), null);
    // The other subchannel is its own parent.
    port.write(`${typeDir('0.0.0314', TYPE)}/create`, U2);
    assert.equal(
      port.realpath(`${devDir(U1)}/mdev_type`),
      `/sys/devices/css0/${SCH}/mdev_supported_types/${TYPE}`,
    );
    // Open devices stay; released ones go, and the instance comes back.
    lab.open(U1);
    assert.equal(
      errnoOf(() => port.write(`${devDir(U1)}/remove`, '1')),
      'EBUSY',
    );
    lab.close(U1);
    port.write(`${devDir(U1)}/remove`, '1');
    assert.equal(readNumber(port, `${typeDir(SCH, TYPE)}/available_instances`), 1);
    port.write(`${typeDir(SCH, TYPE)}/create`, U3);
  });

  it('refuses a subchannel another profile entry has, leaving nothing half-made', () => {
    const kernel = new EmulatedKernel();
    const ctx = { kernel, core: new MdevCore(kernel) };
    const opts = (ids: string[]) => vfioCcwModule.options.parse({ subchannels: ids });
    vfioCcwModule.load(ctx, opts(['0.0.0314']));
    assert.throws(() => vfioCcwModule.load(ctx, opts(['0.0.0313', '0.0.0314'])), {
      code: 'EEXIST',
    });
    const port = new TreeSysfsPort(kernel.tree);
    assert.deepEqual(port.list('/sys/class/mdev_bus'), ['0.0.0314']);
    // Subchannels only (css0 also holds its uevent file and the channel path).
    const subchannels = port.list('/sys/devices/css0').filter((n) => /^\d\.\d\./.test(n));
    assert.deepEqual(subchannels, ['0.0.0314']);
    assert.deepEqual(port.list('/sys/bus/css/drivers/vfio_ccw'), ['0.0.0314']);
  });

  it('takes the subchannel ids from the profile', () => {
    const { port } = labWith([{ driver: 'vfio-ccw', options: { subchannels: ['0.1.abcd'] } }]);
    assert.deepEqual(port.list('/sys/class/mdev_bus'), ['0.1.abcd']);
    assert.throws(
      () => labWith([{ driver: 'vfio-ccw', options: { subchannels: ['313'] } }]),
      /subchannels\[0\]: a subchannel id such as 0.0.0313/,
    );
  });
});
