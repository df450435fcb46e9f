/**
 * Issue 17's figures for the Kubernetes device plugin, each beside a
 * baseline measured the same way:
 *
 *  - Allocate: a kubelet client calling Allocate for one device, p50 and
 *    p99 over 2000 calls, beside GetDevicePluginOptions on the same socket
 *    (what a gRPC round trip over a unix socket costs); and a whole pod
 *    admission by the fake kubelet (GetPreferredAllocation + Allocate).
 *    Goal: Allocate p99 <= 5 ms.
 *  - ListAndWatch: from the sysfs write that creates (or removes) an mdev
 *    to kubelet holding the new list, with the lab's uevents and with the
 *    sysfs poll (50 ms, what `--root` uses), beside a refresh the plugin is
 *    told to do (the gRPC stream's own delay). Goal: <= 100 ms.
 *  - A fleet of 100 nodes started at once: from the start until each
 *    node's kubelet holds every resource's list, beside one node alone.
 *    Goal: all within 10 s.
 *  - A configuration label put on all 100 nodes: until each node reports
 *    mdevkit.io/config.state=success (applied by the desired-state engine,
 *    reported through the fake API server), beside one node alone. Goal:
 *    all within 30 s.
 *
 * Run: npm run bench k8s
 */
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createDevice, removeDevice } from '../src/host/sysfs-model.js';
import {
  call,
  devicePluginService,
  type DevicePluginClient,
} from '../src/k8s/device-plugin/api.js';
import { endpointName } from '../src/k8s/device-plugin/resource-name.js';
import { unixTarget } from '../src/k8s/grpc/unix-socket.js';
import { Fleet, desiredApplierFor } from '../test/k8s/support/fleet.js';
import { parsePluginConfig } from '../src/k8s/device-plugin/config.js';
import { SimNode, profileOf } from '../test/k8s/support/sim-node.js';
import { LatencyTable } from './support/latency-table.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdevkit-k8s-bench-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

const table = new LatencyTable();
const row = table.row.bind(table);

const GPU_A = '0000:85:00.0';
const MTTY = profileOf('bench', [
  { driver: 'mtty', options: { ports: 4096 } },
  { driver: 'nvidia-m60' },
]);
const now = (): number => performance.now();

// ---- Allocate

{
  const node = new SimNode({
    name: 'alloc',
    dir: path.join(dir, 'alloc'),
    profile: MTTY,
    devices: [{ parent: 'mtty', type: 'mtty-1', count: 64 }],
  });
  await node.start();
  const resource = 'mdevkit.io/mtty-1';
  const Client = devicePluginService();
  const client = new Client(
    unixTarget(path.join(node.pluginDir, endpointName(resource))),
    grpc.credentials.createInsecure(),
  ) as unknown as DevicePluginClient;
  const ids = node.kubelet.healthy(resource);
  const N = 2000;
  const timeIt = async (fn: (i: number) => Promise<unknown>): Promise<number[]> => {
    for (let i = 0; i < 200; i++) await fn(i); // warm-up
    const out: number[] = [];
    for (let i = 0; i < N; i++) {
      const t0 = now();
      await fn(i);
      out.push(now() - t0);
    }
    return out;
  };
  const options = await timeIt(() => call(client.GetDevicePluginOptions, client, {}));
  const allocate = await timeIt((i) =>
    call(client.Allocate, client, {
      container_requests: [{ devices_ids: [ids[i % ids.length]!] }],
    }),
  );
  const admit = await timeIt(async (i) => {
    await node.kubelet.admit({
      uid: `p${i}`,
      containers: [{ name: 'c', limits: { [resource]: 2 } }],
    });
    node.kubelet.removePod(`p${i}`);
  });
  row('Allocate, 1 device', allocate, options, 'p99 <= 5 ms');
  row('pod admission, 2 devices', admit, options, '');
  client.close();
  await node.stop();
}

// ---- ListAndWatch

async function listAndWatch(changes: 'uevents' | 'poll' | 'direct'): Promise<number[]> {
  const node = new SimNode({
    name: `lw-${changes}`,
    dir: path.join(dir, `lw-${changes}`),
    profile: MTTY,
    devices: [{ parent: GPU_A, type: 'nvidia-16', count: 1 }],
    changes: changes === 'poll' ? 'poll' : 'uevents',
  });
  await node.start();
  const resource = 'mdevkit.io/nvidia-16';
  const out: number[] = [];
  for (let i = 0; i < 100; i++) {
    const create = i % 2 === 0;
    const target = create ? 2 : 1;
    const seen = new Promise<void>((resolve) => {
      const on = (r: string, devices: unknown[]): void => {
        if (r === resource && devices.length === target) {
          node.kubelet.off('devices', on);
          resolve();
        }
      };
      node.kubelet.on('devices', on);
    });
    const t0 = now();
    if (create)
      createDevice(node.lab.port, GPU_A, 'nvidia-16', 'beef0000-0000-4000-8000-000000000001');
    else removeDevice(node.lab.port, 'beef0000-0000-4000-8000-000000000001');
    if (changes === 'direct') node.manager.refresh();
    await seen;
    out.push(now() - t0);
    await new Promise((r) => setTimeout(r, 3 + (i % 7)));
  }
  await node.stop();
  return out;
}
{
  const direct = await listAndWatch('direct');
  row('ListAndWatch after a change: uevents', await listAndWatch('uevents'), direct, '<= 100 ms');
  row(
    'ListAndWatch after a change: sysfs poll 50 ms',
    await listAndWatch('poll'),
    direct,
    '<= 100 ms',
  );
}

// ---- fleet registration

{
  const one = await Fleet.start({ nodes: 1, dir: path.join(dir, 'one') });
  const oneMs = one.registeredAfterMs;
  await one.stop();
  const fleet = await Fleet.start({ nodes: 100, dir: path.join(dir, 'fleet') });
  row('100 nodes registered and listed', fleet.registeredAfterMs, oneMs, 'all <= 10000 ms');
  await fleet.stop();
}

// ---- configuration rollout

async function rollout(nodes: number, where: string): Promise<number[]> {
  const d = path.join(dir, where);
  fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(
    path.join(d, 'host.yaml'),
    'version: 1\nconfigs:\n  serial:\n    entries:\n      - parents: mtty\n        devices: [{ type: mtty-2, count: 2 }]\n',
  );
  const fleet = await Fleet.start({
    nodes,
    dir: d,
    config: parsePluginConfig(
      'version: 1\nnodeConfig: { file: host.yaml }\n',
      path.join(d, 'dp.yaml'),
    ),
    applier: desiredApplierFor(path.join(d, 'host.yaml')),
  });
  const done = new Map<string, number>();
  const all = new Promise<void>((resolve) => {
    fleet.api!.on(
      'change',
      (
        _type: string,
        resource: string,
        obj: { metadata: { name: string; labels?: Record<string, string> } },
      ) => {
        if (resource !== 'nodes' || done.has(obj.metadata.name)) return;
        if (obj.metadata.labels?.['mdevkit.io/config.state'] !== 'success') return;
        done.set(obj.metadata.name, now() - t0);
        if (done.size === nodes) resolve();
      },
    );
  });
  const t0 = now();
  for (const n of fleet.nodes) fleet.api!.labelNode(n.name, { 'mdevkit.io/config': 'serial' });
  await all;
  await fleet.stop();
  return [...done.values()];
}
{
  const single = await rollout(1, 'rollout-one');
  row(
    'config applied + reported on 100 nodes',
    await rollout(100, 'rollout'),
    single,
    'all <= 30000 ms',
  );
}

table.print(
  'GetDevicePluginOptions on the same socket (Allocate rows); a refresh the plugin is told to do (ListAndWatch rows); one node alone (fleet rows)',
);
