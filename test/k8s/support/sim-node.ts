import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { environmentAt, type Environment } from '../../../src/host/environment.js';
import { createDevice } from '../../../src/host/sysfs-model.js';
import { DEFAULT_PLUGIN_CONFIG, type PluginConfig } from '../../../src/k8s/device-plugin/config.js';
import { MdevDeviceSource } from '../../../src/k8s/device-plugin/devices.js';
import { pollHostChanges, ueventChanges } from '../../../src/k8s/device-plugin/host-changes.js';
import { DevicePluginManager } from '../../../src/k8s/device-plugin/manager.js';
import { Lab } from '../../../src/sim/lab.js';
import { parseProfile, type HostProfile } from '../../../src/sim/profiles/profile.js';
import { FakeKubelet } from './fake-kubelet.js';

/**
 * One simulated Kubernetes node: an emulated lab host (in process), its
 * device plugins (the real DevicePluginManager over the lab's sysfs port),
 * and a fake kubelet in its own device plugin directory. The fleet
 * (fleet.ts) is many of these; single-node tests use one.
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
}

export class SimNode {
  readonly name: string;
  readonly lab: Lab;
  readonly env: Environment;
  readonly pluginDir: string;
  kubelet!: FakeKubelet;
  manager!: DevicePluginManager;
  readonly source: MdevDeviceSource;
  #serial = 0;

  constructor(readonly options: SimNodeOptions) {
    this.name = options.name;
    this.lab = new Lab(options.profile);
    fs.mkdirSync(nodePath.join(options.dir, 'etc', 'mdevctl.d'), { recursive: true });
    this.env = environmentAt(options.dir, this.lab.port);
    this.pluginDir = nodePath.join(options.dir, 'dp');
    this.source = new MdevDeviceSource(this.lab.port);
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
    this.manager = new DevicePluginManager({
      pluginDir: this.pluginDir,
      config,
      sources: [this.source],
      changes: [changes],
      ...(this.options.log !== undefined && { log: this.options.log }),
      ...(this.options.registerTimeoutMs !== undefined && {
        registerTimeoutMs: this.options.registerTimeoutMs,
      }),
    });
    await this.manager.start();
  }

  async stop(): Promise<void> {
    await this.manager?.stop();
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
