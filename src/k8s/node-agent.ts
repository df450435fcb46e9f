import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import type { Environment } from '../host/environment.js';
import type { PluginConfig } from './device-plugin/config.js';
import { MdevDeviceSource, type DeviceSource } from './device-plugin/devices.js';
import { pollHostChanges, watchDirectory, type HostChanges } from './device-plugin/host-changes.js';
import { DevicePluginManager } from './device-plugin/manager.js';
import { NodeConfigController, type ConfigApplier } from './node-config/controller.js';
import type { NodeApi } from './node-config/node-api.js';

/**
 * Everything mdevkit runs on a Kubernetes node, put together: the device
 * plugins of the host's devices and, when a node and a desired-state file
 * are known, the node configuration loop that applies the configuration a
 * node label names. `mdevkit k8s device-plugin` (src/cli/k8s.ts) builds
 * one from its options; the simulated fleet builds many in one process.
 */

export interface NodeAgentOptions {
  readonly env: Environment;
  readonly pluginDir: string;
  readonly config: PluginConfig;
  /** The host's /dev/vfio (health of IOMMU group nodes), when it has one. */
  readonly vfioDir?: string;
  /** Extra device sources (VF vGPUs); mdevs are always read. */
  readonly sources?: readonly DeviceSource[];
  /** Host change signals; default: the sysfs poll at the configured interval. /dev/vfio is watched besides. */
  readonly changes?: readonly HostChanges[];
  /** The node configuration loop: the node's API and the desired-state engine. */
  readonly nodeConfig?: { readonly api: NodeApi; readonly applier: ConfigApplier };
  readonly log?: (line: string) => void;
  readonly registerTimeoutMs?: number;
}

export class NodeAgent {
  readonly manager: DevicePluginManager;
  readonly controller: NodeConfigController | undefined;

  constructor(readonly options: NodeAgentOptions) {
    const { env, config } = options;
    const sources: DeviceSource[] = [
      new MdevDeviceSource(env.port, {
        ...(options.vfioDir !== undefined && { vfioDir: options.vfioDir }),
      }),
      ...(options.sources ?? []),
    ];
    const changes = [
      ...(options.changes ?? [pollHostChanges(env.port, config.pollIntervalMs)]),
      ...(options.vfioDir !== undefined ? [watchDirectory(options.vfioDir)] : []),
    ];
    this.manager = new DevicePluginManager({
      pluginDir: options.pluginDir,
      config,
      sources,
      changes,
      ...(options.log !== undefined && { log: options.log }),
      ...(options.registerTimeoutMs !== undefined && {
        registerTimeoutMs: options.registerTimeoutMs,
      }),
    });
    const nc = options.nodeConfig;
    this.controller =
      nc === undefined || config.nodeConfig === undefined
        ? undefined
        : new NodeConfigController({
            api: nc.api,
            applier: nc.applier,
            label: config.nodeConfig.label,
            hold: (types, reason) => {
              const resources = this.manager.resourcesOfTypes(types);
              const release = this.manager.hold((r) => resources.has(r), reason);
              return () => {
                release();
                // Devices the apply made or removed show at once, not at the next poll.
                this.manager.refresh();
              };
            },
            ...(options.log !== undefined && { log: options.log }),
          });
  }

  /** Start the plugins (resolves when all are registered) and the node configuration loop. */
  async start(): Promise<void> {
    // The configuration loop starts first: a node that rebooted into an
    // empty host gets its devices while the plugins come up.
    this.controller?.start();
    await this.manager.start();
  }

  async stop(): Promise<void> {
    await this.controller?.stop();
    await this.manager.stop();
  }
}

/** The host's /dev/vfio under `root`, when it is a directory. */
export function vfioDirOf(root: string): string | undefined {
  const dir = nodePath.join(root, 'dev', 'vfio');
  try {
    return fs.statSync(dir).isDirectory() ? dir : undefined;
  } catch {
    return undefined;
  }
}
