import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { FakeApiServer, KubeObject } from '../support/fake-apiserver.js';
import { TestAllocator } from '../support/dra-allocator.js';
import type { DraPod } from '../support/fake-dra-kubelet.js';
import { draApiServer, SimDraNode, DRIVER } from '../support/sim-dra-node.js';
import { profileOf } from '../support/sim-node.js';
import type { HostProfile } from '../../../src/sim/profiles/profile.js';

/** Shared by the DRA tests: a node on a fake cluster, claims, pods. */

export { DRIVER };

const DEPLOY = new URL('../../../deploy/kubernetes/dra/', import.meta.url).pathname;

/** The DeviceClasses of deploy/kubernetes/dra, put into the API server as kubectl apply would. */
export function applyDeviceClasses(api: FakeApiServer): void {
  const text = fs.readFileSync(nodePath.join(DEPLOY, 'deviceclass.yaml'), 'utf8');
  for (const d of parseAllDocuments(text))
    api.put('deviceclasses', d.toJS() as KubeObject, 'resource.k8s.io');
}

export const LAB_PROFILE: HostProfile = profileOf('dra-lab', [
  { driver: 'nvidia-m60' },
  { driver: 'gvt' },
  { driver: 'siov' },
  {
    driver: 'vfio-ap',
    options: {
      apxa: true,
      adapters: [
        { id: 3, type: 'CEX7', mode: 'cca' },
        { id: 5, type: 'CEX8', mode: 'ep11' },
        { id: 6, type: 'CEX8', mode: 'cca' },
      ],
      domains: [4, 71, 255],
      apmask: '-5,-6',
      aqmask: '-0x47,-0xff',
    },
  },
]);

export interface Cluster {
  readonly api: FakeApiServer;
  readonly node: SimDraNode;
  readonly allocator: TestAllocator;
  readonly dir: string;
  readonly log: string[];
  stop(): Promise<void>;
}

export async function startCluster(
  options: {
    profile?: HostProfile;
    devices?: { parent: string; type: string; count: number }[];
    afterCreate?: ConstructorParameters<typeof SimDraNode>[0]['afterCreate'];
  } = {},
): Promise<Cluster> {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'mdevkit-dra-'));
  const api = await draApiServer();
  applyDeviceClasses(api);
  const log: string[] = [];
  api.put('nodes', { metadata: { name: 'node-a' } });
  const node = new SimDraNode({
    name: 'node-a',
    dir,
    profile: options.profile ?? LAB_PROFILE,
    api,
    log: (l) => log.push(l),
    ...(options.devices !== undefined && { devices: options.devices }),
    ...(options.afterCreate !== undefined && { afterCreate: options.afterCreate }),
  });
  await node.start();
  return {
    api,
    node,
    allocator: new TestAllocator(api),
    dir,
    log,
    async stop() {
      await node.stop();
      await api.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

let podSerial = 0;

/**
 * A claim as a user writes it, then a pod using it: the claim is
 * allocated (the test allocator) and reserved for the pod.
 */
export function claimFor(
  c: Cluster,
  name: string,
  requests: { name: string; className?: string; selectors?: string[]; count?: number }[],
  constraints: { requests?: string[]; matchAttribute: string }[] = [],
  namespace = 'default',
): { pod: DraPod; claim: KubeObject } {
  c.api.put(
    'resourceclaims',
    {
      metadata: { name, namespace },
      spec: {
        devices: {
          requests: requests.map((r) => ({
            name: r.name,
            exactly: {
              deviceClassName: r.className ?? 'mdev.mdevkit.io',
              ...(r.count !== undefined && { count: r.count }),
              ...(r.selectors !== undefined && {
                selectors: r.selectors.map((expression) => ({ cel: { expression } })),
              }),
            },
          })),
          ...(constraints.length > 0 && { constraints }),
        },
      },
    },
    'resource.k8s.io',
  );
  const pod = {
    uid: `00000000-0000-4000-8000-${String(++podSerial).padStart(12, '0')}`,
    name: `pod-${name}`,
    namespace,
    claims: [name],
  };
  c.allocator.allocate(namespace, name, pod);
  return { pod, claim: c.api.get('resourceclaims', name, namespace, 'resource.k8s.io')! };
}

/** `device.attributes["mdev.mdevkit.io"].<attr> == <value>` */
export const attr = (name: string, value: string | number | boolean): string =>
  `device.attributes["${DRIVER}"].${name} == ${JSON.stringify(value)}`;

/** Events recorded about a claim. */
export function claimEvents(
  api: FakeApiServer,
  claim: string,
  namespace = 'default',
): KubeObject[] {
  return api
    .list('events', namespace)
    .filter((e) => (e['involvedObject'] as { name?: string; kind?: string }).name === claim);
}
