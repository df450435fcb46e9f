import * as nodePath from 'node:path';
import type { PluginConfig } from '../../../src/k8s/device-plugin/config.js';
import type { ConfigApplier } from '../../../src/k8s/node-config/controller.js';
import { desiredApplier } from '../../../src/k8s/node-config/desired-applier.js';
import { kubeletInUse } from '../../../src/k8s/node-config/kubelet-checkpoint.js';
import type { HostProfile } from '../../../src/sim/profiles/profile.js';
import { FakeApiServer } from './fake-apiserver.js';
import { SimNode, profileOf } from './sim-node.js';

/**
 * A simulated cluster: N nodes, each an in-process emulated lab with its
 * own device plugins (NodeAgent) and fake kubelet, and — for node
 * configuration — one fake API server holding a Node per node, which every
 * node's agent watches through the official client. Nodes get their lab
 * from a list of profiles in turn, so a fleet mixes hosts: NVIDIA M60
 * boards, Intel GVT-g with a SIOV accelerator, both, and small
 * sample-driver hosts.
 *
 * Everything runs in one process (2 cores here): what the fleet measures
 * is the plugins' and stand-ins' own cost, with no network in between.
 */

export interface FleetProfile {
  readonly name: string;
  readonly profile: HostProfile;
  /** mdevs made through sysfs before the plugins start (someone else's, for the desired state). */
  readonly devices: readonly { parent: string; type: string; count: number }[];
}

const GPU_A = '0000:85:00.0';
const GPU_B = '0000:86:00.0';
const IGD = '0000:00:02.0';
const DSA = '0000:6a:01.0';

export const FLEET_PROFILES: readonly FleetProfile[] = [
  {
    name: 'grid',
    profile: profileOf('grid', [{ driver: 'nvidia-m60' }, { driver: 'mtty' }]),
    devices: [
      { parent: GPU_A, type: 'nvidia-16', count: 4 },
      { parent: GPU_B, type: 'nvidia-16', count: 2 },
    ],
  },
  {
    name: 'gvt-siov',
    profile: profileOf('gvt-siov', [{ driver: 'gvt' }, { driver: 'siov' }, { driver: 'mtty' }]),
    devices: [
      { parent: IGD, type: 'i915-GVTg_V5_4', count: 2 },
      { parent: DSA, type: 'idxd-1wq', count: 8 },
    ],
  },
  {
    name: 'mixed',
    profile: profileOf('mixed', [{ driver: 'nvidia-m60' }, { driver: 'gvt' }, { driver: 'mtty' }]),
    devices: [
      { parent: GPU_A, type: 'nvidia-18', count: 1 },
      { parent: IGD, type: 'i915-GVTg_V5_8', count: 1 },
      { parent: 'mtty', type: 'mtty-1', count: 2 },
    ],
  },
  {
    name: 'samples',
    profile: profileOf('samples', [{ driver: 'mtty' }, { driver: 'mdpy' }, { driver: 'mbochs' }]),
    devices: [{ parent: 'mtty', type: 'mtty-2', count: 2 }],
  },
];

export interface FleetOptions {
  readonly nodes: number;
  readonly dir: string;
  readonly profiles?: readonly FleetProfile[];
  readonly config?: PluginConfig;
  /** With node configuration: a fake API server and each node's applier. */
  readonly applier?: (node: SimNode) => ConfigApplier;
  readonly log?: (line: string) => void;
}

export class Fleet {
  readonly nodes: SimNode[] = [];
  api: FakeApiServer | undefined;
  /** ms from the fleet's start until each node's plugins were all registered. */
  readonly registeredAfterMs: number[] = [];

  private constructor(readonly options: FleetOptions) {}

  /** Build every node and start them all at once; resolves when every plugin is registered. */
  static async start(options: FleetOptions): Promise<Fleet> {
    const f = new Fleet(options);
    if (options.applier !== undefined) f.api = await FakeApiServer.start();
    const profiles = options.profiles ?? FLEET_PROFILES;
    for (let i = 0; i < options.nodes; i++) {
      const p = profiles[i % profiles.length]!;
      const name = `node-${String(i).padStart(3, '0')}`;
      f.api?.put('nodes', {
        metadata: {
          name,
          labels: { 'kubernetes.io/hostname': name, 'mdevkit.io/profile': p.name },
        },
      });
      f.nodes.push(
        new SimNode({
          name,
          dir: nodePath.join(options.dir, name),
          profile: p.profile,
          devices: p.devices,
          ...(options.config !== undefined && { config: options.config }),
          ...(f.api !== undefined &&
            options.applier !== undefined && {
              nodeConfig: { api: f.api, applier: options.applier },
            }),
          ...(options.log !== undefined && { log: options.log }),
        }),
      );
    }
    const t0 = performance.now();
    await Promise.all(
      f.nodes.map(async (n, i) => {
        await n.start();
        f.registeredAfterMs[i] = performance.now() - t0;
      }),
    );
    return f;
  }

  profileOf(node: SimNode): FleetProfile {
    const profiles = this.options.profiles ?? FLEET_PROFILES;
    return profiles[this.nodes.indexOf(node) % profiles.length]!;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
    await this.api?.stop();
  }
}

/**
 * The desired-state engine as each node's applier, on `file`, as
 * `mdevkit k8s device-plugin` wires it: devices kubelet gave to pods (its
 * checkpoint) are in use, and so are those a VM of the lab holds open.
 */
export function desiredApplierFor(file: string): (node: SimNode) => ConfigApplier {
  return (node) => {
    const checkpoint = kubeletInUse(node.pluginDir);
    return desiredApplier(node.env, file, {
      inUse: () => {
        const pods = checkpoint();
        return (uuid) => {
          const d = node.lab.core.device(uuid);
          return pods(uuid) ?? (d !== undefined && d.openCount > 0 ? 'open by a VM' : undefined);
        };
      },
    });
  };
}
