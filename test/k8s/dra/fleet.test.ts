import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readActiveDevice } from '../../../src/host/sysfs-model.js';
import { tmpDir } from '../../support/tmp.js';
import { TestAllocator } from '../support/dra-allocator.js';
import { DraFleet } from '../support/dra-fleet.js';
import type { SimDraNode } from '../support/sim-dra-node.js';
import { applyDeviceClasses, attr, DRIVER } from './support.js';

/**
 * The simulated fleet in DRA mode: 40 nodes (the device-plugin fleet's four
 * kinds of lab in turn, with their pre-existing devices), each with its
 * DraDriver and fake kubelet, one fake API server. Every node publishes a
 * complete, valid pool; claims of every kind are allocated across the
 * fleet by the test allocator and prepared on all nodes at once; what
 * was there before survives; kubelet restarts everywhere.
 */

const NODES = 40;

/** A type each profile can create with the devices it already has. */
const WANTED: Record<string, string> = {
  grid: 'nvidia-16',
  'gvt-siov': 'idxd-1wq',
  mixed: 'i915-GVTg_V5_4',
  samples: 'mtty-1',
};

function mdevs(node: SimDraNode): string[] {
  return node.lab.port.list('/sys/bus/mdev/devices').sort();
}

describe(`DRA on a fleet of ${NODES} simulated nodes`, () => {
  let fleet: DraFleet;
  let allocator: TestAllocator;
  const before0 = new Map<string, string[]>();
  before(async () => {
    fleet = await DraFleet.start({ nodes: NODES, dir: tmpDir() });
    applyDeviceClasses(fleet.api);
    allocator = new TestAllocator(fleet.api);
    for (const n of fleet.nodes) before0.set(n.name, mdevs(n));
  });
  after(() => fleet.stop());

  it('every node registered and published one complete, valid pool', () => {
    assert.deepEqual(fleet.api.invalid, []);
    const pools = allocator.pools();
    assert.deepEqual(
      pools.map((p) => p.node),
      fleet.nodes.map((n) => n.name),
    );
    for (const n of fleet.nodes) {
      assert.deepEqual(n.kubelet.drivers(), [DRIVER], n.name);
      assert.deepEqual(n.kubelet.violations, [], n.name);
    }
  });

  it('claims of every kind, prepared on every node at once, then unprepared; what was there survives', async () => {
    const placed = fleet.nodes.map((node, i) => {
      const type = WANTED[fleet.profileOf(node).name]!;
      const name = `claim-${i}`;
      fleet.api.put(
        'resourceclaims',
        {
          metadata: { name, namespace: 'default' },
          spec: {
            devices: {
              requests: [
                {
                  name: 'dev',
                  exactly: {
                    deviceClassName: 'mdev.mdevkit.io',
                    selectors: [{ cel: { expression: attr('type', type) } }],
                  },
                },
              ],
            },
          },
        },
        'resource.k8s.io',
      );
      const pod = {
        uid: `00000000-0000-4000-8000-00000000f${String(i).padStart(3, '0')}`,
        name: `vm-${i}`,
        namespace: 'default',
        claims: [name],
      };
      const { node: where } = allocator.allocate('default', name, pod, { node: node.name });
      assert.equal(where, node.name);
      const uid = fleet.api.get('resourceclaims', name, 'default', 'resource.k8s.io')!.metadata
        .uid!;
      return { node, pod, uid, type };
    });
    await Promise.all(placed.map((p) => p.node.kubelet.preparePod(p.pod)));
    for (const p of placed)
      assert.equal(readActiveDevice(p.node.lab.port, p.uid)?.type, p.type, p.node.name);
    await Promise.all(placed.map((p) => p.node.kubelet.unpreparePod(p.pod)));
    for (const n of fleet.nodes) assert.deepEqual(mdevs(n), before0.get(n.name), n.name);
  });

  it('kubelet restarts everywhere: every driver registers again', async () => {
    await Promise.all(fleet.nodes.map((n) => n.kubelet.restart()));
    await Promise.all(fleet.nodes.map((n) => n.kubelet.whenRegistered(DRIVER)));
    for (const n of fleet.nodes) assert.equal(n.kubelet.restarts, 1);
  });
});
