import type { InjectOptions } from 'fastify';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { VfPoller } from '../../src/agent/vf-events.js';
import type { HostEvent } from '../../src/agent/event-kinds.js';
import { labWith } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { AUTH, labAgent, openEventStream, type LabAgent } from './support.js';

/**
 * The agent's VF vGPU API in process: the listing with each GPU's
 * capacity, create and remove with owners, the refusals with their codes
 * and errnos, the hostdev answer, and `vgpu-changed` events — from the
 * routes at once, from the poller for changes made elsewhere.
 */

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = (body: string): any => JSON.parse(body);
const GPU = '0000:41:00.0';

describe('agent API: NVIDIA VF vGPUs', () => {
  const stateDir = tmpDir('mdevkit-agent-vf-');
  let la: LabAgent;
  const inject = (opts: InjectOptions) => la.agent.app.inject(opts);
  const create = (body: Record<string, unknown>, client = 'dashboard') =>
    inject({
      method: 'POST',
      url: '/api/v1/vf-vgpus',
      headers: { ...AUTH, 'x-mdevkit-client': client },
      payload: body,
    });

  before(async () => {
    la = await labAgent(stateDir, labWith([{ driver: 'nvidia-l40s', options: { vfs: 8 } }]));
  });
  after(() => la.agent.close());

  test('says the VFs are not enabled, then lists the GPU with its capacity', async () => {
    let r = json((await inject({ url: '/api/v1/vf-vgpus' })).body);
    assert.deepEqual(
      r.gpus.map((g: { gpu: string; vfs: unknown }) => [g.gpu, g.vfs]),
      [[GPU, { total: 8, enabled: 0, free: 0 }]],
    );
    const refused = await create({ gpu: GPU, type: 'L40S-12Q' });
    assert.equal(refused.statusCode, 409);
    assert.deepEqual(
      [
        json(refused.body).error.code,
        json(refused.body).error.errno,
        json(refused.body).error.message,
      ],
      ['vf-not-enabled', 'ENODEV', 'VFs are not enabled on 0000:41:00.0: run sriov-manage -e'],
    );
    la.lab.sriovManage(true, 'ALL');
    r = json((await inject({ url: '/api/v1/vf-vgpus' })).body);
    assert.equal(r.gpus[0].vfs.enabled, 8);
    assert.equal(
      r.gpus[0].types.find((t: { shortName: string }) => t.shortName === 'L40S-12Q').headroom,
      4,
    );
  });

  test('creates four vGPUs of one size, announces each, and refuses another size in words', async () => {
    const stream = openEventStream(`http://127.0.0.1:${await listenPort(la)}/api/v1/events`);
    await stream.ready;
    for (let i = 0; i < 4; i++) {
      const r = await create({ gpu: GPU, type: 'L40S-12Q', start: 'auto' });
      assert.equal(r.statusCode, 201, r.body);
      assert.equal(json(r.body).owner, 'api:dashboard');
      const e = await stream.next((f) => f.event === 'vgpu-changed');
      assert.equal(JSON.parse(e.data).vf, json(r.body).vfAddress);
    }
    stream.close();
    const no = await create({ gpu: GPU, type: 'L40S-24Q' });
    assert.equal(no.statusCode, 409);
    assert.equal(json(no.body).error.code, 'vgpu-size-mismatch');
    assert.equal(json(no.body).error.message, 'L40S-24Q does not fit: this GPU runs 12 GB types');
    assert.equal(json(no.body).error.context.gpu, GPU);
    const list = json((await inject({ url: '/api/v1/vf-vgpus' })).body);
    assert.deepEqual(
      list.vgpus.map((v: { state: string; typeName: string }) => [v.state, v.typeName]),
      Array(4).fill(['active', 'NVIDIA L40S-12Q']),
    );
    assert.equal(list.gpus[0].usedGb, 48);
  });

  test('a VF in use by a VM: 409 vf-in-use with EBUSY; hostdev XML and QEMU arguments', async () => {
    const list = json((await inject({ url: '/api/v1/vf-vgpus' })).body);
    const v = list.vgpus[0];
    la.lab.open(v.vfAddress);
    const stop = await inject({
      method: 'POST',
      url: `/api/v1/vf-vgpus/${v.uuid}/stop`,
      headers: AUTH,
    });
    assert.equal(stop.statusCode, 409);
    assert.deepEqual(
      [json(stop.body).error.code, json(stop.body).error.errno],
      ['vf-in-use', 'EBUSY'],
    );
    assert.match(json(stop.body).error.message, /the VF 0000:41:00\.4 is in use by a VM/);
    la.lab.close(v.vfAddress);
    const hd = json((await inject({ url: `/api/v1/vf-vgpus/${v.uuid}/hostdev` })).body);
    assert.match(hd.xml, /^<hostdev mode='subsystem' type='pci' managed='no'>/);
    assert.deepEqual(hd.qemu, [
      '-uuid',
      v.uuid,
      '-device',
      'vfio-pci,host=0000:41:00.4,id=hostdev0',
    ]);
  });

  test("removes its own vGPUs; another client's needs force=true", async () => {
    const list = json((await inject({ url: '/api/v1/vf-vgpus' })).body);
    const [a, b] = list.vgpus;
    const mine = await inject({
      method: 'DELETE',
      url: `/api/v1/vf-vgpus/${a.uuid}`,
      headers: { ...AUTH, 'x-mdevkit-client': 'dashboard' },
    });
    assert.equal(mine.statusCode, 204);
    const theirs = await inject({
      method: 'DELETE',
      url: `/api/v1/vf-vgpus/${b.uuid}`,
      headers: { ...AUTH, 'x-mdevkit-client': 'someone-else' },
    });
    assert.equal(theirs.statusCode, 403);
    assert.equal(json(theirs.body).error.code, 'foreign-vgpu');
    const forced = await inject({
      method: 'DELETE',
      url: `/api/v1/vf-vgpus/${b.uuid}?force=true`,
      headers: { ...AUTH, 'x-mdevkit-client': 'someone-else' },
    });
    assert.equal(forced.statusCode, 204);
    const unauth = await inject({
      method: 'POST',
      url: '/api/v1/vf-vgpus',
      payload: { gpu: GPU, type: 1 },
    });
    assert.equal(unauth.statusCode, 401, 'writes need the token');
  });

  test('the poller reports changes made behind the agent', () => {
    const poller = new VfPoller(la.env, 0);
    const seen: HostEvent[] = [];
    poller.subscribe((e) => seen.push(e));
    la.lab.port.write('/sys/bus/pci/devices/0000:41:01.3/nvidia/current_vgpu_type', '1153');
    poller.poll();
    assert.deepEqual(seen, [{ kind: 'vgpu-changed', gpu: GPU, vf: '0000:41:01.3' }]);
    la.lab.sriovManage(false, 'ALL');
    poller.poll();
    assert.deepEqual(seen.at(-1), { kind: 'vgpu-changed', gpu: GPU });
    poller.poll();
    assert.equal(seen.length, 2, 'nothing new, nothing said');
    poller.close();
  });
});

/** Listen on a loopback port once (for the event stream) and say which. */
async function listenPort(la: LabAgent): Promise<number> {
  const app = la.agent.app;
  if (app.server.listening) return (app.server.address() as { port: number }).port;
  await app.listen({ host: '127.0.0.1', port: 0 });
  return (app.server.address() as { port: number }).port;
}
