import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { environmentAt, type Environment } from '../../../src/host/environment.js';
import { createDevice } from '../../../src/host/sysfs-model.js';
import { DEFAULT_PLUGIN_CONFIG, type PluginConfig } from '../../../src/k8s/device-plugin/config.js';
import { pollHostChanges, ueventChanges } from '../../../src/k8s/device-plugin/host-changes.js';
import type { DevicePluginManager } from '../../../src/k8s/device-plugin/manager.js';
import { NodeAgent } from '../../../src/k8s/node-agent.js';
import type { ConfigApplier } from '../../../src/k8s/node-config/controller.js';
import { kubeNodeApi } from '../../../src/k8s/node-config/node-api.js';
import { Lab } from '../../../src/sim/lab.js';
import { parseProfile, type HostProfile } from '../../../src/sim/profiles/profile.js';
import type { FakeApiServer } from './fake-apiserver.js';
import { FakeKubelet } from './fake-kubelet.js';
import { waitFor } from './wait.js';

/**
 * One simulated Kubernetes node: an emulated lab host (in process), what
 * `mdevkit k8s device-plugin` runs on a node (the real NodeAgent: device
 * plugins over the lab's sysfs port, and with an API server the node
 * configuration loop over the official client), and a fake kubelet in its
 * own device plugin directory. The fleet (fleet.ts) is many of these;
 * single-node tests use one.
 *
 * The plugins see the lab only through sysfs, as on a host. Host changes
 * reach them as the lab's kernel uevents (`changes: 'uevents'`, what a
 * host with a uevent listener would have) or through the sysfs poll
 * (`changes: 'poll'`, what `mdevkit k8s device-plugin --root` does).
 */

export interface SimNodeOptions {
  readonly name: string;
  /** Where the node keeps its files (device plugin dir, mdevctl.d). */
  readonly dir: string;
  readonly profile: HostProfile;
  /** mdevs to create before the plugins start: parent, type, how many. */
  readonly devices?: readonly { parent: string; type: string; count: number }[];
  readonly config?: PluginConfig;
  readonly changes?: 'uevents' | 'poll';
  readonly pollIntervalMs?: number;
  readonly dialTimeoutMs?: number;
  readonly registerTimeoutMs?: number;
  readonly log?: (line: string) => void;
  /** Node configuration: the API server holding this node's Node, and the applier. */
  readonly nodeConfig?: {
    readonly api: FakeApiServer;
    readonly applier: (node: SimNode) => ConfigApplier;
  };
}

export class SimNode {
  readonly name: string;
  readonly lab: Lab;
  readonly env: Environment;
  readonly pluginDir: string;
  kubelet!: FakeKubelet;
  agent!: NodeAgent;
  #serial = 0;

  constructor(readonly options: SimNodeOptions) {
    this.name = options.name;
    this.lab = new Lab(options.profile);
    fs.mkdirSync(nodePath.join(options.dir, 'etc', 'mdevctl.d'), { recursive: true });
    this.env = environmentAt(options.dir, this.lab.port);
    this.pluginDir = nodePath.join(options.dir, 'dp');
    for (const d of options.devices ?? []) {
      for (let i = 0; i < d.count; i++) this.createMdev(d.parent, d.type);
    }
  }

  /** A UUID unique in the fleet: node index and a serial. */
  nextUuid(): string {
    const n = (this.#serial++).toString(16).padStart(12, '0');
    const h = Buffer.from(this.name).toString('hex').padEnd(8, '0').slice(-8);
    return `${h}-0000-4000-8000-${n}`;
  }

  /** echo UUID > .../create, through sysfs as any tool would. */
  createMdev(parent: string, type: string): string {
    const uuid = this.nextUuid();
    createDevice(this.lab.port, parent, type, uuid);
    return uuid;
  }

  /** Start kubelet, then the plugins; resolves when every resource is registered. */
  async start(): Promise<void> {
    this.kubelet = await FakeKubelet.start({
      dir: this.pluginDir,
      name: this.name,
      ...(this.options.dialTimeoutMs !== undefined && {
        dialTimeoutMs: this.options.dialTimeoutMs,
      }),
    });
    const config = this.options.config ?? DEFAULT_PLUGIN_CONFIG;
    const changes =
      this.options.changes === 'poll'
        ? pollHostChanges(this.lab.port, this.options.pollIntervalMs ?? config.pollIntervalMs)
        : ueventChanges((l) => this.lab.kernel.onUevent(l));
    const nc = this.options.nodeConfig;
    this.agent = new NodeAgent({
      env: this.env,
      pluginDir: this.pluginDir,
      config,
      changes: [changes],
      ...(nc !== undefined && {
        nodeConfig: {
          api: kubeNodeApi({ kubeConfig: nc.api.kubeConfig(), node: this.name, retryMs: 200 }),
          applier: nc.applier(this),
        },
      }),
      ...(this.options.log !== undefined && { log: this.options.log }),
      ...(this.options.registerTimeoutMs !== undefined && {
        registerTimeoutMs: this.options.registerTimeoutMs,
      }),
    });
    await this.agent.start();
    await this.advertised();
  }

  /**
   * Resolves when kubelet has every resource's device list: Register
   * returns before the first ListAndWatch message arrives, and a resource
   * without its list has no allocatable devices yet.
   */
  async advertised(timeoutMs = 30_000): Promise<void> {
    const resources = this.manager.status().map((s) => s.resource);
    await waitFor(
      `${this.name}: kubelet has the device lists`,
      () => resources.every((r) => this.kubelet.isConnected(r)),
      timeoutMs,
      2,
    );
  }

  get manager(): DevicePluginManager {
    return this.agent.manager;
  }

  async stop(): Promise<void> {
    await this.agent?.stop();
    this.kubelet?.stop();
  }
}

/** A profile from inline device entries. */
export function profileOf(
  name: string,
  devices: { driver: string; options?: Record<string, unknown> }[],
): HostProfile {
  return parseProfile({ name, devices }, `${name} profile`);
}
