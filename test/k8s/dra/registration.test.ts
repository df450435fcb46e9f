import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import { DRA_PLUGIN_TYPE, DRA_SERVICE_V1 } from '../../../src/k8s/dra/api.js';
import { waitFor } from '../support/wait.js';
import { DRIVER, startCluster, type Cluster } from './support.js';

/**
 * Registration with kubelet's plugin watcher, as the fake kubelet does it
 * (GetInfo, its validation, NotifyRegistrationStatus, the DRA service
 * dialled at the endpoint GetInfo names), and what happens when kubelet's
 * directories are wiped under the driver.
 */

let c: Cluster | undefined;
afterEach(async () => {
  await c?.stop();
  c = undefined;
});

describe('DRA plugin registration', () => {
  it('GetInfo names the driver, type DRAPlugin, v1.DRAPlugin and the endpoint; sockets are 0600', async () => {
    c = await startCluster();
    const ok = c.node.kubelet.registrations.filter((r) => r.error === undefined);
    assert.equal(ok.length, 1);
    const info = ok[0]!.info!;
    assert.equal(info.type, DRA_PLUGIN_TYPE);
    assert.equal(info.name, DRIVER);
    assert.ok(info.supported_versions.includes(DRA_SERVICE_V1));
    assert.equal(info.endpoint, `${c.node.pluginsDir}/${DRIVER}/dra.sock`);
    assert.equal(ok[0]!.socket, `${c.node.registryDir}/${DRIVER}-reg.sock`);
    assert.deepEqual(c.node.kubelet.violations, []);
  });

  it('a registration socket removed (kubelet wiping its registry) is served again, and kubelet registers the driver again', async () => {
    c = await startCluster();
    const cl = c;
    const before = cl.node.kubelet.registrations.length;
    fs.rmSync(`${cl.node.registryDir}/${DRIVER}-reg.sock`);
    await waitFor(
      'a new registration',
      () =>
        cl.node.kubelet.registrations.length > before && cl.node.kubelet.drivers().includes(DRIVER),
    );
    assert.ok(cl.log.some((l) => l.includes('serving it again')));
    assert.deepEqual(cl.node.kubelet.violations, []);
  });
});
