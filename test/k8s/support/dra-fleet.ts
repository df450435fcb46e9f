import * as nodePath from 'node:path';
import type { FakeApiServer } from './fake-apiserver.js';
import { FLEET_PROFILES, type FleetProfile } from './fleet.js';
import { SimDraNode, draApiServer } from './sim-dra-node.js';

/**
 * The simulated fleet in DRA mode: N in-process labs (the device-plugin
 * fleet's profiles in turn, with their pre-existing devices, which are
 * someone else's), each with its DraDriver and fake kubelet, all
 * publishing to one fake API server that validates what they write.
 */

export interface DraFleetOptions {
  readonly nodes: number;
  readonly dir: string;
  readonly profiles?: readonly FleetProfile[];
  readonly log?: (line: string) => void;
}

export class DraFleet {
  readonly nodes: SimDraNode[] = [];
  /** ms from the fleet's start until each node was registered and had published its pool. */
  readonly readyAfterMs: number[] = [];

  private constructor(
    readonly api: FakeApiServer,
    readonly options: DraFleetOptions,
  ) {}

  static async start(options: DraFleetOptions): Promise<DraFleet> {
    const f = new DraFleet(await draApiServer(), options);
    const profiles = options.profiles ?? FLEET_PROFILES;
    for (let i = 0; i < options.nodes; i++) {
      const p = profiles[i % profiles.length]!;
      const name = `node-${String(i).padStart(3, '0')}`;
      f.api.put('nodes', { metadata: { name, labels: { 'mdevkit.io/profile': p.name } } });
      f.nodes.push(
        new SimDraNode({
          name,
          dir: nodePath.join(options.dir, name),
          profile: p.profile,
          api: f.api,
          devices: p.devices,
          ...(options.log !== undefined && { log: options.log }),
        }),
      );
    }
    const t0 = performance.now();
    await Promise.all(
      f.nodes.map(async (n, i) => {
        await n.start();
        f.readyAfterMs[i] = performance.now() - t0;
      }),
    );
    return f;
  }

  node(name: string): SimDraNode {
    const n = this.nodes.find((x) => x.name === name);
    if (n === undefined) throw new Error(`no node ${name}`);
    return n;
  }

  profileOf(node: SimDraNode): FleetProfile {
    const profiles = this.options.profiles ?? FLEET_PROFILES;
    return profiles[this.nodes.indexOf(node) % profiles.length]!;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
    await this.api.stop();
  }
}
