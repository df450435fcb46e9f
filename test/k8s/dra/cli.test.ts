import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { describe, it } from 'node:test';
import { requires } from '../../support/capabilities.js';
import { MDEVKIT_BIN, runMdevkit } from '../../support/cli.js';
import { tmpDir } from '../../support/tmp.js';
import { FUSE_NEEDS, serveLab } from '../../fuse/served-lab.js';
import { TestAllocator } from '../support/dra-allocator.js';
import { FakeDraKubelet } from '../support/fake-dra-kubelet.js';
import { draApiServer, DRIVER } from '../support/sim-dra-node.js';
import { waitFor } from '../support/wait.js';
import { applyDeviceClasses, attr } from './support.js';

/**
 * `mdevkit k8s dra` as it runs on a node: the built CLI in its own
 * process, on a FUSE-served lab (--root), every kubelet path moved into a
 * temporary directory, a fake kubelet and a fake API server in the test's
 * process. The claim is allocated by the test allocator from the slices
 * the CLI published; the fake kubelet prepares it over the CLI's socket.
 */

describe('mdevkit k8s dra on a FUSE-served lab', () => {
  it('registers, publishes slices, prepares and unprepares a vGPU claim, and exits 0 on SIGTERM', async (t) => {
    if (!requires(t, FUSE_NEEDS, 'serves a lab over FUSE')) return;
    const lab = await serveLab();
    const api = await draApiServer();
    applyDeviceClasses(api);
    const dir = tmpDir();
    const registryDir = nodePath.join(dir, 'plugins_registry');
    const pluginsDir = nodePath.join(dir, 'plugins');
    const cdiDir = nodePath.join(dir, 'cdi');
    const kubelet = await FakeDraKubelet.start({ registryDir, api, stateDir: dir });
    fs.writeFileSync(nodePath.join(dir, 'kubeconfig'), api.kubeConfigYaml());
    let child: ChildProcess | undefined;
    try {
      child = spawn(
        process.execPath,
        [
          MDEVKIT_BIN,
          'k8s',
          'dra',
          '--root',
          lab.dir,
          '--node',
          'node-a',
          '--kubeconfig',
          nodePath.join(dir, 'kubeconfig'),
          '--plugins-dir',
          pluginsDir,
          '--registry-dir',
          registryDir,
          '--cdi-dir',
          cdiDir,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_NAME: '' } },
      );
      let out = '';
      let err = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
      const exited = new Promise<number | null>((resolve) =>
        child!.once('exit', (code) => resolve(code)),
      );
      await waitFor('ready', () => out.includes('ready') || /starting:/.test(err), 30_000);
      assert.equal(out, `ready ${DRIVER}\n`, err);
      await kubelet.whenRegistered(DRIVER, 20_000);
      assert.deepEqual(kubelet.violations, []);
      const allocator = new TestAllocator(api);
      await waitFor('the pool', () => allocator.pools().length === 1, 20_000);

      api.put(
        'resourceclaims',
        {
          metadata: { name: 'vgpu', namespace: 'default' },
          spec: {
            devices: {
              requests: [
                {
                  name: 'gpu',
                  exactly: {
                    deviceClassName: 'mdev.mdevkit.io',
                    selectors: [{ cel: { expression: attr('name', 'GRID M60-2Q') } }],
                  },
                },
              ],
            },
          },
        },
        'resource.k8s.io',
      );
      const pod = {
        uid: '00000000-0000-4000-8000-00000000c11a',
        name: 'vm',
        namespace: 'default',
        claims: ['vgpu'],
      };
      allocator.allocate('default', 'vgpu', pod);
      const uid = api.get('resourceclaims', 'vgpu', 'default', 'resource.k8s.io')!.metadata.uid!;
      const cdi = await kubelet.preparePod(pod);
      assert.equal(cdi.get('vgpu')!['gpu']!.length, 2);
      assert.equal(
        fs.readlinkSync(`${lab.sys}/bus/mdev/devices/${uid}/mdev_type`).split('/').pop(),
        'nvidia-16',
      );
      assert.ok(fs.existsSync(nodePath.join(cdiDir, `${DRIVER}-vfio_${uid}.json`)));
      await kubelet.unpreparePod(pod);
      assert.equal(fs.existsSync(`${lab.sys}/bus/mdev/devices/${uid}`), false);
      assert.deepEqual(api.invalid, []);

      child.kill('SIGTERM');
      assert.equal(await exited, 0);
      assert.equal(fs.existsSync(nodePath.join(pluginsDir, DRIVER, 'dra.sock')), false);
    } finally {
      child?.kill('SIGKILL');
      kubelet.stop();
      await api.stop();
      await lab.close();
    }
  });

  it('refuses to start without a node, with a bad driver name or poll interval, saying why', () => {
    const noNode = runMdevkit(['k8s', 'dra', '--root', '/nonexistent'], {
      env: { NODE_NAME: '' },
    });
    assert.equal(noNode.status, 1);
    assert.match(noNode.stderr, /give --node NAME or set NODE_NAME/);
    const bad = runMdevkit(['k8s', 'dra', '--node', 'n', '--driver-name', 'GPU_driver']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /a DRA driver name is a DNS subdomain/);
    assert.doesNotMatch(bad.stderr, /at .*\.js:\d+/, 'no stack trace');
    const poll = runMdevkit(['k8s', 'dra', '--node', 'n', '--poll-interval', '2']);
    assert.equal(poll.status, 1);
    assert.match(poll.stderr, /--poll-interval 2: a whole number of milliseconds from 5 to 60000/);
    const help = runMdevkit(['k8s', 'dra', '--help']);
    assert.equal(help.status, 0);
    for (const o of [
      '--root',
      '--node',
      '--kubeconfig',
      '--driver-name',
      '--plugins-dir',
      '--registry-dir',
      '--cdi-dir',
    ])
      assert.ok(help.stdout.includes(o), o);
  });
});
