import * as nodePath from 'node:path';
import type { CommandIo } from '../ctl/io.js';
import { DEFAULT_DEVICE_PLUGIN_DIR } from '../k8s/device-plugin/api.js';
import {
  DEFAULT_PLUGIN_CONFIG,
  loadPluginConfig,
  type PluginConfig,
} from '../k8s/device-plugin/config.js';
import { K8sError } from '../k8s/errors.js';
import { loadKubeConfig, nodeNameFrom } from '../k8s/kube/client.js';
import { NodeAgent, vfioDirOf } from '../k8s/node-agent.js';
import { kubeNodeApi } from '../k8s/node-config/node-api.js';
import { combineProbes, procInUseProbe } from '../host/desired/in-use.js';
import type { Environment } from '../host/environment.js';
import type { ConfigApplier } from '../k8s/node-config/controller.js';
import { desiredApplier } from '../k8s/node-config/desired-applier.js';
import { kubeletInUse } from '../k8s/node-config/kubelet-checkpoint.js';
import { command, group, untilStopped, type Call } from './command.js';

/**
 * `mdevkit k8s ...`: mdevkit as a Kubernetes node component. Only wiring
 * here; the plugins and the node configuration loop are src/k8s.
 */

const devicePluginOptions = {
  'device-plugin-dir': {
    type: 'string',
    value: 'DIR',
    help: `where kubelet looks for device plugins (default ${DEFAULT_DEVICE_PLUGIN_DIR})`,
  },
  config: {
    type: 'string',
    value: 'FILE',
    help: 'resource names and node configuration (YAML; default: every mdev type with devices as mdevkit.io/<type>)',
  },
  node: {
    type: 'string',
    value: 'NAME',
    help: 'the Kubernetes node this runs on (default $NODE_NAME); without one, nothing is watched: it only advertises',
  },
  kubeconfig: {
    type: 'string',
    value: 'FILE',
    help: 'credentials for the API server (default: $KUBECONFIG, else the pod service account)',
  },
} as const;

const devicePluginCommand = command({
  synopsis: '[--device-plugin-dir DIR] [--config FILE] [--node NAME] [--kubeconfig FILE]',
  description:
    "A kubelet device plugin for the host's mediated devices: one resource per mdev type (or as the configuration names them), served on sockets in the device plugin directory and registered with kubelet; KubeVirt consumes them with permittedHostDevices.mediatedDevices[].externalResourceProvider: true.\n\n" +
    "With a node (--node or $NODE_NAME) and a configuration's nodeConfig, it also watches its Node: the label (mdevkit.io/config by default) names the configuration of the desired-state file to apply, and the outcome is reported in the label mdevkit.io/config.state and in Events.\n\nRuns until SIGTERM or SIGINT.",
  options: devicePluginOptions,
  positionals: [],
  root: true,
  explain: (err) => (err instanceof K8sError ? err.message : undefined),
  run: (io, c) => runDevicePlugin(io, c),
});

async function runDevicePlugin(
  io: CommandIo,
  c: Call<typeof devicePluginOptions>,
): Promise<number> {
  const log = (line: string): void => {
    io.stderr.write(`${new Date().toISOString()} ${line}\n`);
  };
  const env = c.host();
  const config: PluginConfig =
    c.values.config === undefined
      ? DEFAULT_PLUGIN_CONFIG
      : loadPluginConfig(nodePath.resolve(io.cwd, c.values.config));
  const pluginDir = nodePath.resolve(
    io.cwd,
    c.values['device-plugin-dir'] ?? DEFAULT_DEVICE_PLUGIN_DIR,
  );
  const node = nodeNameFrom(c.values.node, io.env);
  let nodeConfig: ConstructorParameters<typeof NodeAgent>[0]['nodeConfig'];
  if (node === undefined) {
    log('no node name (--node, $NODE_NAME): advertising only, no node configuration');
  } else if (config.nodeConfig === undefined) {
    log(`node ${node}: the configuration has no nodeConfig: advertising only`);
  } else {
    const kubeConfig = loadKubeConfig(
      c.values.kubeconfig === undefined ? undefined : nodePath.resolve(io.cwd, c.values.kubeconfig),
      io.env,
    );
    nodeConfig = {
      api: kubeNodeApi({ kubeConfig, node, log }),
      applier: nodeApplier(env, config.nodeConfig.file, pluginDir),
    };
    log(
      `node ${node}: configuration from label ${config.nodeConfig.label}, file ${config.nodeConfig.file}`,
    );
  }
  const vfioDir = vfioDirOf(env.root);
  const agent = new NodeAgent({
    env,
    pluginDir,
    config,
    ...(vfioDir !== undefined && { vfioDir }),
    ...(nodeConfig !== undefined && { nodeConfig }),
    log,
  });
  log(`device plugins for ${env.port.description} in ${pluginDir}`);
  const stopped = untilStopped();
  void agent.start().then(
    () => {
      const names = agent.manager.status().map((s) => s.resource);
      log(`registered with kubelet: ${names.join(', ') || '(no resources yet)'}`);
      io.stdout.write(`ready ${names.join(' ')}\n`);
    },
    (err: unknown) => log(`starting: ${(err as Error).message}`),
  );
  const signal = await stopped;
  log(`${signal}: stopping`);
  await agent.stop();
  return 0;
}

/**
 * The desired-state engine behind the node configuration loop, told which
 * devices are in use: those kubelet gave to pods (its checkpoint) and, on
 * a host seen from its own root, those a process holds open.
 */
function nodeApplier(env: Environment, file: string, pluginDir: string): ConfigApplier {
  const checkpoint = kubeletInUse(pluginDir);
  return desiredApplier(env, file, {
    inUse: () =>
      combineProbes(checkpoint(), env.root === '/' ? procInUseProbe(env.port) : undefined),
  });
}

export const K8S = group({
  description: 'mdevkit as a Kubernetes node component.',
  commands: {
    'device-plugin': {
      summary: "kubelet device plugin for the host's mdevs, with node configuration by label",
      load: () => devicePluginCommand,
    },
  },
});
