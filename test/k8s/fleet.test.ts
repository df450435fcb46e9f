import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { defaultResourceName } from '../../src/k8s/device-plugin/resource-name.js';
import { tmpDir } from '../support/tmp.js';
import { AdmissionError, type ContainerAllocation } from './support/fake-kubelet.js';
import { Fleet } from './support/fleet.js';
import { waitFor } from './support/wait.js';

/**
 * A simulated fleet of 100 nodes (four kinds of lab in turn), each with
 * its own device plugins and fake kubelet: registration, pod admission
 * under load and kubelet restarts everywhere at once. Timings are
 * measured by `npm run bench k8s`; here only behaviour is asserted.
 */

const NODES = 100;

/** The resources a node must have: one per type of the devices its profile made. */
function expectedResources(fleet: Fleet, i: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const d of fleet.profileOf(fleet.nodes[i]!).devices) {
    const r = defaultResourceName(d.type);
    out.set(r, (out.get(r) ?? 0) + d.count);
  }
  return out;
}

describe(`a fleet of ${NODES} simulated nodes`, () => {
  let fleet: Fleet;
  before(async () => {
    fleet = await Fleet.start({ nodes: NODES, dir: tmpDir() });
  });
  after(() => fleet.stop());

  it('every node registered every resource it has, with every device healthy', () => {
    for (const [i, node] of fleet.nodes.entries()) {
      const want = expectedResources(fleet, i);
      assert.deepEqual(node.kubelet.resources(), [...want.keys()].sort(), node.name);
      for (const [r, n] of want) {
        assert.deepEqual(
          node.kubelet.capacity(r),
          { capacity: n, allocatable: n },
          `${node.name} ${r}`,
        );
      }
      assert.deepEqual(node.kubelet.violations, [], node.name);
      assert.ok(node.kubelet.registrations.every((x) => x.error === undefined));
    }
  });

  it('concurrent pod admissions on every node: each device given once, the rest refused', async () => {
    const results = await Promise.all(
      fleet.nodes.map(async (node) => {
        const resources = node.kubelet.resources();
        const pods: Promise<ContainerAllocation[] | AdmissionError>[] = [];
        let k = 0;
        for (const r of resources) {
          const n = node.kubelet.capacity(r).allocatable;
          // One pod more than there are devices, all at once.
          for (let j = 0; j <= n; j++) {
            pods.push(
              node.kubelet
                .admit({
                  uid: `${node.name}-p${k++}`,
                  containers: [{ name: 'vm', limits: { [r]: 1 } }],
                })
                .catch((e: unknown) => {
                  if (e instanceof AdmissionError) return e;
                  throw e;
                }),
            );
          }
        }
        return { node, resources, outcomes: await Promise.all(pods) };
      }),
    );
    for (const { node, resources, outcomes } of results) {
      const granted = outcomes.filter(
        (o): o is ContainerAllocation[] => !(o instanceof AdmissionError),
      );
      const refused = outcomes.filter((o) => o instanceof AdmissionError);
      assert.equal(refused.length, resources.length, `${node.name}: one refusal per resource`);
      const ids = granted.flatMap((g) => g.flatMap((c) => c.devices));
      assert.equal(new Set(ids).size, ids.length, `${node.name}: no device given twice`);
      for (const r of resources) {
        assert.deepEqual(
          node.kubelet.allocated(r),
          node.kubelet.healthy(r),
          `${node.name} ${r} all used`,
        );
      }
      for (const c of granted.flat()) {
        const env = Object.entries(c.response.envs);
        assert.equal(env.length, 1);
        assert.equal(env[0]![1], c.devices.join(','));
      }
      for (const uid of [...node.kubelet.pods.keys()]) node.kubelet.removePod(uid);
    }
  });

  it('a pod asking for several vGPUs gets them on one GPU on every grid node', async () => {
    const grid = fleet.nodes.filter((n) => fleet.profileOf(n).name === 'grid');
    assert.ok(grid.length >= 25);
    await Promise.all(
      grid.map(async (node) => {
        const [c] = await node.kubelet.admit({
          uid: `${node.name}-multi`,
          containers: [{ name: 'vm', limits: { 'mdevkit.io/nvidia-16': 2 } }],
        });
        const parents = new Set(
          c!.devices.map((id) => node.manager.devices.find((d) => d.id === id)!.parent),
        );
        // GPU B has exactly two: the best fit.
        assert.deepEqual([...parents], ['0000:86:00.0'], node.name);
        node.kubelet.removePod(`${node.name}-multi`);
      }),
    );
  });

  it('kubelet restarts on every node at once: every plugin registers again and pods keep their devices', async () => {
    const pods = await Promise.all(
      fleet.nodes.map((node) => {
        const r = node.kubelet.resources()[0]!;
        return node.kubelet.admit({
          uid: `${node.name}-keep`,
          containers: [{ name: 'vm', limits: { [r]: 1 } }],
        });
      }),
    );
    const before = fleet.nodes.map((n) => n.kubelet.registrations.length);
    await Promise.all(fleet.nodes.map((n) => n.kubelet.restart()));
    await waitFor(
      'every node re-registered',
      () =>
        fleet.nodes.every(
          (n, i) =>
            n.kubelet.registrations.length >= before[i]! + n.kubelet.resources().length &&
            n.kubelet.resources().every((r) => n.kubelet.isConnected(r)),
        ),
      30_000,
      20,
    );
    for (const [i, node] of fleet.nodes.entries()) {
      for (const [r, n] of expectedResources(fleet, i)) {
        assert.deepEqual(
          node.kubelet.capacity(r),
          { capacity: n, allocatable: n },
          `${node.name} ${r}`,
        );
      }
      assert.deepEqual(node.kubelet.pods.get(`${node.name}-keep`), pods[i]);
      assert.deepEqual(node.kubelet.violations, []);
    }
  });
});
