import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { readActiveDevice } from '../../../src/host/sysfs-model.js';
import { attr, claimFor, startCluster, type Cluster } from './support.js';

describe('DRA: a vGPU claim end to end', () => {
  let c: Cluster;
  before(async () => {
    c = await startCluster();
  });
  after(async () => c?.stop());

  it('publishes valid slices and prepares an mdev named after the claim', async () => {
    assert.deepEqual(c.api.invalid, []);
    const slices = c.api.list('resourceslices', undefined, 'resource.k8s.io');
    assert.ok(slices.length > 1, 'counter sets and devices are in slices of their own');
    const { pod, claim } = claimFor(c, 'vgpu', [
      { name: 'gpu', selectors: [attr('type', 'nvidia-12')] },
    ]);
    const cdi = await c.node.kubelet.preparePod(pod);
    const uid = claim.metadata.uid!;
    const dev = readActiveDevice(c.node.lab.port, uid);
    assert.equal(dev?.type, 'nvidia-12');
    const ids = cdi.get('vgpu')!['gpu']!;
    assert.ok(
      ids.some((i) => i.startsWith('mdev.mdevkit.io/vfio=')),
      ids.join(),
    );
    const spec = JSON.parse(
      fs.readFileSync(`${c.node.cdiDir}/mdev.mdevkit.io-vfio_${uid}.json`, 'utf8'),
    );
    assert.equal(spec.kind, 'mdev.mdevkit.io/vfio');
    await c.node.kubelet.unpreparePod(pod);
    assert.equal(readActiveDevice(c.node.lab.port, uid), undefined);
  });
});
