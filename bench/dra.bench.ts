/**
 * Issue 18's figures for the DRA driver, each beside a baseline measured
 * the same way:
 *
 *  - NodePrepareResources: kubelet's call over the unix socket for a claim
 *    allocated a vGPU (M60 nvidia-12) on the in-process lab — read the
 *    claim from the (fake) API server, check, record ahead, create the mdev,
 *    write CDI specs and the checkpoint, record owned — p50/p99 over 300
 *    claims, each unprepared after (NodeUnprepareResources is its own row),
 *    each timed once the slice publication the previous call set off has
 *    finished (it shares this process with the fake API server).
 *    Baseline: the same call for a claim already prepared (a gRPC round
 *    trip and a checkpoint look-up). Goal: p99 <= 20 ms.
 *  - Slice publication on a node with 8 GPUs: from the sysfs write that
 *    creates (or removes) someone else's vGPU to the API server holding the
 *    node's whole new pool, with the lab's uevents and with the sysfs poll
 *    `mdevkit k8s dra` uses (100 ms). Baseline: a publication the driver is
 *    told to make (the publisher's and API server's own cost). Goal:
 *    <= 100 ms.
 *  - The simulated fleet in DRA mode: 100 nodes (the device-plugin
 *    fleet's profiles) started at once, until each is registered with its
 *    kubelet and has its pool in the API server, beside one node alone.
 *
 * Run: npm run bench dra
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { removeDevice } from '../src/host/sysfs-model.js';
import { TestAllocator } from '../test/k8s/support/dra-allocator.js';
import { DraFleet } from '../test/k8s/support/dra-fleet.js';
import { SimDraNode, draApiServer, DRIVER } from '../test/k8s/support/sim-dra-node.js';
import { profileOf } from '../test/k8s/support/sim-node.js';
import type { FakeApiServer, KubeObject } from '../test/k8s/support/fake-apiserver.js';
import { LatencyTable } from './support/latency-table.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdevkit-dra-bench-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

const table = new LatencyTable();
const row = table.row.bind(table);
const now = (): number => performance.now();

async function startNode(
  api: FakeApiServer,
  name: string,
  gpus: number,
  pollMs?: number,
): Promise<SimDraNode> {
  const addresses = Array.from(
    { length: gpus },
    (_, i) => `0000:${(0x40 + i).toString(16).padStart(2, '0')}:00.0`,
  );
  api.put('nodes', { metadata: { name } });
  const node = new SimDraNode({
    name,
    dir: path.join(dir, name),
    profile: profileOf(name, [{ driver: 'nvidia-m60', options: { gpus: addresses } }]),
    api,
    ...(pollMs !== undefined && { pollMs }),
  });
  await node.start();
  return node;
}

async function settle(node: SimDraNode): Promise<void> {
  await new Promise((r) => setImmediate(r));
  await node.driver.publisher.idle();
}

function putClaim(api: FakeApiServer, name: string): void {
  api.put(
    'resourceclaims',
    {
      metadata: { name, namespace: 'default' },
      spec: {
        devices: {
          requests: [
            {
              name: 'gpu',
              exactly: {
                deviceClassName: 'mdev.mdevkit.io',
                selectors: [
                  { cel: { expression: `device.attributes["${DRIVER}"].type == "nvidia-12"` } },
                ],
              },
            },
          ],
        },
      },
    },
    'resource.k8s.io',
  );
}

// ---- NodePrepareResources

{
  const api = await draApiServer();
  api.put(
    'deviceclasses',
    {
      metadata: { name: 'mdev.mdevkit.io' },
      spec: { selectors: [{ cel: { expression: `device.driver == "${DRIVER}"` } }] },
    },
    'resource.k8s.io',
  );
  const node = await startNode(api, 'prepare', 2);
  const allocator = new TestAllocator(api);
  const prepare: number[] = [];
  const unprepare: number[] = [];
  const again: number[] = [];
  const N = 300;
  for (let i = 0; i < N + 20; i++) {
    const name = `c${i}`;
    putClaim(api, name);
    const pod = { uid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, name: `p${i}` };
    allocator.allocate('default', name, pod);
    const uid = (api.get('resourceclaims', name, 'default', 'resource.k8s.io') as KubeObject)
      .metadata.uid!;
    const claims = [{ namespace: 'default', uid, name }];
    // The publication the last Unprepare set off runs in this process
    // (the fake API server too); let it finish so each call is measured
    // on its own, as on a node whose API server is elsewhere.
    await settle(node);
    let t = now();
    const r = await node.kubelet.nodePrepare(DRIVER, claims);
    const took = now() - t;
    if (r.claims[uid]?.error !== '') throw new Error(`prepare: ${r.claims[uid]?.error ?? '?'}`);
    await settle(node);
    t = now();
    await node.kubelet.nodePrepare(DRIVER, claims);
    const tookAgain = now() - t;
    t = now();
    const u = await node.kubelet.nodeUnprepare(DRIVER, claims);
    const tookUn = now() - t;
    if (u.claims[uid]?.error !== '') throw new Error(`unprepare: ${u.claims[uid]?.error ?? '?'}`);
    api.remove('resourceclaims', name, 'default', 'resource.k8s.io');
    // The first 20 warm up (JIT, first slices).
    if (i < 20) continue;
    prepare.push(took);
    again.push(tookAgain);
    unprepare.push(tookUn);
  }
  row('NodePrepareResources, one vGPU', prepare, again, 'p99 <= 20 ms');
  row('NodeUnprepareResources, one vGPU', unprepare, again, '');
  await node.stop();
  await api.stop();
}

// ---- slice publication on a node with 8 GPUs

async function publication(mode: 'uevents' | 'poll' | 'told'): Promise<number[]> {
  const api = await draApiServer();
  const node = await startNode(api, `pub-${mode}`, 8, mode === 'poll' ? 100 : undefined);
  const gpu = '0000:40:00.0';
  const samples: number[] = [];
  let foreign: string | undefined;
  for (let i = 0; i < 45; i++) {
    await node.driver.publisher.idle();
    await new Promise((r) => setTimeout(r, mode === 'poll' ? 20 + Math.random() * 100 : 2));
    const written = node.driver.publisher.nextWrite();
    const t = now();
    if (foreign === undefined) foreign = node.createMdev(gpu, 'nvidia-14');
    else {
      removeDevice(node.lab.port, foreign);
      foreign = undefined;
    }
    if (mode === 'told') node.driver.refresh();
    await written;
    if (i >= 5) samples.push(now() - t);
  }
  await node.stop();
  await api.stop();
  return samples;
}
{
  const told = await publication('told');
  row(
    '8-GPU node: slices after a change, uevents',
    await publication('uevents'),
    told,
    '<= 100 ms',
  );
  row(
    '8-GPU node: slices after a change, sysfs poll 100 ms',
    await publication('poll'),
    told,
    '<= 100 ms',
  );
}

// ---- the simulated fleet in DRA mode

{
  const one = await DraFleet.start({ nodes: 1, dir: path.join(dir, 'fleet-one') });
  const oneMs = one.readyAfterMs;
  await one.stop();
  const fleet = await DraFleet.start({ nodes: 100, dir: path.join(dir, 'fleet') });
  row('100 DRA nodes registered, pools published', fleet.readyAfterMs, oneMs, '');
  await fleet.stop();
}

table.print(
  'NodePrepareResources for a claim already prepared (Prepare/Unprepare rows); a publication the driver is told to make (slice rows); one node alone (fleet row)',
);
