import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { profileOf } from '../support/sim-node.js';
import { waitFor } from '../support/wait.js';
import type { KubeObject } from '../support/fake-apiserver.js';
import { startCluster, type Cluster } from './support.js';

/**
 * The node's ResourceSlices as the API server stores them (validated as
 * the real one validates them), kept equal to what the host offers as
 * devices appear and go, capacity changes and parents go away.
 */

let c: Cluster | undefined;
afterEach(async () => {
  await c?.stop();
  c = undefined;
});

const GPU = '0000:85:00.0';
const GIB = 1024 ** 3;

type Spec = {
  pool: { generation: number; resourceSliceCount: number };
  sharedCounters?: { name: string; counters: Record<string, { value: string }> }[];
  devices?: { name: string; consumesCounters?: unknown[] }[];
};
const specOf = (s: KubeObject): Spec => s['spec'] as Spec;

function slices(cl: Cluster): KubeObject[] {
  return cl.api.list('resourceslices', undefined, 'resource.k8s.io');
}

/** The GPU's published framebuffer (bytes) and the types offered on it. */
function gpuOffer(cl: Cluster, gpu: string): { framebuffer: number; types: string[] } | undefined {
  const [pool] = cl.allocator.pools();
  if (pool === undefined) return undefined;
  const set = pool.counters.get(gpu.replace(/[:.]/g, '-'));
  if (set === undefined) return undefined;
  const types = pool.devices
    .filter((d) => (d.attributes['parent'] as { string: string }).string === gpu)
    .map((d) => (d.attributes['type'] as { string: string }).string);
  return { framebuffer: set.get('framebuffer')!, types: [...new Set(types)].sort() };
}

describe('DRA ResourceSlices', () => {
  it('are kept current as devices appear and go, and as parents go away and come back', async () => {
    c = await startCluster();
    const cl = c;
    assert.deepEqual(gpuOffer(cl, GPU)?.framebuffer, 8 * GIB);
    assert.equal(gpuOffer(cl, GPU)?.types.length, 8);
    const gen0 = specOf(slices(cl)[0]!).pool.generation;

    // Someone makes a 4 GB vGPU: half the framebuffer is gone, and the GPU
    // now runs 4 GB profiles only.
    const foreign = cl.node.createMdev(GPU, 'nvidia-17');
    await waitFor(
      'the slices to show the device',
      () => gpuOffer(cl, GPU)?.framebuffer === 4 * GIB,
    );
    assert.deepEqual(gpuOffer(cl, GPU)?.types, ['nvidia-17']);
    await new Promise((r) => setImmediate(r));
    await cl.node.driver.publisher.idle();
    const gen1 = specOf(slices(cl)[0]!).pool.generation;
    assert.ok(gen1 > gen0);
    assert.ok(
      slices(cl).every((s) => specOf(s).pool.generation === gen1),
      'one generation',
    );

    // It goes: the whole GPU is offered again.
    cl.node.lab.port.write(`/sys/bus/mdev/devices/${foreign}/remove`, '1');
    await waitFor(
      'the slices to show the removal',
      () => gpuOffer(cl, GPU)?.framebuffer === 8 * GIB,
    );
    assert.equal(gpuOffer(cl, GPU)?.types.length, 8);

    // Every driver unloads (parents go away): the pool is empty, not gone.
    cl.node.lab.unplugAll();
    cl.node.driver.scheduleRefresh();
    await waitFor('an empty pool', () => {
      const [pool] = cl.allocator.pools();
      return pool !== undefined && pool.devices.length === 0 && pool.counters.size === 0;
    });
    await cl.node.driver.publisher.idle();
    assert.equal(slices(cl).length, 1, 'the tail of the pool is deleted');
    cl.node.lab.plugAll();
    cl.node.driver.scheduleRefresh();
    await waitFor('the parents back', () => gpuOffer(cl, GPU)?.framebuffer === 8 * GIB);
    assert.deepEqual(cl.api.invalid, []);
  });

  it('a node with 16 GPUs stays within the API limits: counter sets apart, 8 per slice, 64 devices with counters per slice', async () => {
    const gpus = Array.from(
      { length: 16 },
      (_, i) => `0000:${(0x10 + i).toString(16).padStart(2, '0')}:00.0`,
    );
    c = await startCluster({
      profile: profileOf('dra-16', [
        { driver: 'nvidia-m60', options: { gpus } },
        { driver: 'gvt' },
      ]),
    });
    const all = slices(c);
    assert.deepEqual(c.api.invalid, []);
    const sets = all.flatMap((s) => specOf(s).sharedCounters ?? []);
    assert.equal(sets.length, 17);
    for (const s of all) {
      const spec = specOf(s);
      assert.ok(spec.sharedCounters === undefined || spec.devices === undefined);
      assert.ok((spec.sharedCounters ?? []).length <= 8);
      assert.ok((spec.devices ?? []).length <= 64);
      assert.equal(spec.pool.resourceSliceCount, all.length);
    }
    const [pool] = c.allocator.pools();
    assert.equal(pool?.devices.length, 16 * 59 + 15);
  });
});
