import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { parsePluginConfig } from '../../src/k8s/device-plugin/config.js';
import { NodeConfigController, type ConfigApplier } from '../../src/k8s/node-config/controller.js';
import { kubeNodeApi } from '../../src/k8s/node-config/node-api.js';
import { tmpDir } from '../support/tmp.js';
import { FakeApiServer } from './support/fake-apiserver.js';
import { SimNode, profileOf } from './support/sim-node.js';
import { deferred, waitFor } from './support/wait.js';

/**
 * The node configuration loop's Kubernetes side: the official client
 * against the fake API server (HTTP), labels and Events as an operator
 * sees them, and the plugins' health as kubelet sees it. The applier here
 * is a test double whose apply the test finishes by hand, so the test can
 * look at the node while the apply runs; the desired-state engine behind
 * the real applier is exercised in test/k8s/fleet.test.ts.
 */

const GPU_A = '0000:85:00.0';

class ManualApplier implements ConfigApplier {
  readonly calls: string[] = [];
  next = deferred<string>();
  affectedTypes(): { type: string }[] {
    return [{ type: 'nvidia-16' }];
  }
  apply(config: string): Promise<string> {
    this.calls.push(config);
    return this.next.promise;
  }
  finish(summary: string): void {
    const d = this.next;
    this.next = deferred<string>();
    d.resolve(summary);
  }
  fail(reason: string): void {
    const d = this.next;
    this.next = deferred<string>();
    d.reject(new Error(reason));
  }
}

describe('node configuration by label (controller, official client, fake API server)', () => {
  let api: FakeApiServer;
  let node: SimNode;
  let applier: ManualApplier;
  let controller: NodeConfigController;

  before(async () => {
    api = await FakeApiServer.start();
    api.put('nodes', { metadata: { name: 'n1', labels: { 'kubernetes.io/hostname': 'n1' } } });
    api.put('nodes', { metadata: { name: 'n2', labels: {} } });
    node = new SimNode({
      name: 'n1',
      dir: tmpDir(),
      profile: profileOf('m60', [{ driver: 'nvidia-m60' }, { driver: 'mtty' }]),
      devices: [
        { parent: GPU_A, type: 'nvidia-16', count: 2 },
        { parent: 'mtty', type: 'mtty-1', count: 1 },
      ],
      config: parsePluginConfig('version: 1\nnodeConfig: { file: host.yaml }\n', '/x/dp.yaml'),
    });
    await node.start();
    applier = new ManualApplier();
    controller = new NodeConfigController({
      api: kubeNodeApi({ kubeConfig: api.kubeConfig(), node: 'n1', retryMs: 50 }),
      applier,
      label: 'mdevkit.io/config',
      hold: (types, reason) => {
        const rs = node.manager.resourcesOfTypes(types);
        return node.manager.hold((r) => rs.has(r), reason);
      },
    });
    controller.start();
  });
  after(async () => {
    await controller.stop();
    await node.stop();
    await api.stop();
  });

  const labels = (name: string): Record<string, string> =>
    api.get('nodes', name)!.metadata.labels ?? {};

  it('does nothing while the node has no configuration label', async () => {
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(applier.calls, []);
    assert.equal(labels('n1')['mdevkit.io/config.state'], undefined);
  });

  it('a label applies the configuration: pending with the resource unhealthy, then success and an Event', async () => {
    api.labelNode('n1', { 'mdevkit.io/config': 'grid-2q' });
    await waitFor('the apply to start', () => applier.calls.length === 1);
    assert.deepEqual(applier.calls, ['grid-2q']);
    await waitFor('pending', () => labels('n1')['mdevkit.io/config.state'] === 'pending');
    await waitFor(
      'kubelet to see the GPU resource unhealthy',
      () => node.kubelet.capacity('mdevkit.io/nvidia-16').allocatable === 0,
    );
    assert.equal(node.kubelet.capacity('mdevkit.io/nvidia-16').capacity, 2);
    assert.deepEqual(
      node.kubelet.capacity('mdevkit.io/mtty-1'),
      { capacity: 1, allocatable: 1 },
      'other resources stay',
    );
    applier.finish('2 created');
    await waitFor('success', () => labels('n1')['mdevkit.io/config.state'] === 'success');
    await waitFor(
      'healthy again',
      () => node.kubelet.capacity('mdevkit.io/nvidia-16').allocatable === 2,
    );
    const events = api.list('events', 'default');
    const reasons = events.map((e) => `${e['type'] as string}/${e['reason'] as string}`);
    assert.deepEqual(reasons, ['Normal/ConfigApplying', 'Normal/ConfigApplied']);
    const applied = events[1]!;
    assert.deepEqual(applied['involvedObject'], {
      apiVersion: 'v1',
      kind: 'Node',
      name: 'n1',
      uid: api.get('nodes', 'n1')!.metadata.uid,
    });
    assert.match(applied['message'] as string, /grid-2q applied: 2 created/);
    assert.equal(labels('n2')['mdevkit.io/config.state'], undefined, 'another node untouched');
    // Label patches are JSON merge patches of metadata.labels through the client.
    const patches = api.requests.filter((r) => r.method === 'PATCH');
    assert.ok(
      patches.every(
        (p) => p.path === '/api/v1/nodes/n1' && p.contentType === 'application/merge-patch+json',
      ),
    );
  });

  it('its own state label does not trigger another apply; a failed apply says why and is not retried', async () => {
    assert.equal(applier.calls.length, 1);
    api.labelNode('n1', { 'mdevkit.io/config': 'broken' });
    await waitFor('the second apply', () => applier.calls.length === 2);
    applier.fail('no parent offers nvidia-99');
    await waitFor('failed', () => labels('n1')['mdevkit.io/config.state'] === 'failed');
    const last = api.list('events', 'default').at(-1)!;
    assert.equal(last['type'], 'Warning');
    assert.equal(last['reason'], 'ConfigFailed');
    assert.match(last['message'] as string, /broken failed: no parent offers nvidia-99/);
    api.labelNode('n1', { unrelated: 'x' });
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(applier.calls.length, 2);
    await waitFor(
      'healthy after a failure too',
      () => node.kubelet.capacity('mdevkit.io/nvidia-16').allocatable === 2,
    );
  });

  it('label changes during an apply: only the newest is applied after it', async () => {
    api.labelNode('n1', { 'mdevkit.io/config': 'a' });
    await waitFor('apply a', () => applier.calls.length === 3);
    api.labelNode('n1', { 'mdevkit.io/config': 'b' });
    api.labelNode('n1', { 'mdevkit.io/config': 'c' });
    await new Promise((r) => setTimeout(r, 100));
    applier.finish('a done');
    await waitFor('apply c', () => applier.calls.length === 4);
    assert.deepEqual(applier.calls.slice(2), ['a', 'c']);
    applier.finish('c done');
    await controller.idle();
    await waitFor('success', () => labels('n1')['mdevkit.io/config.state'] === 'success');
  });

  it('keeps working when the API server fails a report, and when a watch breaks', async () => {
    api.failNext('PATCH', /\/api\/v1\/nodes\/n1$/, 500, 1);
    assert.ok(api.dropWatches() >= 1, 'the controller was watching');
    await new Promise((r) => setTimeout(r, 50));
    api.labelNode('n1', { 'mdevkit.io/config': 'd' });
    await waitFor('apply d', () => applier.calls.length === 5);
    applier.finish('d done');
    await waitFor('success reported', () => labels('n1')['mdevkit.io/config.state'] === 'success');
    // Reads through the same client: the node as the API server has it.
    const core = api.kubeConfig().makeApiClient(CoreV1Api);
    const n = await core.readNode({ name: 'n1' });
    assert.equal(n.metadata?.labels?.['mdevkit.io/config'], 'd');
  });
});
