import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { removeDevice } from '../../src/host/sysfs-model.js';
import {
  call,
  devicePluginService,
  type DevicePluginClient,
} from '../../src/k8s/device-plugin/api.js';
import { parsePluginConfig } from '../../src/k8s/device-plugin/config.js';
import { endpointName } from '../../src/k8s/device-plugin/resource-name.js';
import { unixTarget } from '../../src/k8s/grpc/unix-socket.js';
import { tmpDir } from '../support/tmp.js';
import { AdmissionError } from './support/fake-kubelet.js';
import { SimNode, profileOf } from './support/sim-node.js';
import { waitFor } from './support/wait.js';

const GPU_A = '0000:85:00.0';
const GPU_B = '0000:86:00.0';
const M60 = profileOf('m60', [{ driver: 'nvidia-m60' }, { driver: 'mtty' }]);

/** The IOMMU group of an mdev, read from the lab's sysfs. */
function groupOf(node: SimNode, uuid: string): string {
  return nodePath.basename(node.lab.port.readlink(`/sys/bus/mdev/devices/${uuid}/iommu_group`));
}

function dial(node: SimNode, resource: string): DevicePluginClient {
  const Client = devicePluginService();
  return new Client(
    unixTarget(nodePath.join(node.pluginDir, endpointName(resource))),
    grpc.credentials.createInsecure(),
  ) as unknown as DevicePluginClient;
}

describe('device plugin against a fake kubelet (default resource names)', () => {
  let node: SimNode;
  before(async () => {
    node = new SimNode({
      name: 'n0',
      dir: tmpDir(),
      profile: M60,
      devices: [
        { parent: GPU_A, type: 'nvidia-16', count: 3 },
        { parent: GPU_B, type: 'nvidia-16', count: 4 },
        { parent: 'mtty', type: 'mtty-2', count: 1 },
      ],
    });
    await node.start();
  });
  after(() => node.stop());

  it('serves one socket per resource, mode 0600, and registers each with kubelet', () => {
    assert.deepEqual(node.kubelet.resources(), ['mdevkit.io/mtty-2', 'mdevkit.io/nvidia-16']);
    for (const r of node.kubelet.resources()) {
      const st = fs.statSync(nodePath.join(node.pluginDir, endpointName(r)));
      assert.ok(st.isSocket());
      assert.equal(st.mode & 0o777, 0o600, `${r}'s socket`);
    }
    const accepted = node.kubelet.registrations.filter((x) => x.error === undefined);
    assert.deepEqual(
      accepted.map((x) => x.request.version),
      ['v1beta1', 'v1beta1'],
    );
    assert.deepEqual(node.kubelet.violations, []);
    assert.deepEqual(node.kubelet.pluginOptions('mdevkit.io/nvidia-16'), {
      pre_start_required: false,
      get_preferred_allocation_available: true,
    });
  });

  it('advertises every mdev of the type by UUID, healthy', async () => {
    await waitFor(
      'the device lists',
      () => node.kubelet.capacity('mdevkit.io/nvidia-16').capacity === 7,
    );
    const expected = node.lab.port.list('/sys/bus/mdev/devices').sort();
    const gpuDevices = node.kubelet.devices('mdevkit.io/nvidia-16').map((d) => d.ID);
    const mtty = node.kubelet.devices('mdevkit.io/mtty-2').map((d) => d.ID);
    assert.deepEqual([...gpuDevices, ...mtty].sort(), expected);
    assert.deepEqual(node.kubelet.capacity('mdevkit.io/nvidia-16'), {
      capacity: 7,
      allocatable: 7,
    });
  });

  it('tells kubelet when a device appears and when one goes', async () => {
    const uuid = node.createMdev(GPU_A, 'nvidia-16');
    await waitFor('the new device', () =>
      node.kubelet.healthy('mdevkit.io/nvidia-16').includes(uuid),
    );
    removeDevice(node.lab.port, uuid);
    await waitFor(
      'the device gone',
      () => !node.kubelet.devices('mdevkit.io/nvidia-16').some((d) => d.ID === uuid),
    );
    assert.equal(node.kubelet.capacity('mdevkit.io/nvidia-16').capacity, 7);
  });

  it('Allocate gives /dev/vfio nodes and the UUIDs in MDEV_PCI_RESOURCE_<NAME>', async () => {
    const [c] = await node.kubelet.admit({
      uid: 'pod-1',
      containers: [{ name: 'compute', limits: { 'mdevkit.io/nvidia-16': 2 } }],
    });
    assert.ok(c !== undefined);
    assert.equal(c.devices.length, 2);
    assert.deepEqual(Object.keys(c.response.envs), ['MDEV_PCI_RESOURCE_MDEVKIT_IO_NVIDIA-16']);
    assert.deepEqual(c.response.envs['MDEV_PCI_RESOURCE_MDEVKIT_IO_NVIDIA-16']!.split(','), [
      ...c.devices,
    ]);
    const nodes = c.devices.map((u) => `/dev/vfio/${groupOf(node, u)}`);
    assert.deepEqual(
      c.response.devices.map((d) => [d.host_path, d.container_path, d.permissions]),
      [['/dev/vfio/vfio', '/dev/vfio/vfio', 'mrw'], ...nodes.map((n) => [n, n, 'mrw'])],
    );
    node.kubelet.removePod('pod-1');
  });

  it('prefers devices on one GPU: the one whose free devices fit best', async () => {
    const [c] = await node.kubelet.admit({
      uid: 'pod-2',
      containers: [{ name: 'c', limits: { 'mdevkit.io/nvidia-16': 3 } }],
    });
    const parents = new Set(
      c!.devices.map((u) => node.manager.devices.find((d) => d.id === u)!.parent),
    );
    assert.deepEqual([...parents], [GPU_A], 'three on GPU A, which has exactly three');
    const [d] = await node.kubelet.admit({
      uid: 'pod-3',
      containers: [{ name: 'c', limits: { 'mdevkit.io/nvidia-16': 4 } }],
    });
    const parents2 = new Set(
      d!.devices.map((u) => node.manager.devices.find((x) => x.id === u)!.parent),
    );
    assert.deepEqual([...parents2], [GPU_B]);
    await assert.rejects(
      node.kubelet.admit({
        uid: 'pod-4',
        containers: [{ name: 'c', limits: { 'mdevkit.io/nvidia-16': 1 } }],
      }),
      AdmissionError,
    );
    node.kubelet.removePod('pod-2');
    node.kubelet.removePod('pod-3');
  });

  it('refuses an Allocate for a device it never advertised, before touching any path', async () => {
    const client = dial(node, 'mdevkit.io/nvidia-16');
    try {
      for (const id of ['../../etc/passwd', '00000000-0000-4000-8000-000000000000', '']) {
        await assert.rejects(
          call(client.Allocate, client, { container_requests: [{ devices_ids: [id] }] }),
          (err: grpc.ServiceError) => err.code === grpc.status.INVALID_ARGUMENT,
        );
      }
    } finally {
      client.close();
    }
  });

  it('re-registers after kubelet restarts and wipes the socket directory', async () => {
    const before = node.kubelet.registrations.length;
    await node.kubelet.restart();
    await waitFor(
      're-registration',
      () =>
        node.kubelet.resources().every((r) => node.kubelet.isConnected(r)) &&
        node.kubelet.registrations.length >= before + 2,
    );
    assert.deepEqual(node.kubelet.capacity('mdevkit.io/nvidia-16'), {
      capacity: 7,
      allocatable: 7,
    });
    for (const r of node.kubelet.resources()) {
      const st = fs.statSync(nodePath.join(node.pluginDir, endpointName(r)));
      assert.equal(st.mode & 0o777, 0o600);
    }
    assert.deepEqual(node.kubelet.violations, []);
  });
});

describe('device plugin with a configuration file', () => {
  it('advertises the configured names (by type name, as KubeVirt selects) and nothing else', async () => {
    const dir = tmpDir();
    const file = nodePath.join(dir, 'device-plugin.yaml');
    const config = parsePluginConfig(
      [
        'version: 1',
        'resources:',
        '  - name: nvidia.com/GRID_M60_2Q',
        '    mdevNames: ["GRID M60-2Q"]',
        '  - name: nvidia.com/GRID_M60_8Q',
        '    mdevTypes: [nvidia-18]',
      ].join('\n'),
      file,
    );
    const node = new SimNode({
      name: 'n1',
      dir,
      profile: M60,
      config,
      devices: [
        { parent: GPU_A, type: 'nvidia-16', count: 2 },
        { parent: 'mtty', type: 'mtty-1', count: 1 },
      ],
    });
    await node.start();
    try {
      assert.deepEqual(node.kubelet.resources(), [
        'nvidia.com/GRID_M60_2Q',
        'nvidia.com/GRID_M60_8Q',
      ]);
      await waitFor(
        'devices',
        () => node.kubelet.capacity('nvidia.com/GRID_M60_2Q').capacity === 2,
      );
      assert.deepEqual(node.kubelet.capacity('nvidia.com/GRID_M60_8Q'), {
        capacity: 0,
        allocatable: 0,
      });
      const [c] = await node.kubelet.admit({
        uid: 'p',
        containers: [{ name: 'c', limits: { 'nvidia.com/GRID_M60_2Q': 1 } }],
      });
      assert.ok(c!.response.envs['MDEV_PCI_RESOURCE_NVIDIA_COM_GRID_M60_2Q'] !== undefined);
    } finally {
      await node.stop();
    }
  });

  it('rejects names kubelet would refuse, saying why', () => {
    for (const [name, why] of [
      ['GRID_M60', /no domain/],
      ['kubernetes.io/gpu', /reserved/],
      ['Nvidia.com/x', /DNS subdomain/],
      ['nvidia.com/-x', /not 1-63/],
    ] as const) {
      assert.throws(
        () =>
          parsePluginConfig(
            `version: 1\nresources:\n  - name: ${name}\n    mdevTypes: [a]\n`,
            'c.yaml',
          ),
        (err: Error & { code?: string }) =>
          err.code === 'invalid-plugin-config' && why.test(err.message),
        name,
      );
    }
  });
});
