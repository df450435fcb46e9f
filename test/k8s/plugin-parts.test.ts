import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { environmentAt } from '../../src/host/environment.js';
import {
  call,
  registrationService,
  type RegistrationClient,
} from '../../src/k8s/device-plugin/api.js';
import { unixTarget } from '../../src/k8s/grpc/unix-socket.js';
import { createDevice } from '../../src/host/sysfs-model.js';
import { containerResponse, preferredAllocation } from '../../src/k8s/device-plugin/allocation.js';
import { DEFAULT_PLUGIN_CONFIG } from '../../src/k8s/device-plugin/config.js';
import type { PluginDevice } from '../../src/k8s/device-plugin/devices.js';
import { ueventChanges } from '../../src/k8s/device-plugin/host-changes.js';
import { register } from '../../src/k8s/device-plugin/registration.js';
import { NodeAgent } from '../../src/k8s/node-agent.js';
import { Lab } from '../../src/sim/lab.js';
import { tmpDir } from '../support/tmp.js';
import { FakeKubelet } from './support/fake-kubelet.js';
import { profileOf } from './support/sim-node.js';
import { waitFor } from './support/wait.js';

function dev(
  id: string,
  parent: string,
  numa: number | undefined,
  kind: 'mdev' | 'vf' = 'mdev',
): PluginDevice {
  return {
    id,
    kind,
    parent,
    type: 't',
    typeName: undefined,
    iommuGroup: String(id.length + parent.length),
    numaNode: numa,
    problem: undefined,
  };
}

describe('GetPreferredAllocation', () => {
  // Two NUMA nodes; node 0 has GPUs a (3 free) and b (1 free), node 1 has c (2 free).
  const devices = new Map(
    [
      dev('a1', 'a', 0),
      dev('a2', 'a', 0),
      dev('a3', 'a', 0),
      dev('b1', 'b', 0),
      dev('c1', 'c', 1),
      dev('c2', 'c', 1),
    ].map((d) => [d.id, d]),
  );
  const all = [...devices.keys()];

  it('one parent that fits best, else one NUMA node, else the fullest parents', () => {
    assert.deepEqual(preferredAllocation(devices, all, [], 2).sort(), ['c1', 'c2']);
    assert.deepEqual(preferredAllocation(devices, all, [], 3).sort(), ['a1', 'a2', 'a3']);
    assert.deepEqual(preferredAllocation(devices, all, [], 4).sort(), ['a1', 'a2', 'a3', 'b1']);
    assert.equal(preferredAllocation(devices, all, [], 6).length, 6);
  });

  it('keeps the must-include devices and their parent or NUMA node', () => {
    assert.deepEqual(preferredAllocation(devices, all, ['b1'], 2).sort(), ['a1', 'b1']);
    assert.deepEqual(preferredAllocation(devices, all, ['c1'], 2).sort(), ['c1', 'c2']);
    assert.deepEqual(preferredAllocation(devices, all, ['a1'], 2).sort(), ['a1', 'a2']);
  });

  it('ignores IDs it never advertised and takes only available ones', () => {
    assert.deepEqual(preferredAllocation(devices, ['x', 'a1', 'c1'], ['y'], 1).length, 1);
    assert.ok(
      preferredAllocation(devices, ['a1', 'c1'], [], 2).every((id) => id === 'a1' || id === 'c1'),
    );
  });
});

describe('Allocate responses', () => {
  it('mdevs in MDEV_PCI_RESOURCE_<NAME>, VF vGPUs in PCI_RESOURCE_<NAME>, each group once', () => {
    const vf = { ...dev('0000:41:00.4', 'pf', 0, 'vf'), iommuGroup: '77' };
    const m1 = { ...dev('11111111-1111-4111-8111-111111111111', 'p', 0), iommuGroup: '12' };
    const m2 = { ...dev('22222222-2222-4222-8222-222222222222', 'p', 0), iommuGroup: '12' };
    const r = containerResponse('nvidia.com/L40S-12Q', [vf, m1, m2]);
    assert.deepEqual(r.envs, {
      'MDEV_PCI_RESOURCE_NVIDIA_COM_L40S-12Q': `${m1.id},${m2.id}`,
      'PCI_RESOURCE_NVIDIA_COM_L40S-12Q': '0000:41:00.4',
    });
    assert.deepEqual(
      r.devices.map((d) => d.host_path),
      ['/dev/vfio/vfio', '/dev/vfio/77', '/dev/vfio/12'],
    );
  });

  it('refuses a group that is not digits: nothing becomes a path unchecked', () => {
    assert.throws(() => containerResponse('a.b/c', [{ ...dev('x', 'p', 0), iommuGroup: '../1' }]));
  });
});

describe('the fake kubelet refuses what kubelet refuses', () => {
  it('an unsupported version, a name that is not an extended resource, an endpoint nobody serves', async () => {
    const dir = tmpDir();
    const kubelet = await FakeKubelet.start({ dir, dialTimeoutMs: 300 });
    try {
      const base = {
        kubeletSocket: kubelet.socketPath,
        endpoint: 'x.sock',
        options: { pre_start_required: false, get_preferred_allocation_available: false },
        timeoutMs: 5000,
      };
      await assert.rejects(register({ ...base, resourceName: 'example.com/x' }), /failed to dial/);
      await assert.rejects(
        register({ ...base, resourceName: 'gpu' }),
        /ResourceName "gpu" is invalid/,
      );
      await assert.rejects(
        register({ ...base, resourceName: 'kubernetes.io/gpu' }),
        /ResourceName "kubernetes.io\/gpu" is invalid/,
      );
      const Client = registrationService();
      const client = new Client(
        unixTarget(kubelet.socketPath),
        grpc.credentials.createInsecure(),
      ) as unknown as RegistrationClient;
      await assert.rejects(
        call(client.Register, client, {
          version: 'v1alpha',
          endpoint: 'x.sock',
          resource_name: 'example.com/x',
          options: null,
        }),
        /version "v1alpha" is not supported/,
      );
      client.close();
      assert.deepEqual(
        kubelet.registrations.map((r) => r.error !== undefined),
        [true, true, true, true],
      );
      assert.deepEqual(kubelet.resources(), []);
    } finally {
      kubelet.stop();
    }
  });
});

describe('device health from /dev/vfio', () => {
  it('a device whose group node vanishes turns Unhealthy in kubelet, and Healthy when it is back', async () => {
    const lab = new Lab(profileOf('m60', [{ driver: 'nvidia-m60' }]));
    const dir = tmpDir();
    fs.mkdirSync(nodePath.join(dir, 'etc', 'mdevctl.d'), { recursive: true });
    const uuid = 'abcd0000-0000-4000-8000-000000000001';
    createDevice(lab.port, '0000:85:00.0', 'nvidia-16', uuid);
    const group = nodePath.basename(lab.port.readlink(`/sys/bus/mdev/devices/${uuid}/iommu_group`));
    const vfio = nodePath.join(dir, 'dev', 'vfio');
    fs.mkdirSync(vfio, { recursive: true });
    fs.writeFileSync(nodePath.join(vfio, 'vfio'), '');
    fs.writeFileSync(nodePath.join(vfio, group), '');
    const kubelet = await FakeKubelet.start({ dir: nodePath.join(dir, 'dp') });
    const agent = new NodeAgent({
      env: environmentAt(dir, lab.port),
      pluginDir: nodePath.join(dir, 'dp'),
      config: DEFAULT_PLUGIN_CONFIG,
      vfioDir: vfio,
      changes: [ueventChanges((l) => lab.kernel.onUevent(l))],
    });
    try {
      await agent.start();
      const r = 'mdevkit.io/nvidia-16';
      await waitFor('healthy', () => kubelet.healthy(r).length === 1);
      fs.rmSync(nodePath.join(vfio, group));
      await waitFor(
        'unhealthy',
        () => kubelet.capacity(r).allocatable === 0 && kubelet.capacity(r).capacity === 1,
      );
      fs.writeFileSync(nodePath.join(vfio, group), '');
      await waitFor('healthy again', () => kubelet.healthy(r).length === 1);
    } finally {
      await agent.stop();
      kubelet.stop();
    }
  });
});
