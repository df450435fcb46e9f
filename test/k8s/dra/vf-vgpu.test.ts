import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { findDefinition, readVfGpu } from '../../../src/host/vf-vgpu.js';
import { OwnershipRecord } from '../../../src/host/desired/ownership.js';
import { PodError } from '../support/fake-dra-kubelet.js';
import { waitFor } from '../support/wait.js';
import {
  attr,
  claimEvents,
  claimFor,
  DRIVER,
  enableVfs,
  startCluster,
  VF_LAB_PROFILE,
  type Cluster,
} from './support.js';

/**
 * NVIDIA SR-IOV VF vGPUs (an L40S, 48 GB, 32 VFs) claimed through DRA:
 * each size offered on the GPU's framebuffer and VF counters, a Prepare
 * that writes the type to a free VF, an Unprepare that writes 0 — checked
 * in the VFs' sysfs files after every step.
 */

const GPU = '0000:41:00.0';
const PCI = '/sys/bus/pci/devices';
const CLASS = 'vf-vgpu.mdev.mdevkit.io';
const L40S_12Q = 1153;

/** The VFs holding a vGPU now: address -> type id, read from sysfs. */
function heldVfs(c: Cluster): Map<string, number> {
  const gpu = readVfGpu(c.node.lab.port, GPU);
  assert.ok(gpu !== undefined);
  return new Map(gpu.vfs.filter((v) => v.typeId !== 0).map((v) => [v.address, v.typeId]));
}

const uidOf = (claim: { metadata: { uid?: string } }): string => claim.metadata.uid!;

describe('DRA: VF vGPU claims on an L40S', () => {
  let c: Cluster;
  before(async () => {
    c = await startCluster({ profile: VF_LAB_PROFILE });
    await enableVfs(c);
  });
  after(async () => c?.stop());

  it('offers every size as devices on the GPU’s framebuffer and VF counters', async () => {
    assert.deepEqual(c.api.invalid, []);
    const devices = c.allocator
      .pools()
      .flatMap((p) => p.devices)
      .filter((d) => (d.attributes['parent'] as { string: string }).string === GPU);
    const byName = (n: string) =>
      devices.filter((d) => (d.attributes['name'] as { string: string }).string === n);
    // 48 GB: four 12 GB vGPUs, two of 24 GB; 1 GB types are bounded by the 32 VFs.
    assert.equal(byName('L40S-12Q').length, 4);
    assert.equal(byName('L40S-24Q').length, 2);
    assert.equal(byName('L40S-1Q').length, 32);
    const d = byName('L40S-12Q')[0]!;
    assert.equal((d.attributes['kind'] as { string: string }).string, 'vf-vgpu');
    assert.equal((d.attributes['framebufferMiB'] as { int: number }).int, 12 * 1024);
    assert.equal((d.attributes['oneSizeAtATime'] as { bool: boolean }).bool, true);
    const slices = c.api.list('resourceslices', undefined, 'resource.k8s.io');
    const set = slices
      .flatMap(
        (s) =>
          ((s['spec'] as { sharedCounters?: unknown[] }).sharedCounters ?? []) as {
            name: string;
            counters: Record<string, { value: string }>;
          }[],
      )
      .find((s) => s.name === '0000-41-00-0');
    assert.deepEqual(set?.counters, {
      framebuffer: { value: `${48 * 1024}Mi` },
      vfs: { value: '32' },
    });
  });

  it('prepares a claim by writing the type to a free VF, idempotently, and unprepares it', async () => {
    const { pod, claim } = claimFor(c, 'vf', [
      { name: 'gpu', className: CLASS, selectors: [attr('name', 'L40S-12Q')] },
    ]);
    const uid = uidOf(claim);
    const cdi = await c.node.kubelet.preparePod(pod);

    // sysfs: one VF holds an L40S-12Q; the definition is the claim's.
    const held = heldVfs(c);
    assert.equal(held.size, 1);
    const [vf, type] = [...held][0]!;
    assert.equal(type, L40S_12Q);
    const def = findDefinition(c.node.env, uid);
    assert.equal(def?.owner, `dra:${DRIVER}:${uid}`);
    assert.equal(def?.gpu, GPU);
    const record = OwnershipRecord.open(c.node.env);
    try {
      assert.equal(record.get(uid)?.state, 'owned');
      assert.equal(record.get(uid)?.owner, `dra:${DRIVER}:${uid}`);
    } finally {
      record.close();
    }

    // CDI: the VF's /dev/vfio group; metadata: its PCI address.
    const ids = cdi.get('vf')!['gpu']!;
    const link = c.node.lab.port.readlink(`${PCI}/${vf}/iommu_group`);
    const group = link.slice(link.lastIndexOf('/') + 1);
    const spec = JSON.parse(
      fs.readFileSync(`${c.node.cdiDir}/${DRIVER}-vfio_${uid}.json`, 'utf8'),
    ) as { devices: { name: string; containerEdits: { deviceNodes: { path: string }[] } }[] };
    assert.deepEqual(
      spec.devices[0]!.containerEdits.deviceNodes.map((n) => n.path),
      ['/dev/vfio/vfio', `/dev/vfio/${group}`],
    );
    assert.ok(ids.includes(`${DRIVER}/vfio=${spec.devices[0]!.name}`), ids.join());
    const meta = JSON.parse(
      fs.readFileSync(`${c.node.cdiDir}/${DRIVER}-metadata_${uid}.json`, 'utf8'),
    ) as { devices: { containerEdits: { mounts: { hostPath: string }[] } }[] };
    const doc = JSON.parse(
      fs.readFileSync(meta.devices[0]!.containerEdits.mounts[0]!.hostPath, 'utf8'),
    ) as { requests: { devices: { attributes: Record<string, { string?: string }> }[] }[] };
    const attrs = doc.requests[0]!.devices[0]!.attributes;
    assert.equal(attrs['resource.kubernetes.io/pciBusID']?.string, vf);
    assert.equal(attrs['vgpuUUID']?.string, uid);
    assert.equal(attrs['name']?.string, 'L40S-12Q');

    // Again, and after a driver restart (kubelet calls a prepared claim's
    // driver no more, so ask the driver's DeviceState as kubelet would):
    // the same answer, still one VF.
    const key = { namespace: 'default', name: 'vf', uid };
    const again = async (): Promise<readonly string[]> =>
      (await c.node.driver.state.prepare(key)).devices[0]!.cdiDeviceIds;
    assert.deepEqual(await again(), ids);
    await c.node.restartDriver();
    assert.deepEqual(await again(), ids);
    assert.deepEqual(heldVfs(c), held);

    // The VF lost its vGPU (a crash between the definition and the type
    // write looks the same): Prepare makes it again on the defined VF.
    c.node.lab.port.write(`${PCI}/${vf}/nvidia/current_vgpu_type`, '0\n');
    assert.equal(heldVfs(c).size, 0);
    assert.deepEqual(await again(), ids);
    assert.deepEqual(heldVfs(c), held);

    // A VM holds the VF: Unprepare fails with EBUSY and the vGPU stays.
    c.node.lab.open(vf);
    await assert.rejects(c.node.kubelet.unpreparePod(pod), /EBUSY/);
    assert.deepEqual(heldVfs(c), held);
    assert.ok(findDefinition(c.node.env, uid) !== undefined);
    c.node.lab.close(vf);

    await c.node.kubelet.unpreparePod(pod);
    assert.equal(heldVfs(c).size, 0);
    assert.equal(c.node.lab.port.read(`${PCI}/${vf}/nvidia/current_vgpu_type`).trim(), '0');
    assert.equal(findDefinition(c.node.env, uid), undefined);
    assert.equal(fs.existsSync(`${c.node.cdiDir}/${DRIVER}-vfio_${uid}.json`), false);
    c.allocator.deallocate('default', 'vf');
  });

  it('refuses a size that no longer fits (the GPU runs another size) with an Event saying so', async () => {
    await c.node.driver.publisher.idle();
    // Allocated from slices that offer every size on the empty GPU...
    const { pod, claim } = claimFor(c, 'big', [
      { name: 'gpu', className: CLASS, selectors: [attr('name', 'L40S-24Q')] },
    ]);
    // ...then someone makes a 12 GB vGPU on a VF before the Prepare.
    const foreign = `${PCI}/0000:41:00.4/nvidia/current_vgpu_type`;
    c.node.lab.port.write(foreign, `${L40S_12Q}\n`);
    await assert.rejects(c.node.kubelet.preparePod(pod), (err: Error) => {
      assert.ok(err instanceof PodError);
      assert.match(err.message, /L40S-24Q does not fit: this GPU runs 12 GB types/);
      return true;
    });
    assert.deepEqual([...heldVfs(c).values()], [L40S_12Q]);
    assert.equal(findDefinition(c.node.env, uidOf(claim)), undefined);
    assert.ok(c.log.some((l) => l.startsWith('prepare default/big [no-capacity]: ')));
    await waitFor('an Event on the claim', () => claimEvents(c.api, 'big').length > 0);
    const [ev] = claimEvents(c.api, 'big');
    assert.equal(ev!['reason'], 'PrepareFailed');
    assert.equal(ev!['action'], 'no-capacity');
    assert.match(ev!['message'] as string, /node node-a: .*this GPU runs 12 GB types/);
    // The foreign vGPU survives; the slices now offer 12 GB types only there.
    assert.equal(c.node.lab.port.read(foreign).trim(), String(L40S_12Q));
    // A type write makes no uevent; `mdevkit k8s dra` finds it by its sysfs poll.
    c.node.driver.scheduleRefresh();
    await waitFor('the offer narrowed to 12 GB', () => {
      const sizes = new Set(
        c.allocator
          .pools()
          .flatMap((p) => p.devices)
          .filter((d) => (d.attributes['parent'] as { string: string }).string === GPU)
          .map((d) => (d.attributes['framebufferMiB'] as { int: number }).int),
      );
      return sizes.size === 1 && sizes.has(12 * 1024);
    });
  });
});
