import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import { readMatrixConfig } from '../../../src/host/ap/model.js';
import { OwnershipRecord } from '../../../src/host/desired/ownership.js';
import { readActiveDevice } from '../../../src/host/sysfs-model.js';
import type { KubeObject } from '../support/fake-apiserver.js';
import { AllocationError } from '../support/dra-allocator.js';
import { PodError } from '../support/fake-dra-kubelet.js';
import { waitFor } from '../support/wait.js';
import { attr, claimEvents, claimFor, DRIVER, startCluster, type Cluster } from './support.js';

/**
 * Claims for every kind of device the driver offers, end to end against
 * the stand-ins: the driver publishes its slices to the fake API server,
 * the test allocator allocates from them as the scheduler would, and the
 * fake kubelet prepares and unprepares the pods' claims over the driver's
 * unix socket. What is asserted is what the host (the lab's sysfs), the
 * CDI directory, the ownership record and the API server show.
 */

let c: Cluster | undefined;
afterEach(async () => {
  await c?.stop();
  c = undefined;
});

const uidOf = (claim: KubeObject): string => claim.metadata.uid!;

/** The devices of the driver's slices now (pool at its highest generation). */
function offered(cl: Cluster): { name: string; attributes: Record<string, unknown> }[] {
  return cl.allocator.pools().flatMap((p) => p.devices);
}

function owners(cl: Cluster): { uuid: string; owner: string; state: string }[] {
  return OwnershipRecord.open(cl.node.env)
    .entries()
    .map((e) => ({ uuid: e.uuid, owner: e.owner, state: e.state }));
}

describe('DRA claims, prepared and unprepared end to end', () => {
  it('a vGPU: an mdev named after the claim, its CDI specs and metadata, all gone after Unprepare', async () => {
    c = await startCluster();
    const { pod, claim } = claimFor(c, 'vgpu', [
      { name: 'gpu', selectors: [attr('name', 'GRID M60-2Q')] },
    ]);
    const uid = uidOf(claim);
    const cdi = await c.node.kubelet.preparePod(pod);
    const dev = readActiveDevice(c.node.lab.port, uid);
    assert.equal(dev?.type, 'nvidia-16');
    const group = c.node.lab.port
      .readlink(`/sys/bus/mdev/devices/${uid}/iommu_group`)
      .split('/')
      .pop()!;
    const ids = cdi.get('vgpu')!['gpu']!;
    const device = (
      claim['status'] as { allocation: { devices: { results: { device: string }[] } } }
    ).allocation.devices.results[0]!.device;
    assert.deepEqual(ids, [`${DRIVER}/vfio=${uid}-${device}`, `${DRIVER}/metadata=${uid}_gpu`]);
    const vfio = JSON.parse(
      fs.readFileSync(`${c.node.cdiDir}/${DRIVER}-vfio_${uid}.json`, 'utf8'),
    ) as { kind: string; devices: { name: string; containerEdits: unknown }[] };
    assert.equal(vfio.kind, `${DRIVER}/vfio`);
    assert.deepEqual(vfio.devices, [
      {
        name: `${uid}-${device}`,
        containerEdits: {
          deviceNodes: [{ path: '/dev/vfio/vfio' }, { path: `/dev/vfio/${group}` }],
        },
      },
    ]);
    const meta = JSON.parse(
      fs.readFileSync(`${c.node.cdiDir}/${DRIVER}-metadata_${uid}.json`, 'utf8'),
    ) as { devices: { containerEdits: { mounts: { hostPath: string }[] } }[] };
    const metaFile = meta.devices[0]!.containerEdits.mounts[0]!.hostPath;
    const doc = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as {
      requests: { devices: { attributes: Record<string, { string?: string }> }[] }[];
    };
    assert.equal(doc.requests[0]!.devices[0]!.attributes['mdevUUID']?.string, uid);
    assert.deepEqual(owners(c), [{ uuid: uid, owner: `dra:${DRIVER}:${uid}`, state: 'owned' }]);
    // The GPU now runs 2 GB profiles: only those are offered on it.
    await c.node.driver.publisher.idle();
    const parent = dev!.parent;
    const onGpu = offered(c).filter(
      (d) => (d.attributes['parent'] as { string: string }).string === parent,
    );
    assert.deepEqual(
      [...new Set(onGpu.map((d) => (d.attributes['type'] as { string: string }).string))],
      ['nvidia-16'],
    );

    await c.node.kubelet.unpreparePod(pod);
    assert.equal(readActiveDevice(c.node.lab.port, uid), undefined);
    assert.equal(fs.existsSync(`${c.node.cdiDir}/${DRIVER}-vfio_${uid}.json`), false);
    assert.equal(fs.existsSync(`${c.node.cdiDir}/${DRIVER}-metadata_${uid}.json`), false);
    assert.equal(fs.existsSync(metaFile), false);
    assert.deepEqual(owners(c), []);
    assert.deepEqual(c.node.driver.checkpoint.claims(), []);
    assert.deepEqual(c.api.invalid, []);
  });

  it('mixed profiles on one GVT-g parent: one claim, two sizes, two mdevs on the same GPU', async () => {
    c = await startCluster();
    const parent = '0000:00:02.0';
    const { pod, claim } = claimFor(c, 'gvt', [
      { name: 'big', selectors: [attr('type', 'i915-GVTg_V5_2')] },
      { name: 'small', selectors: [attr('type', 'i915-GVTg_V5_8')], count: 2 },
    ]);
    const uid = uidOf(claim);
    const cdi = await c.node.kubelet.preparePod(pod);
    assert.deepEqual(Object.keys(cdi.get('gvt')!).sort(), ['big', 'small']);
    assert.equal(cdi.get('gvt')!['small']!.length, 4, 'two devices, each with vfio and metadata');
    const mine = owners(c).filter((e) => e.owner === `dra:${DRIVER}:${uid}`);
    assert.equal(mine.length, 3);
    assert.ok(
      mine.some((e) => e.uuid === uid),
      'the first device is named after the claim',
    );
    const types = mine.map((e) => readActiveDevice(c!.node.lab.port, e.uuid));
    assert.ok(types.every((d) => d?.parent === parent));
    assert.deepEqual(types.map((d) => d!.type).sort(), [
      'i915-GVTg_V5_2',
      'i915-GVTg_V5_8',
      'i915-GVTg_V5_8',
    ]);
    await c.node.kubelet.unpreparePod(pod);
    for (const e of mine) assert.equal(readActiveDevice(c.node.lab.port, e.uuid), undefined);
  });

  it('SIOV queues: work queue devices from the pool, counters honoured until exhausted', async () => {
    c = await startCluster();
    const parent = '0000:6a:01.0';
    const { pod, claim } = claimFor(c, 'wq', [
      { name: 'wq', selectors: [attr('type', 'idxd-4wq')], count: 15 },
    ]);
    await c.node.kubelet.preparePod(pod);
    const mine = owners(c).filter((e) => e.owner === `dra:${DRIVER}:${uidOf(claim)}`);
    assert.equal(mine.length, 15);
    assert.ok(mine.every((e) => readActiveDevice(c!.node.lab.port, e.uuid)?.parent === parent));
    // 60 of 64 queues are taken: four 1-queue devices fit, a fifth does not.
    const { pod: pod2 } = claimFor(c, 'wq2', [
      { name: 'wq', selectors: [attr('type', 'idxd-1wq')], count: 4 },
    ]);
    await c.node.kubelet.preparePod(pod2);
    assert.throws(
      () => claimFor(c!, 'wq3', [{ name: 'wq', selectors: [attr('type', 'idxd-1wq')] }]),
      AllocationError,
    );
    await c.node.kubelet.unpreparePod(pod);
    await c.node.kubelet.unpreparePod(pod2);
    assert.deepEqual(owners(c), []);
  });

  it('exhaustion: a GVT-g aperture holds one V5_1; the next claim is not allocated, and a stale allocation is refused with the reason', async () => {
    c = await startCluster();
    const { pod } = claimFor(c, 'one', [
      { name: 'g', selectors: [attr('type', 'i915-GVTg_V5_1')] },
    ]);
    await c.node.kubelet.preparePod(pod);
    assert.throws(
      () => claimFor(c!, 'two', [{ name: 'g', selectors: [attr('type', 'i915-GVTg_V5_1')] }]),
      /cannot allocate default\/two/,
    );
    // Someone else's device takes the aperture after a claim was allocated
    // (the slices had not caught up): Prepare refuses, saying why, and
    // the claim gets an Event.
    await c.node.kubelet.unpreparePod(pod);
    c.allocator.deallocate('default', 'one');
    await c.node.driver.publisher.idle();
    const { pod: late, claim } = claimFor(c, 'late', [
      { name: 'g', selectors: [attr('type', 'i915-GVTg_V5_2')] },
    ]);
    const foreign = c.node.createMdev('0000:00:02.0', 'i915-GVTg_V5_1');
    await assert.rejects(c.node.kubelet.preparePod(late), (err: Error) => {
      assert.ok(err instanceof PodError);
      assert.match(err.message, /cannot be prepared here: .*0000:00:02\.0/);
      return true;
    });
    assert.equal(readActiveDevice(c.node.lab.port, uidOf(claim)), undefined);
    await waitFor('an Event on the claim', () => claimEvents(c!.api, 'late').length > 0);
    const [ev] = claimEvents(c.api, 'late');
    assert.equal(ev!['reason'], 'PrepareFailed');
    assert.equal(ev!['type'], 'Warning');
    assert.match(ev!['message'] as string, /node node-a: .*0000:00:02\.0/);
    assert.ok(readActiveDevice(c.node.lab.port, foreign) !== undefined);
  });

  it("M60's one type per GPU: allocations from stale slices are refused at prepare time with the GPU's profile size", async () => {
    c = await startCluster();
    const gpu = '0000:85:00.0';
    // Both claims are allocated before either is prepared: the slices
    // still offer every type on the empty GPU.
    const { pod: p1, claim: c1 } = claimFor(c, 'small', [
      { name: 'gpu', selectors: [attr('type', 'nvidia-14'), attr('parent', gpu)] },
    ]);
    const { pod: p2, claim: c2 } = claimFor(c, 'large', [
      { name: 'gpu', selectors: [attr('type', 'nvidia-16'), attr('parent', gpu)] },
    ]);
    await c.node.kubelet.preparePod(p1);
    await assert.rejects(
      c.node.kubelet.preparePod(p2),
      /GPU 0000:85:00\.0 runs 1 GB profiles \(GRID M60-1Q\); GRID M60-2Q \(2 GB\) needs a GPU with no vGPUs of another type/,
    );
    assert.equal(readActiveDevice(c.node.lab.port, uidOf(c2)), undefined);
    assert.ok(c.log.some((l) => l.startsWith('prepare default/large [no-capacity]: ')));
    await waitFor('an Event on the claim', () => claimEvents(c!.api, 'large').length > 0);
    assert.match(
      claimEvents(c.api, 'large')[0]!['message'] as string,
      /GPU 0000:85:00\.0 runs 1 GB profiles/,
    );
    // The slices now offer only 1 GB profiles on that GPU, and the Node says why.
    await c.node.driver.publisher.idle();
    const types = new Set(
      offered(c)
        .filter((d) => (d.attributes['parent'] as { string: string }).string === gpu)
        .map((d) => (d.attributes['type'] as { string: string }).string),
    );
    assert.deepEqual([...types], ['nvidia-14']);
    await waitFor('an Event on the Node', () =>
      c!.api.list('events', 'default').some((e) => e['reason'] === 'OfferNarrowed'),
    );
    // A new claim for 2 GB profiles goes to the other GPU.
    c.allocator.deallocate('default', 'large');
    const { pod: p3, claim: c3 } = claimFor(c, 'large2', [
      { name: 'gpu', selectors: [attr('type', 'nvidia-16')] },
    ]);
    await c.node.kubelet.preparePod(p3);
    assert.equal(readActiveDevice(c.node.lab.port, uidOf(c3))?.parent, '0000:86:00.0');
    await c.node.kubelet.unpreparePod(p1);
    await c.node.kubelet.unpreparePod(p3);
    assert.equal(readActiveDevice(c.node.lab.port, uidOf(c1)), undefined);
  });

  it('vfio-ap: queues of one adapter become one matrix device, named after the claim', async () => {
    c = await startCluster();
    const { pod, claim } = claimFor(
      c,
      'crypto',
      [{ name: 'q', className: 'crypto.mdev.mdevkit.io', count: 2 }],
      [{ matchAttribute: `${DRIVER}/adapter` }],
    );
    const uid = uidOf(claim);
    const results = (
      claim['status'] as { allocation: { devices: { results: { device: string }[] } } }
    ).allocation.devices.results;
    assert.equal(results.length, 2);
    await c.node.kubelet.preparePod(pod);
    const m = readMatrixConfig(c.node.lab.port, uid);
    assert.equal(m.adapters.length, 1);
    assert.equal(m.domains.length, 2);
    // Its queues are allocated: another claim cannot have them.
    const queue = offered(c).find((d) => d.name === results[0]!.device)!.attributes['queue'] as {
      string: string;
    };
    assert.throws(
      () =>
        claimFor(c!, 'again', [
          {
            name: 'q',
            className: 'crypto.mdev.mdevkit.io',
            selectors: [attr('queue', queue.string)],
          },
        ]),
      AllocationError,
    );
    await c.node.kubelet.unpreparePod(pod);
    assert.equal(readActiveDevice(c.node.lab.port, uid), undefined);
  });

  it("vfio-ap: a queue the host took back after allocation is refused as the host's", async () => {
    c = await startCluster();
    const { pod } = claimFor(c, 'crypto', [
      { name: 'q', className: 'crypto.mdev.mdevkit.io', selectors: [attr('queue', '03.0047')] },
    ]);
    // The administrator gives domain 0x47 back to the host.
    c.node.lab.port.write('/sys/bus/ap/aqmask', '+0x47');
    await assert.rejects(c.node.kubelet.preparePod(pod), /queue 03\.0047 belongs to the host/);
    assert.ok(c.log.some((l) => l.startsWith('prepare default/crypto [matrix-refused]: ')));
    await waitFor('an Event on the claim', () => claimEvents(c!.api, 'crypto').length > 0);
    assert.match(claimEvents(c.api, 'crypto')[0]!['message'] as string, /belongs to the host/);
  });
});

describe('DRA crash safety and ownership', () => {
  it('a crash between the create and the checkpoint: the restarted driver adopts the device; a second Prepare changes nothing', async () => {
    let crash = true;
    c = await startCluster({
      afterCreate: () => {
        if (crash) throw new Error('simulated crash after the sysfs write');
      },
    });
    const { pod, claim } = claimFor(c, 'vgpu', [
      { name: 'gpu', selectors: [attr('type', 'nvidia-12')] },
    ]);
    const uid = uidOf(claim);
    await assert.rejects(c.node.kubelet.preparePod(pod), /simulated crash/);
    assert.equal(readActiveDevice(c.node.lab.port, uid)?.type, 'nvidia-12');
    assert.deepEqual(owners(c), [{ uuid: uid, owner: `dra:${DRIVER}:${uid}`, state: 'creating' }]);
    assert.deepEqual(c.node.driver.checkpoint.claims(), []);

    crash = false;
    await c.node.restartDriver();
    // kubelet tries again; the device is there already (the kernel is the truth).
    const cdi = await c.node.kubelet.preparePod(pod);
    assert.ok(cdi.get('vgpu')!['gpu']!.length === 2);
    assert.deepEqual(owners(c), [{ uuid: uid, owner: `dra:${DRIVER}:${uid}`, state: 'owned' }]);
    const devicesBefore = c.node.lab.port.list('/sys/bus/mdev/devices').sort();
    const again = await c.node.kubelet.nodePrepare(DRIVER, [
      { namespace: 'default', uid, name: 'vgpu' },
    ]);
    assert.equal(again.claims[uid]?.error, '');
    assert.deepEqual(
      again.claims[uid]?.devices.flatMap((d) => d.cdi_device_ids),
      cdi.get('vgpu')!['gpu'],
    );
    assert.deepEqual(c.node.lab.port.list('/sys/bus/mdev/devices').sort(), devicesBefore);
    await c.node.kubelet.unpreparePod(pod);
    assert.equal(readActiveDevice(c.node.lab.port, uid), undefined);
  });

  it('a crash before the sysfs write leaves no record behind after the restart', async () => {
    c = await startCluster();
    const { claim } = claimFor(c, 'vgpu', [
      { name: 'gpu', selectors: [attr('type', 'nvidia-12')] },
    ]);
    const uid = uidOf(claim);
    // The write-ahead entry alone, as a crash right after step 1 leaves it.
    await c.node.driver.options.engine.withOwnership(`dra:${DRIVER}:${uid}`, (r) =>
      r.set([
        {
          uuid: uid,
          parent: '0000:85:00.0',
          type: 'nvidia-12',
          owner: `dra:${DRIVER}:${uid}`,
          state: 'creating',
        },
      ]),
    );
    await c.node.restartDriver();
    assert.deepEqual(owners(c), []);
  });

  it('Unprepare after a restart of the driver and of kubelet removes what Prepare made', async () => {
    c = await startCluster();
    const { pod, claim } = claimFor(c, 'vgpu', [
      { name: 'gpu', selectors: [attr('type', 'i915-GVTg_V5_4')] },
    ]);
    const uid = uidOf(claim);
    await c.node.kubelet.preparePod(pod);
    await c.node.restartDriver();
    await c.node.kubelet.restart();
    await c.node.kubelet.whenRegistered(DRIVER);
    assert.ok(readActiveDevice(c.node.lab.port, uid) !== undefined);
    await c.node.kubelet.unpreparePod(pod);
    assert.equal(readActiveDevice(c.node.lab.port, uid), undefined);
    assert.deepEqual(owners(c), []);
    assert.equal(fs.existsSync(`${c.node.cdiDir}/${DRIVER}-vfio_${uid}.json`), false);
  });

  it('Unprepare of a device a VM holds open fails with EBUSY and keeps everything; it succeeds once the VM lets go', async () => {
    c = await startCluster();
    const { pod, claim } = claimFor(c, 'vgpu', [
      { name: 'gpu', selectors: [attr('type', 'nvidia-12')] },
    ]);
    const uid = uidOf(claim);
    await c.node.kubelet.preparePod(pod);
    c.node.lab.open(uid);
    await assert.rejects(
      c.node.kubelet.unpreparePod(pod),
      new RegExp(`device ${uid} is open \\(a VM still uses it\\): EBUSY`),
    );
    assert.ok(c.log.some((l) => l.startsWith('unprepare default/vgpu [remove-failed]: ')));
    assert.ok(readActiveDevice(c.node.lab.port, uid) !== undefined);
    assert.deepEqual(owners(c), [{ uuid: uid, owner: `dra:${DRIVER}:${uid}`, state: 'owned' }]);
    assert.ok(fs.existsSync(`${c.node.cdiDir}/${DRIVER}-vfio_${uid}.json`));
    c.node.lab.close(uid);
    await c.node.kubelet.unpreparePod(pod);
    assert.equal(readActiveDevice(c.node.lab.port, uid), undefined);
    assert.deepEqual(owners(c), []);
  });

  it("a foreign device survives: its capacity is not offered, Unprepare leaves it, and one with the claim's UUID is refused", async () => {
    c = await startCluster({ devices: [{ parent: '0000:85:00.0', type: 'nvidia-17', count: 1 }] });
    const [foreign] = c.node.lab.port
      .list('/sys/bus/mdev/devices')
      .filter((u) => readActiveDevice(c!.node.lab.port, u)?.parent === '0000:85:00.0');
    assert.ok(foreign !== undefined);
    // The GPU's published framebuffer is what the foreign 4 GB device leaves.
    const set = c.allocator.pools()[0]!.counters.get('0000-85-00-0')!;
    assert.equal(set.get('framebuffer'), 4096 * 1024 ** 2);
    const { pod, claim } = claimFor(c, 'beside', [
      { name: 'gpu', selectors: [attr('type', 'nvidia-17')] },
    ]);
    await c.node.kubelet.preparePod(pod);
    await c.node.kubelet.unpreparePod(pod);
    assert.equal(readActiveDevice(c.node.lab.port, uidOf(claim)), undefined);
    assert.equal(readActiveDevice(c.node.lab.port, foreign)?.type, 'nvidia-17');

    // Someone made a device with the next claim's UID before it was prepared.
    const { pod: p2, claim: c2 } = claimFor(c, 'squatted', [
      { name: 'gpu', selectors: [attr('type', 'nvidia-17'), attr('parent', '0000:86:00.0')] },
    ]);
    const uid = uidOf(c2);
    await c.node.driver.publisher.idle();
    c.node.lab.port.write(
      '/sys/class/mdev_bus/0000:86:00.0/mdev_supported_types/nvidia-17/create',
      uid,
    );
    await assert.rejects(
      c.node.kubelet.preparePod(p2),
      /exists already and mdevkit did not make it/,
    );
    await assert.rejects(
      c.node.kubelet
        .nodePrepare(DRIVER, [{ namespace: 'default', uid, name: 'squatted' }])
        .then((r) => {
          if (r.claims[uid]?.error !== '') throw new Error(r.claims[uid]!.error);
        }),
      /left alone/,
    );
    await c.node.kubelet.unpreparePod(p2);
    assert.equal(readActiveDevice(c.node.lab.port, uid)?.type, 'nvidia-17');
  });
});
