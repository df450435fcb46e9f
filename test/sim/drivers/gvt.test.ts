import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { labWith, U1, U2, U3 } from '../../support/labs.js';
import { availability, devDir, errnoOf, readNumber, typeDir } from './_support.js';

/**
 * Expected numbers come from the kernel's formula (vgpu.c): with a 1024 MB
 * aperture the vGPUs share 896 MB low gm, 2688 MB high gm and 28 fences;
 * a type's available_instances is min(low/low_mm, high/high_mm, fences/4).
 */
const IGD = '0000:00:02.0';
const V8 = 'i915-GVTg_V5_8';
const V4 = 'i915-GVTg_V5_4';
const V2 = 'i915-GVTg_V5_2';
const V1 = 'i915-GVTg_V5_1';
const fresh = () => labWith([{ driver: 'gvt' }]);
const agg = (u: string, f: 'value' | 'max'): string => `${devDir(u)}/mdev/aggregation/${f}`;

describe('gvt', () => {
  it('registers the integrated GPU at 0000:00:02.0 with the kernel type table', () => {
    const { port } = fresh();
    assert.deepEqual(port.list('/sys/class/mdev_bus'), [IGD]);
    const dev = `/sys/bus/pci/devices/${IGD}`;
    assert.equal(port.realpath(dev), `/sys/devices/pci0000:00/${IGD}`);
    assert.equal(port.read(`${dev}/vendor`), '0x8086\n');
    assert.equal(port.read(`${dev}/class`), '0x030000\n');
    assert.equal(port.realpath(`${dev}/driver`), '/sys/bus/pci/drivers/i915');
    assert.deepEqual(availability(port, IGD), { [V1]: 1, [V2]: 2, [V4]: 5, [V8]: 7 });
    assert.equal(port.read(`${typeDir(IGD, V4)}/name`), 'GVTg_V5_4\n');
    assert.equal(port.read(`${typeDir(IGD, V4)}/device_api`), 'vfio-pci\n');
    assert.equal(
      port.read(`${typeDir(IGD, V4)}/description`),
      'low_gm_size: 128MB\nhigh_gm_size: 512MB\nfence: 4\nresolution: 1920x1200\nweight: 4\n',
    );
    assert.equal(
      port.read(`${typeDir(IGD, V8)}/description`),
      'low_gm_size: 64MB\nhigh_gm_size: 384MB\nfence: 4\nresolution: 1024x768\nweight: 2\n',
    );
    assert.equal(
      port.read(`${typeDir(IGD, V1)}/description`),
      'low_gm_size: 512MB\nhigh_gm_size: 2048MB\nfence: 4\nresolution: 1920x1200\nweight: 16\n',
    );
  });

  it('registers only the types whose low memory fits a small aperture', () => {
    const { port } = labWith([{ driver: 'gvt', options: { aperture_mb: 256 } }]);
    // 128 MB low gm for vGPUs: V5_2 (256 MB) and V5_1 never register.
    assert.deepEqual(availability(port, IGD), { [V4]: 1, [V8]: 2 });
  });

  it('shares one budget among mixed types', () => {
    const { port } = fresh();
    port.write(`${typeDir(IGD, V4)}/create`, U1);
    // 768 low, 2176 high, 24 fences left.
    assert.deepEqual(availability(port, IGD), { [V1]: 1, [V2]: 2, [V4]: 4, [V8]: 5 });
    port.write(`${typeDir(IGD, V2)}/create`, U2);
    // 512 low, 1152 high, 20 fences left.
    assert.deepEqual(availability(port, IGD), { [V1]: 0, [V2]: 1, [V4]: 2, [V8]: 3 });
    assert.equal(
      errnoOf(() => port.write(`${typeDir(IGD, V1)}/create`, U3)),
      'ENOSPC',
    );
    port.write(`${typeDir(IGD, V8)}/create`, U3);
    // 448 low, 768 high, 16 fences left: high memory now binds.
    assert.deepEqual(availability(port, IGD), { [V1]: 0, [V2]: 0, [V4]: 1, [V8]: 2 });
    for (const u of [U1, U2, U3]) port.write(`${devDir(u)}/remove`, '1');
    assert.deepEqual(availability(port, IGD), { [V1]: 1, [V2]: 2, [V4]: 5, [V8]: 7 });
  });

  it('advertises aggregation on the types that support it', () => {
    const { port } = fresh();
    // Weight scales with aggregation and may not pass 16: V5_8 (weight 2)
    // aggregates up to 8, but only 7 fit now; V5_1 does not aggregate.
    assert.equal(port.read(`${typeDir(IGD, V8)}/aggregation`), '7\n');
    assert.equal(port.read(`${typeDir(IGD, V4)}/aggregation`), '4\n');
    assert.equal(port.read(`${typeDir(IGD, V2)}/aggregation`), '2\n');
    assert.equal(port.kind(`${typeDir(IGD, V1)}/aggregation`), null);
    assert.equal(
      errnoOf(() => port.write(`${typeDir(IGD, V8)}/aggregation`, '2')),
      'EACCES',
    );
    port.write(`${typeDir(IGD, V4)}/create`, U2);
    // 768 low, 2176 high, 24 fences left: five V5_8s' worth.
    assert.equal(port.read(`${typeDir(IGD, V8)}/aggregation`), '5\n', 'what fits now');
    assert.equal(port.read(`${typeDir(IGD, V4)}/aggregation`), '4\n', 'capped by the type');
    port.write(`${typeDir(IGD, V1)}/create`, U1);
    assert.equal(port.kind(`${devDir(U1)}/mdev`), null, 'no namespace without aggregation');
  });

  it('raises and lowers a device through mdev/aggregation/value', () => {
    const { port } = fresh();
    port.write(`${typeDir(IGD, V8)}/create`, U1);
    assert.equal(port.read(agg(U1, 'value')), '1\n');
    assert.equal(port.read(agg(U1, 'max')), '8\n');
    assert.equal(
      errnoOf(() => port.write(agg(U1, 'max'), '4')),
      'EACCES',
    );
    port.write(agg(U1, 'value'), '4\n');
    assert.equal(port.read(agg(U1, 'value')), '4\n');
    // 4 x (64, 384, 4) taken: 640 low, 1152 high, 12 fences left.
    assert.deepEqual(availability(port, IGD), { [V1]: 0, [V2]: 1, [V4]: 2, [V8]: 3 });
    port.write(agg(U1, 'value'), '0x2'); // kstrtoul, base 0
    assert.equal(port.read(agg(U1, 'value')), '2\n');
    // Two V5_8s' worth held: 768 low, 1920 high, 20 fences left.
    assert.deepEqual(availability(port, IGD), { [V1]: 0, [V2]: 1, [V4]: 3, [V8]: 5 });
    port.write(agg(U1, 'value'), '2'); // the same value: nothing moves
    assert.deepEqual(availability(port, IGD), { [V1]: 0, [V2]: 1, [V4]: 3, [V8]: 5 });
    // Removing an aggregated device gives everything back.
    port.write(`${devDir(U1)}/remove`, '1');
    assert.deepEqual(availability(port, IGD), { [V1]: 1, [V2]: 2, [V4]: 5, [V8]: 7 });
  });

  it('refuses a raise past the budget with ENOSPC and leaves the device unchanged', () => {
    const { port } = fresh();
    port.write(`${typeDir(IGD, V8)}/create`, U1);
    port.write(`${typeDir(IGD, V4)}/create`, U2);
    // Left: 704 low, 1792 high, 20 fences: four more V5_8's worth, so U1 can reach 5.
    const before = availability(port, IGD);
    assert.equal(before[V8], 4);
    for (const v of ['6', '8']) {
      assert.equal(
        errnoOf(() => port.write(agg(U1, 'value'), v)),
        'ENOSPC',
        v,
      );
      assert.equal(port.read(agg(U1, 'value')), '1\n');
      assert.deepEqual(availability(port, IGD), before);
    }
    port.write(agg(U1, 'value'), '5');
    assert.equal(readNumber(port, `${typeDir(IGD, V8)}/available_instances`), 0);
    assert.equal(port.read(`${typeDir(IGD, V8)}/aggregation`), '0\n');
  });

  it('rejects unparsable, zero and above-max values with EINVAL', () => {
    const { port } = fresh();
    port.write(`${typeDir(IGD, V4)}/create`, U1);
    // ('' is no store at all: sysfs_kf_write returns 0 for an empty write.)
    for (const bad of ['two', '2x', '-1', '1.5', ' 2', '0', '00', '5', '99999999999']) {
      assert.equal(
        errnoOf(() => port.write(agg(U1, 'value'), bad)),
        'EINVAL',
        JSON.stringify(bad),
      );
      assert.equal(port.read(agg(U1, 'value')), '1\n');
    }
    port.write(agg(U1, 'value'), '4'); // the max is allowed
    assert.equal(port.read(agg(U1, 'value')), '4\n');
  });

  it('refuses any aggregation change while the device is open (EBUSY)', () => {
    const lab = fresh();
    const { port } = lab;
    port.write(`${typeDir(IGD, V8)}/create`, U1);
    port.write(agg(U1, 'value'), '2');
    lab.open(U1);
    const during = availability(port, IGD);
    for (const v of ['3', '1', '2']) {
      assert.equal(
        errnoOf(() => port.write(agg(U1, 'value'), v)),
        'EBUSY',
        v,
      );
    }
    // A malformed value is still EINVAL: the parse comes first.
    assert.equal(
      errnoOf(() => port.write(agg(U1, 'value'), 'x')),
      'EINVAL',
    );
    assert.equal(port.read(agg(U1, 'value')), '2\n');
    assert.deepEqual(availability(port, IGD), during);
    assert.equal(
      errnoOf(() => port.write(`${devDir(U1)}/remove`, '1')),
      'EBUSY',
    );
    lab.close(U1);
    port.write(agg(U1, 'value'), '3');
    assert.equal(port.read(agg(U1, 'value')), '3\n');
  });

  it('says ENODEV to a writer that kept the value file across a remove', () => {
    const lab = fresh();
    const { port } = lab;
    port.write(`${typeDir(IGD, V8)}/create`, U1);
    // Hold the attribute as an open file descriptor would.
    const attr = lab.kernel.tree.lookup(agg(U1, 'value'));
    assert.ok(attr !== undefined && attr.kind === 'file');
    port.write(`${devDir(U1)}/remove`, '1');
    const before = availability(port, IGD);
    assert.equal(
      errnoOf(() => attr.ops.store?.('2')),
      'ENODEV',
    );
    assert.deepEqual(availability(port, IGD), before);
  });
});
