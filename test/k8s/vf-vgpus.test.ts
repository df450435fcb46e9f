import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { after, before, describe, it } from 'node:test';
import { environmentAt, type Environment } from '../../src/host/environment.js';
import { createVgpu, removeVgpu } from '../../src/host/vf-vgpu.js';
import { DEFAULT_PLUGIN_CONFIG } from '../../src/k8s/device-plugin/config.js';
import { pollHostChanges } from '../../src/k8s/device-plugin/host-changes.js';
import { VfDeviceSource, vfHostChanges } from '../../src/k8s/device-plugin/vf-devices.js';
import { NodeAgent } from '../../src/k8s/node-agent.js';
import { Lab } from '../../src/sim/lab.js';
import { parseProfile } from '../../src/sim/profiles/profile.js';
import { tmpDir } from '../support/tmp.js';
import { FakeKubelet } from './support/fake-kubelet.js';
import { waitFor } from './support/wait.js';

/**
 * NVIDIA's VF vGPUs through the device plugin, as `mdevkit k8s
 * device-plugin` wires it: the VF device source beside the mdevs, a fake
 * kubelet, and the lab's sysfs only. A VF with a vGPU is a device
 * (ID: its PCI address, resource mdevkit.io/nvidia-<type id>); a pod gets
 * its /dev/vfio group and PCI_RESOURCE_<NAME>, where KubeVirt looks.
 */

const GPU = '0000:41:00.0';
const RESOURCE = 'mdevkit.io/nvidia-1153';

describe('device plugin: NVIDIA VF vGPUs', () => {
  const dir = tmpDir('mdevkit-k8s-vf-');
  let lab: Lab;
  let env: Environment;
  let kubelet: FakeKubelet;
  let agent: NodeAgent;
  const made: string[] = [];

  before(async () => {
    lab = new Lab(
      parseProfile({ name: 'vf', devices: [{ driver: 'nvidia-l40s', options: { vfs: 8 } }] }, 'p'),
    );
    lab.sriovManage(true, 'ALL');
    fs.mkdirSync(nodePath.join(dir, 'etc', 'mdevctl.d'), { recursive: true });
    env = environmentAt(dir, lab.port);
    for (let i = 0; i < 3; i++) {
      made.push(createVgpu(env, { gpu: GPU, type: 'L40S-12Q', owner: 'user:test' }).vfAddress);
    }
    const pluginDir = nodePath.join(dir, 'dp');
    kubelet = await FakeKubelet.start({ dir: pluginDir, name: 'vf-node' });
    agent = new NodeAgent({
      env,
      pluginDir,
      config: DEFAULT_PLUGIN_CONFIG,
      sources: [new VfDeviceSource(env.port)],
      changes: [pollHostChanges(env.port, 100), vfHostChanges(env.port, 100)],
    });
    await agent.start();
    await waitFor('the VF resource', () => kubelet.isConnected(RESOURCE));
  });
  after(async () => {
    await agent?.stop();
    kubelet?.stop();
  });

  it('advertises each VF holding a vGPU by its PCI address, healthy', async () => {
    await waitFor('three devices', () => kubelet.capacity(RESOURCE).capacity === 3);
    assert.deepEqual(
      kubelet
        .devices(RESOURCE)
        .map((d) => d.ID)
        .sort(),
      [...made].sort(),
    );
    assert.deepEqual(kubelet.healthy(RESOURCE).sort(), [...made].sort());
  });

  it('gives a pod the VF in PCI_RESOURCE_<NAME> and its /dev/vfio group', async () => {
    const [c] = await kubelet.admit({
      uid: 'vm-pod',
      containers: [{ name: 'compute', limits: { [RESOURCE]: 1 } }],
    });
    assert.ok(c !== undefined);
    const vf = c.devices[0]!;
    assert.deepEqual(c.response.envs, { 'PCI_RESOURCE_MDEVKIT_IO_NVIDIA-1153': vf });
    const group = nodePath.basename(lab.port.readlink(`/sys/bus/pci/devices/${vf}/iommu_group`));
    assert.deepEqual(
      c.response.devices.map((d) => d.host_path),
      ['/dev/vfio/vfio', `/dev/vfio/${group}`],
    );
    kubelet.removePod('vm-pod');
  });

  it('follows vGPUs made and destroyed on the host', async () => {
    removeVgpu(env, made[0]!, { force: true });
    await waitFor('the VF gone', () => kubelet.capacity(RESOURCE).capacity === 2);
    const again = createVgpu(env, { gpu: GPU, type: 1153, owner: 'user:test' });
    await waitFor('the VF back', () => kubelet.healthy(RESOURCE).includes(again.vfAddress));
  });
});
