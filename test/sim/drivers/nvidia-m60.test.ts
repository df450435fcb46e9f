import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { labWith, uuidN, U1, U2, U3 } from '../../support/labs.js';
import { availability, devDir, errnoOf, readNumber, typeDir } from './_support.js';

const GPU0 = '0000:85:00.0';
const GPU1 = '0000:86:00.0';
const fresh = () => labWith([{ driver: 'nvidia-m60' }]);

/** Seed 002's table: id, name, max instances, heads, frl, framebuffer, resolution. */
const TABLE: [string, string, number, number, number, string, string][] = [
  ['11', 'GRID M60-0B', 16, 2, 45, '512M', '2560x1600'],
  ['12', 'GRID M60-0Q', 16, 2, 60, '512M', '2560x1600'],
  ['13', 'GRID M60-1B', 8, 2, 45, '1024M', '2560x1600'],
  ['14', 'GRID M60-1Q', 8, 2, 60, '1024M', '2560x1600'],
  ['15', 'GRID M60-2B', 4, 2, 45, '2048M', '2560x1600'],
  ['16', 'GRID M60-2Q', 4, 4, 60, '2048M', '2560x1600'],
  ['17', 'GRID M60-4Q', 2, 4, 60, '4096M', '3840x2160'],
  ['18', 'GRID M60-8Q', 1, 4, 60, '8192M', '3840x2160'],
];

describe('nvidia-m60', () => {
  it('is one board of two PCI GPUs, each an mdev parent', () => {
    const { port } = fresh();
    assert.deepEqual(port.list('/sys/class/mdev_bus').sort(), [GPU0, GPU1]);
    for (const [gpu, bus] of [
      [GPU0, '85'],
      [GPU1, '86'],
    ] as const) {
      const dev = `/sys/bus/pci/devices/${gpu}`;
      assert.equal(port.realpath(dev), `/sys/devices/pci0000:${bus}/${gpu}`);
      assert.equal(port.read(`${dev}/vendor`), '0x10de\n');
      assert.equal(port.read(`${dev}/device`), '0x13f2\n');
      assert.equal(port.read(`${dev}/class`), '0x030000\n');
      assert.equal(port.realpath(`${dev}/driver`), '/sys/bus/pci/drivers/nvidia');
      assert.equal(port.realpath(`${dev}/subsystem`), '/sys/bus/pci');
      const group = port.realpath(`${dev}/iommu_group`);
      assert.deepEqual(port.list(`${group}/devices`), [gpu]);
    }
  });

  it("offers seed 002's GRID profiles with NVIDIA-style descriptions", () => {
    const { port } = fresh();
    assert.deepEqual(
      port.list(`/sys/class/mdev_bus/${GPU0}/mdev_supported_types`).sort(),
      TABLE.map(([id]) => `nvidia-${id}`),
    );
    for (const [id, name, max, heads, frl, fb, res] of TABLE) {
      const dir = typeDir(GPU0, `nvidia-${id}`);
      assert.equal(port.read(`${dir}/name`), `${name}\n`);
      assert.equal(port.read(`${dir}/device_api`), 'vfio-pci\n');
      assert.equal(readNumber(port, `${dir}/available_instances`), max);
      assert.equal(
        port.read(`${dir}/description`),
        `num_heads=${heads}, frl_config=${frl}, framebuffer=${fb}, max_resolution=${res}, max_instance=${max}\n`,
      );
      assert.equal(port.kind(`${dir}/aggregation`), null, 'GRID profiles do not aggregate');
    }
  });

  it('runs one type per physical GPU; the other GPU is independent', () => {
    const { port } = fresh();
    port.write(`${typeDir(GPU0, 'nvidia-14')}/create`, U1);
    const gpu0 = availability(port, GPU0);
    assert.equal(gpu0['nvidia-14'], 7);
    for (const [t, n] of Object.entries(gpu0)) if (t !== 'nvidia-14') assert.equal(n, 0, t);
    // Another type on the same GPU: refused, nothing created.
    assert.equal(
      errnoOf(() => port.write(`${typeDir(GPU0, 'nvidia-11')}/create`, U2)),
      'EBUSY',
    );
    assert.equal(port.kind(devDir(U2)), null);
    // The second GPU of the board still offers everything, and takes another type.
    assert.equal(availability(port, GPU1)['nvidia-11'], 16);
    port.write(`${typeDir(GPU1, 'nvidia-11')}/create`, U2);
    // More of the running type is fine.
    port.write(`${typeDir(GPU0, 'nvidia-14')}/create`, U3);
    assert.equal(readNumber(port, `${typeDir(GPU0, 'nvidia-14')}/available_instances`), 6);
    // When the last vGPU goes, every type is available again.
    port.write(`${devDir(U1)}/remove`, '1');
    assert.equal(availability(port, GPU0)['nvidia-11'], 0, 'one vGPU still runs');
    port.write(`${devDir(U3)}/remove`, '1');
    assert.deepEqual(
      availability(port, GPU0),
      Object.fromEntries(TABLE.map(([id, , max]) => [`nvidia-${id}`, max])),
    );
    port.write(`${typeDir(GPU0, 'nvidia-18')}/create`, U1);
    assert.equal(port.read(`${devDir(U1)}/mdev_type/name`), 'GRID M60-8Q\n');
  });

  it('refuses create with ENOSPC when the framebuffer is used up', () => {
    const { port } = fresh();
    const create = `${typeDir(GPU0, 'nvidia-17')}/create`;
    port.write(create, uuidN(1));
    port.write(create, uuidN(2));
    assert.equal(readNumber(port, `${typeDir(GPU0, 'nvidia-17')}/available_instances`), 0);
    assert.equal(
      errnoOf(() => port.write(create, uuidN(3))),
      'ENOSPC',
    );
  });

  it('has a per-device nvidia/vgpu_params, writable until the device is opened', () => {
    const lab = fresh();
    const { port } = lab;
    port.write(`${typeDir(GPU0, 'nvidia-12')}/create`, U1);
    port.write(`${typeDir(GPU0, 'nvidia-12')}/create`, U2);
    const params = `${devDir(U1)}/nvidia/vgpu_params`;
    assert.equal(port.read(params), '\n', 'empty by default');
    port.write(params, 'frame_rate_limiter=0\n');
    assert.equal(port.read(params), 'frame_rate_limiter=0\n');
    assert.equal(port.read(`${devDir(U2)}/nvidia/vgpu_params`), '\n', 'per device, not per type');
    port.write(params, 'frame_rate_limiter=0,disable_vnc=1');
    assert.equal(port.read(params), 'frame_rate_limiter=0,disable_vnc=1\n');
    for (const bad of ['frame_rate_limiter', '=0', 'a=1,,b=2', 'a=1 b=2', 'x=\u00e9']) {
      assert.equal(
        errnoOf(() => port.write(params, bad)),
        'EINVAL',
        JSON.stringify(bad),
      );
    }
    assert.equal(
      port.read(params),
      'frame_rate_limiter=0,disable_vnc=1\n',
      'a bad write changes nothing',
    );

    lab.open(U1);
    assert.equal(
      errnoOf(() => port.write(params, 'frame_rate_limiter=1')),
      'EBUSY',
    );
    assert.equal(port.read(params), 'frame_rate_limiter=0,disable_vnc=1\n', 'still readable');
    // An open device cannot be removed either (MdevCore.remove: EBUSY).
    assert.equal(
      errnoOf(() => port.write(`${devDir(U1)}/remove`, '1')),
      'EBUSY',
    );
    lab.close(U1);
    port.write(params, '\n');
    assert.equal(port.read(params), '\n', 'a newline clears');
    port.write(`${devDir(U1)}/remove`, '1');
    assert.equal(port.kind(devDir(U1)), null);
  });

  it('takes the GPU addresses from the profile', () => {
    const { port } = labWith([{ driver: 'nvidia-m60', options: { gpus: ['0000:3b:00.0'] } }]);
    assert.deepEqual(port.list('/sys/class/mdev_bus'), ['0000:3b:00.0']);
    assert.throws(
      () => labWith([{ driver: 'nvidia-m60', options: { gpus: ['85:00.0'] } }]),
      /devices\[0\]\.options\.gpus\[0\]: a PCI address/,
    );
  });
});
