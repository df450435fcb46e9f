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
import { pollHostChanges } from '../k8s/device-plugin/host-changes.js';
import { VfDeviceSource, vfHostChanges } from '../k8s/device-plugin/vf-devices.js';
import { kubeNodeApi } from '../k8s/node-config/node-api.js';
import { combineProbes, procInUseProbe } from '../host/desired/in-use.js';
import type { Environment } from '../host/environment.js';
import type { ConfigApplier } from '../k8s/node-config/controller.js';
import { desiredApplier } from '../k8s/node-config/desired-applier.js';
import { kubeletInUse } from '../k8s/node-config/kubelet-checkpoint.js';
import {
  DEFAULT_CDI_DIR,
  DEFAULT_DRIVER_NAME,
  DEFAULT_PLUGINS_DIR,
  DEFAULT_REGISTRY_DIR,
} from '../k8s/dra/api.js';
import { desiredEngine } from '../k8s/dra/desired-engine.js';
import { AP_MASKS, DraDriver } from '../k8s/dra/driver.js';
import { kubeClaimSource, kubeEvents } from '../k8s/dra/kube.js';
import { isDriverName } from '../k8s/dra/names.js';
import { kubeSliceApi } from '../k8s/dra/publisher.js';
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
    // NVIDIA's VF vGPUs beside the mdevs (PCI_RESOURCE_<NAME> for KubeVirt).
    sources: [new VfDeviceSource(env.port, vfioDir === undefined ? {} : { vfioDir })],
    changes: [
      pollHostChanges(env.port, config.pollIntervalMs),
      vfHostChanges(env.port, config.pollIntervalMs),
    ],
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

const draOptions = {
  node: {
    type: 'string',
    value: 'NAME',
    help: 'the Kubernetes node this runs on, whose ResourceSlices it publishes (default $NODE_NAME)',
  },
  kubeconfig: devicePluginOptions.kubeconfig,
  'driver-name': {
    type: 'string',
    value: 'NAME',
    help: `the DRA driver's name, as DeviceClasses and ResourceSlices name it (default ${DEFAULT_DRIVER_NAME})`,
  },
  'plugins-dir': {
    type: 'string',
    value: 'DIR',
    help: `kubelet's plugin directory; the driver serves <DIR>/<driver>/dra.sock (default ${DEFAULT_PLUGINS_DIR})`,
  },
  'registry-dir': {
    type: 'string',
    value: 'DIR',
    help: `kubelet's plugin registration directory (default ${DEFAULT_REGISTRY_DIR})`,
  },
  'cdi-dir': {
    type: 'string',
    value: 'DIR',
    help: `where the container runtime reads CDI specs (default ${DEFAULT_CDI_DIR})`,
  },
  'poll-interval': {
    type: 'string',
    value: 'MS',
    help: 'how often sysfs is looked at for devices, parents and the AP masks (default 100)',
  },
} as const;

const draCommand = command({
  synopsis:
    '[--node NAME] [--kubeconfig FILE] [--driver-name NAME] [--plugins-dir DIR] [--registry-dir DIR] [--cdi-dir DIR] [--poll-interval MS]',
  description:
    "A Dynamic Resource Allocation driver (resource.k8s.io/v1) for the host's mediated devices. It publishes the node's ResourceSlices: each parent (GPU, GVT-g aperture, SIOV queue pool) a set of shared counters, each type it can create devices that consume them, and each AP queue guests may have a device of its own. The scheduler allocates claims from them; when kubelet prepares a claim, the driver creates the device — an mdev whose UUID is the claim's UID, or one vfio_ap matrix device holding the allocated queues — records it as the claim's, and writes CDI specs for /dev/vfio; unpreparing removes what it created and nothing else.\n\n" +
    'It registers with kubelet through <registry-dir>/<driver>-reg.sock and serves kubelet on <plugins-dir>/<driver>/dra.sock. Claims use the DeviceClasses of deploy/kubernetes/dra (mdev.mdevkit.io, crypto.mdev.mdevkit.io).\n\nRuns until SIGTERM or SIGINT.',
  options: draOptions,
  positionals: [],
  root: true,
  explain: (err) => (err instanceof K8sError ? err.message : undefined),
  run: (io, c) => runDra(io, c),
});

async function runDra(io: CommandIo, c: Call<typeof draOptions>): Promise<number> {
  const log = (line: string): void => {
    io.stderr.write(`${new Date().toISOString()} ${line}\n`);
  };
  const node = nodeNameFrom(c.values.node, io.env);
  if (node === undefined) {
    throw new K8sError(
      'no-node-name',
      'the DRA driver publishes ResourceSlices for its node: give --node NAME or set NODE_NAME',
    );
  }
  const driverName = c.values['driver-name'] ?? DEFAULT_DRIVER_NAME;
  if (!isDriverName(driverName)) {
    throw new K8sError(
      'invalid-driver-name',
      `--driver-name ${JSON.stringify(driverName)}: a DRA driver name is a DNS subdomain of at most 63 characters (lower case letters, digits, '-' and '.')`,
      { driver: driverName },
    );
  }
  const poll = c.values['poll-interval'] === undefined ? 100 : Number(c.values['poll-interval']);
  if (!Number.isInteger(poll) || poll < 5 || poll > 60_000) {
    throw new K8sError(
      'invalid-option',
      `--poll-interval ${c.values['poll-interval'] ?? ''}: a whole number of milliseconds from 5 to 60000`,
      { option: 'poll-interval' },
    );
  }
  const env = c.host();
  const kubeConfig = loadKubeConfig(
    c.values.kubeconfig === undefined ? undefined : nodePath.resolve(io.cwd, c.values.kubeconfig),
    io.env,
  );
  const dir = (v: string | undefined, fallback: string): string =>
    nodePath.resolve(io.cwd, v ?? fallback);
  const driver = new DraDriver({
    env,
    node,
    driverName,
    pluginsDir: dir(c.values['plugins-dir'], DEFAULT_PLUGINS_DIR),
    registryDir: dir(c.values['registry-dir'], DEFAULT_REGISTRY_DIR),
    cdiDir: dir(c.values['cdi-dir'], DEFAULT_CDI_DIR),
    engine: desiredEngine(env),
    claims: kubeClaimSource(kubeConfig),
    slices: kubeSliceApi(kubeConfig),
    events: kubeEvents(kubeConfig, node),
    changes: [pollHostChanges(env.port, poll, AP_MASKS)],
    log,
  });
  log(`DRA driver ${driverName} for node ${node} on ${env.port.description}`);
  const stopped = untilStopped();
  void driver.start().then(
    () => {
      log(
        `serving kubelet on ${driver.plugin.endpoint}, registered through ${driver.plugin.registrationSocket}`,
      );
      io.stdout.write(`ready ${driverName}\n`);
    },
    (err: unknown) => log(`starting: ${(err as Error).message}`),
  );
  const signal = await stopped;
  log(`${signal}: stopping`);
  await driver.stop();
  return 0;
}

export const K8S = group({
  description: 'mdevkit as a Kubernetes node component.',
  commands: {
    'device-plugin': {
      summary: "kubelet device plugin for the host's mdevs, with node configuration by label",
      load: () => devicePluginCommand,
    },
    dra: {
      summary:
        "Dynamic Resource Allocation driver: ResourceSlices of the host's mdev capacity, devices created when a claim is prepared",
      load: () => draCommand,
    },
  },
});
