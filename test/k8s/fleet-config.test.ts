import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ownershipEntries } from '../../src/host/desired/engine.js';
import { parsePluginConfig } from '../../src/k8s/device-plugin/config.js';
import { tmpDir } from '../support/tmp.js';
import { Fleet, desiredApplierFor } from './support/fleet.js';
import type { SimNode } from './support/sim-node.js';
import { waitFor } from './support/wait.js';

/**
 * Node configuration across a simulated fleet of 100 nodes: one fake API
 * server, each node's plugin watching its own Node through the official
 * client and applying the labelled configuration with the desired-state
 * engine on its own lab.
 */

const NODES = 100;
const HOST_YAML = `version: 1
configs:
  serial-1:
    entries:
      - parents: mtty
        devices: [{ type: mtty-2, count: 1 }]
  serial-2:
    entries:
      - parents: mtty
        devices: [{ type: mtty-2, count: 2 }]
  gpu-only:
    entries:
      - parents: { vendorDevice: '10de:13f2' }
        devices: [{ type: nvidia-16, count: fill }]
`;

describe(`node configuration by label on ${NODES} nodes`, () => {
  let fleet: Fleet;
  const dir = tmpDir();
  const stateOf = (n: SimNode): string | undefined =>
    fleet.api!.get('nodes', n.name)!.metadata.labels?.['mdevkit.io/config.state'];
  /** Devices with their type, read from the node's sysfs. */
  const typesOn = (n: SimNode): string[] => n.manager.devices.map((d) => d.type).sort();

  before(async () => {
    fs.writeFileSync(nodePath.join(dir, 'host.yaml'), HOST_YAML);
    const configFile = nodePath.join(dir, 'device-plugin.yaml');
    fs.writeFileSync(configFile, 'version: 1\nnodeConfig: { file: host.yaml }\n');
    fleet = await Fleet.start({
      nodes: NODES,
      dir,
      config: parsePluginConfig(fs.readFileSync(configFile, 'utf8'), configFile),
      applier: desiredApplierFor(nodePath.join(dir, 'host.yaml')),
    });
  });
  after(() => fleet.stop());

  it('a label put on every node is applied and reported on every node; foreign devices stay', async () => {
    const before = fleet.nodes.map(typesOn);
    for (const n of fleet.nodes) fleet.api!.labelNode(n.name, { 'mdevkit.io/config': 'serial-1' });
    await waitFor(
      'every node reports success',
      () => fleet.nodes.every((n) => stateOf(n) === 'success'),
      60_000,
      20,
    );
    for (const [i, n] of fleet.nodes.entries()) {
      assert.deepEqual(
        typesOn(n),
        [...before[i]!, 'mtty-2'].sort(),
        `${n.name}: one mtty-2 more, nothing else changed`,
      );
      await waitFor(
        `${n.name} advertises it`,
        () => n.kubelet.capacity('mdevkit.io/mtty-2').allocatable >= 1,
      );
      const events = fleet
        .api!.list('events', 'default')
        .filter((e) => (e['involvedObject'] as { name: string }).name === n.name);
      assert.deepEqual(
        events.map((e) => e['reason']),
        ['ConfigApplying', 'ConfigApplied'],
        n.name,
      );
    }
  });

  it('relabelling releases the old configuration, applies the new, and a failing node blocks no other', async () => {
    // On one node a pod uses the device serial-1 made: it must stay, and that node fails.
    const busy = fleet.nodes.find((n) => fleet.profileOf(n).name === 'samples')!;
    const owned = ownershipEntries(busy.env).filter((e) => e.owner === 'config:serial-1');
    assert.equal(owned.length, 1);
    const mtty2 = 'mdevkit.io/mtty-2';
    // The samples profile made two mtty-2 devices of its own: take the configuration's.
    const pod = `${busy.name}-uses-serial-1`;
    await busy.kubelet.admit({ uid: pod, containers: [{ name: 'vm', limits: { [mtty2]: 3 } }] });
    // A GPU-only configuration on an M60-less node fails there (no parent to select).
    const gvt = fleet.nodes.find((n) => fleet.profileOf(n).name === 'gvt-siov')!;
    for (const n of fleet.nodes) {
      fleet.api!.labelNode(n.name, { 'mdevkit.io/config': n === gvt ? 'gpu-only' : 'serial-2' });
    }
    await waitFor(
      'every node reports an outcome',
      () =>
        fleet.nodes.every((n) => stateOf(n) === 'success' || stateOf(n) === 'failed') &&
        fleet.nodes.every(
          (n) =>
            n.agent.controller!.history.length === 2 &&
            n.agent.controller!.history[1]!.endedAt !== undefined,
        ),
      60_000,
      20,
    );
    const failed = fleet.nodes
      .filter((n) => stateOf(n) === 'failed')
      .map((n) => n.name)
      .sort();
    assert.deepEqual(failed, [busy.name, gvt.name].sort());
    for (const n of fleet.nodes) {
      if (n === busy || n === gvt) continue;
      const mine = ownershipEntries(n.env).filter((e) => e.owner.startsWith('config:'));
      assert.deepEqual(
        mine.map((e) => `${e.owner} ${e.type}`),
        ['config:serial-2 mtty-2', 'config:serial-2 mtty-2'],
        n.name,
      );
    }
    // The busy node kept the device its pod uses, and says why it failed.
    assert.ok(busy.manager.devices.some((d) => d.id === owned[0]!.uuid));
    const warn = fleet
      .api!.list('events', 'default')
      .find(
        (e) =>
          (e['involvedObject'] as { name: string }).name === busy.name &&
          e['reason'] === 'ConfigFailed',
      );
    assert.match(warn!['message'] as string, new RegExp(`releasing serial-1: .*pod ${pod}`));
    const gvtWarn = fleet
      .api!.list('events', 'default')
      .find(
        (e) =>
          (e['involvedObject'] as { name: string }).name === gvt.name &&
          e['reason'] === 'ConfigFailed',
      );
    assert.match(gvtWarn!['message'] as string, /selects no parent/);
    // Every resource is healthy again once the applies are over.
    for (const n of fleet.nodes) {
      for (const r of n.kubelet.resources()) {
        await waitFor(
          `${n.name} ${r} healthy`,
          () => n.kubelet.capacity(r).allocatable === n.kubelet.capacity(r).capacity,
        );
      }
    }
  });
});
