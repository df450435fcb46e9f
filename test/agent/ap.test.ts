import assert from 'node:assert/strict';
import type { InjectOptions } from 'fastify';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../../src/sim/lab.js';
import { U1 } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { AUTH, labAgent, type LabAgent } from './support.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = (body: string): any => JSON.parse(body);

describe('vfio-ap matrix through the agent (the default lab: adapters 03 05 06 0a, domains 04 06 47 ff)', () => {
  const stateDir = tmpDir('mdevkit-agent-ap-');
  let la: LabAgent;
  const inject = (opts: InjectOptions) => la.agent.app.inject(opts);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const cell = (m: any, a: number, d: number): any =>
    m.queues.find((q: { adapter: number; domain: number }) => q.adapter === a && q.domain === d);

  before(async () => {
    la = await labAgent(stateDir, Lab.fromProfile('lab'));
  });
  after(() => la.agent.close());

  test('the grid: every adapter × domain, the host side from apmask/aqmask', async () => {
    const m = json((await inject({ url: '/api/v1/ap/matrix' })).body);
    assert.deepEqual(m.adapters, [3, 5, 6, 10]);
    assert.deepEqual(m.domains, [4, 6, 71, 255]);
    assert.equal(m.queues.length, 16);
    assert.deepEqual(cell(m, 3, 4), { adapter: 3, domain: 4, host: true });
    assert.deepEqual(cell(m, 5, 71), { adapter: 5, domain: 71, host: false });
    assert.deepEqual(m.devices, []);
  });

  test('assign a queue to a matrix device; a second device cannot take it (EADDRINUSE)', async () => {
    const create = (uuid?: string) =>
      inject({
        method: 'POST',
        url: '/api/v1/devices',
        headers: AUTH,
        payload: {
          uuid,
          parent: 'matrix',
          type: 'vfio_ap-passthrough',
          define: false,
          activate: true,
        },
      });
    assert.equal((await create(U1)).statusCode, 201);
    const r = await inject({
      method: 'POST',
      url: `/api/v1/ap/devices/${U1}/assign`,
      headers: AUTH,
      payload: { adapters: [5], domains: [71] },
    });
    assert.equal(r.statusCode, 200, r.body);
    const m = json(r.body);
    assert.equal(cell(m, 5, 71).owner, U1);
    assert.deepEqual(m.devices[0].adapters, [5]);
    // The kernel's own view agrees.
    assert.match(la.lab.port.read(`/sys/bus/mdev/devices/${U1}/matrix`), /^05\.0047$/m);

    const other = json((await create()).body).uuid;
    const taken = await inject({
      method: 'POST',
      url: `/api/v1/ap/devices/${other}/assign`,
      headers: AUTH,
      payload: { adapters: [5], domains: [71] },
    });
    assert.equal(taken.statusCode, 409, taken.body);
    assert.equal(json(taken.body).error.errno, 'EADDRINUSE');
    assert.match(json(taken.body).error.message, new RegExp(U1));
  });

  test('the host keeps its queues (EADDRNOTAVAIL) until they are reserved for guests', async () => {
    const hostQueue = { adapters: [3], domains: [4] };
    const refused = await inject({
      method: 'POST',
      url: `/api/v1/ap/devices/${U1}/assign`,
      headers: AUTH,
      payload: hostQueue,
    });
    assert.equal(refused.statusCode, 409);
    assert.equal(json(refused.body).error.errno, 'EADDRNOTAVAIL');
    const release = await inject({
      method: 'POST',
      url: '/api/v1/ap/release',
      headers: AUTH,
      payload: { adapters: [5], domains: [71] },
    });
    // With both bits set again the host would own 05.0047, which a matrix device holds.
    assert.equal(release.statusCode, 409, release.body);
    const reserve = await inject({
      method: 'POST',
      url: '/api/v1/ap/reserve',
      headers: AUTH,
      payload: { adapters: [3] },
    });
    assert.equal(reserve.statusCode, 200, reserve.body);
    assert.equal(cell(json(reserve.body), 3, 4).host, false);
    const ok = await inject({
      method: 'POST',
      url: `/api/v1/ap/devices/${U1}/assign`,
      headers: AUTH,
      payload: hostQueue,
    });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(cell(json(ok.body), 3, 4).owner, U1);
    const un = await inject({
      method: 'POST',
      url: `/api/v1/ap/devices/${U1}/unassign`,
      headers: AUTH,
      payload: { adapters: [3] },
    });
    assert.equal(cell(json(un.body), 3, 4).owner, undefined);
    const notMatrix = await inject({
      method: 'POST',
      url: `/api/v1/ap/devices/${'9'.repeat(8)}-0000-4000-8000-000000000000/assign`,
      headers: AUTH,
      payload: hostQueue,
    });
    assert.equal(notMatrix.statusCode, 404);
    assert.equal(
      (await inject({ method: 'POST', url: '/api/v1/ap/reserve', payload: { adapters: [3] } }))
        .statusCode,
      401,
    );
  });
});
