import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { after, before, describe, it } from 'node:test';
import { endpointName } from '../../src/k8s/device-plugin/resource-name.js';
import { requires } from '../support/capabilities.js';
import { MDEVKIT_BIN, runMdevkit } from '../support/cli.js';
import { tmpDir } from '../support/tmp.js';
import { FUSE_NEEDS, serveLab, type ServedLab } from '../fuse/served-lab.js';
import { FakeApiServer } from './support/fake-apiserver.js';
import { FakeKubelet } from './support/fake-kubelet.js';
import { waitFor } from './support/wait.js';

/**
 * `mdevkit k8s device-plugin` as it runs on a node: the built CLI, in its
 * own process, on a FUSE-served lab (--root), with a fake kubelet in the
 * test's process. Devices are made by writing sysfs, as any tool would;
 * the plugin notices them through its sysfs poll.
 */

const GPU = '0000:85:00.0';
const U = (n: number): string => `cafe0000-0000-4000-8000-${String(n).padStart(12, '0')}`;

interface Running {
  readonly child: ChildProcess;
  out: string;
  err: string;
  readonly exited: Promise<number | null>;
}

function startPlugin(args: string[], env: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, [MDEVKIT_BIN, 'k8s', 'device-plugin', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_NAME: '', ...env },
  });
  const r: Running = {
    child,
    out: '',
    err: '',
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
  };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (r.out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (r.err += d));
  return r;
}

describe('mdevkit k8s device-plugin on a FUSE-served lab', () => {
  let lab: ServedLab | undefined;
  let kubelet: FakeKubelet | undefined;
  let plugin: Running | undefined;
  let pluginDir: string;

  before(async () => {
    if (!FUSE_NEEDS.root || !FUSE_NEEDS.fuse) return;
    lab = await serveLab();
    pluginDir = nodePath.join(tmpDir(), 'device-plugins');
    kubelet = await FakeKubelet.start({ dir: pluginDir });
    for (const n of [1, 2]) {
      fs.writeFileSync(
        `${lab.sys}/class/mdev_bus/${GPU}/mdev_supported_types/nvidia-16/create`,
        U(n),
      );
    }
  });
  after(async () => {
    plugin?.child.kill('SIGKILL');
    kubelet?.stop();
    await lab?.close();
  });

  it('serves and registers every type that has devices, from the lab root', async (t) => {
    if (!requires(t, FUSE_NEEDS, 'serves a lab over FUSE')) return;
    plugin = startPlugin(['--root', lab!.dir, '--device-plugin-dir', pluginDir]);
    await waitFor('ready', () => plugin!.out.includes('ready'), 20_000);
    assert.equal(plugin.out, 'ready mdevkit.io/nvidia-16\n');
    assert.match(plugin.err, /no node name .*advertising only/);
    await waitFor('the list', () => kubelet!.isConnected('mdevkit.io/nvidia-16'));
    assert.deepEqual(kubelet!.healthy('mdevkit.io/nvidia-16'), [U(1), U(2)]);
    const st = fs.statSync(nodePath.join(pluginDir, endpointName('mdevkit.io/nvidia-16')));
    assert.equal(st.mode & 0o777, 0o600);
  });

  it('sees a device made and one removed through sysfs, and allocates it', async (t) => {
    if (!requires(t, FUSE_NEEDS, 'serves a lab over FUSE')) return;
    fs.writeFileSync(
      `${lab!.sys}/class/mdev_bus/${GPU}/mdev_supported_types/nvidia-16/create`,
      U(3),
    );
    await waitFor('the new device', () => kubelet!.healthy('mdevkit.io/nvidia-16').includes(U(3)));
    fs.writeFileSync(`${lab!.sys}/bus/mdev/devices/${U(1)}/remove`, '1');
    await waitFor(
      'the removal',
      () => !kubelet!.devices('mdevkit.io/nvidia-16').some((d) => d.ID === U(1)),
    );
    const [c] = await kubelet!.admit({
      uid: 'vm',
      containers: [{ name: 'compute', limits: { 'mdevkit.io/nvidia-16': 2 } }],
    });
    assert.deepEqual([...c!.devices].sort(), [U(2), U(3)]);
    const groups = c!.devices.map((u) =>
      nodePath.basename(fs.readlinkSync(`${lab!.sys}/bus/mdev/devices/${u}/iommu_group`)),
    );
    assert.deepEqual(
      c!.response.devices.map((d) => d.host_path),
      ['/dev/vfio/vfio', ...groups.map((g) => `/dev/vfio/${g}`)],
    );
    assert.equal(c!.response.envs['MDEV_PCI_RESOURCE_MDEVKIT_IO_NVIDIA-16'], c!.devices.join(','));
  });

  it('registers again when kubelet restarts, and on SIGTERM removes its sockets and exits 0', async (t) => {
    if (!requires(t, FUSE_NEEDS, 'serves a lab over FUSE')) return;
    const n = kubelet!.registrations.length;
    await kubelet!.restart();
    await waitFor(
      're-registration',
      () => kubelet!.registrations.length > n && kubelet!.isConnected('mdevkit.io/nvidia-16'),
      20_000,
    );
    assert.match(plugin!.err, /socket removed \(kubelet restarted\?\)/);
    plugin!.child.kill('SIGTERM');
    assert.equal(await plugin!.exited, 0);
    assert.deepEqual(
      fs.readdirSync(pluginDir).filter((f) => f.startsWith('mdevkit-')),
      [],
    );
    assert.deepEqual(kubelet!.violations, []);
  });
});

describe('mdevkit k8s device-plugin with node configuration (FUSE lab, fake API server)', () => {
  it('applies the configuration its node label names and reports it on the Node', async (t) => {
    if (!requires(t, FUSE_NEEDS, 'serves a lab over FUSE')) return;
    const lab = await serveLab();
    const api = await FakeApiServer.start();
    const dir = tmpDir();
    const pluginDir = nodePath.join(dir, 'dp');
    const kubelet = await FakeKubelet.start({ dir: pluginDir });
    let plugin: Running | undefined;
    try {
      api.put('nodes', { metadata: { name: 'gpu-1', labels: { 'mdevkit.io/config': 'serial' } } });
      fs.writeFileSync(nodePath.join(dir, 'kubeconfig'), api.kubeConfigYaml());
      fs.writeFileSync(
        nodePath.join(dir, 'host.yaml'),
        'version: 1\nconfigs:\n  serial:\n    entries:\n      - parents: mtty\n        devices: [{ type: mtty-2, count: 2 }]\n',
      );
      fs.writeFileSync(
        nodePath.join(dir, 'dp.yaml'),
        'version: 1\nresources:\n  - name: example.com/serial\n    mdevTypes: [mtty-2]\nnodeConfig: { file: host.yaml }\n',
      );
      plugin = startPlugin([
        '--root',
        lab.dir,
        '--device-plugin-dir',
        pluginDir,
        '--config',
        nodePath.join(dir, 'dp.yaml'),
        '--node',
        'gpu-1',
        '--kubeconfig',
        nodePath.join(dir, 'kubeconfig'),
      ]);
      const state = (): string | undefined =>
        api.get('nodes', 'gpu-1')!.metadata.labels?.['mdevkit.io/config.state'];
      await waitFor('success', () => state() === 'success', 30_000);
      assert.equal(
        fs.readdirSync(`${lab.sys}/class/mdev_bus/mtty/mdev_supported_types/mtty-2/devices`).length,
        2,
      );
      await waitFor(
        'kubelet has both',
        () => kubelet.capacity('example.com/serial').allocatable === 2,
        10_000,
      );
      const reasons = api.list('events', 'default').map((e) => e['reason']);
      assert.deepEqual(reasons, ['ConfigApplying', 'ConfigApplied']);
      plugin.child.kill('SIGTERM');
      assert.equal(await plugin.exited, 0);
      assert.match(plugin.err, /configuration serial: success: 2 created/);
    } finally {
      plugin?.child.kill('SIGKILL');
      kubelet.stop();
      await api.stop();
      await lab.close();
    }
  });
});

describe('mdevkit k8s device-plugin refuses bad input with a clear message', () => {
  it('a configuration with an invalid resource name: exit 1, the field and why, no stack', () => {
    const dir = tmpDir();
    const file = nodePath.join(dir, 'dp.yaml');
    fs.writeFileSync(
      file,
      'version: 1\nresources:\n  - name: GRID_M60\n    mdevTypes: [nvidia-16]\n',
    );
    const r = runMdevkit(['k8s', 'device-plugin', '--root', dir, '--config', file]);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /dp\.yaml: resources\[0\]\.name: "GRID_M60" is not a resource name: it has no domain/,
    );
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  it('a missing configuration file, and node configuration without credentials', () => {
    const dir = tmpDir();
    let r = runMdevkit([
      'k8s',
      'device-plugin',
      '--root',
      dir,
      '--config',
      nodePath.join(dir, 'nope.yaml'),
    ]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot read .*nope\.yaml: ENOENT/);
    const file = nodePath.join(dir, 'dp.yaml');
    fs.writeFileSync(file, 'version: 1\nnodeConfig: { file: host.yaml }\n');
    r = runMdevkit(['k8s', 'device-plugin', '--root', dir, '--config', file, '--node', 'n1'], {
      env: { ...process.env, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '' },
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no Kubernetes credentials/);
  });
});
