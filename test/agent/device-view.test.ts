import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createDevice, removeDevice } from '../../src/host/sysfs-model.js';
import { labWith, U1, U2, U3 } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { AUTH, labAgent, type LabAgent } from './support.js';

describe("the cached device list follows changes made behind the agent's back", () => {
  const stateDir = tmpDir('mdevkit-agent-view-');
  let la: LabAgent;
  before(async () => {
    la = await labAgent(stateDir);
  });
  after(() => la.agent.close());

  const list = async () =>
    (
      JSON.parse((await la.agent.app.inject({ url: '/api/v1/devices' })).body) as {
        devices: { uuid: string; parent: string; type: string }[];
      }
    ).devices.map((d) => `${d.parent}/${d.type}/${d.uuid}`);

  test('a UUID removed and made again elsewhere between two reads', async () => {
    createDevice(la.lab.port, 'mdpy', 'mdpy-hd', U1);
    assert.deepEqual(await list(), [`mdpy/mdpy-hd/${U1}`]);
    removeDevice(la.lab.port, U1);
    createDevice(la.lab.port, 'mtty', 'mtty-2', U1);
    assert.deepEqual(await list(), [`mtty/mtty-2/${U1}`]);
  });

  test('a parent unplugged and plugged again', async () => {
    la.lab.unplugAll();
    assert.deepEqual(await list(), []);
    la.lab.plugAll();
    createDevice(la.lab.port, 'mdpy', 'mdpy-vga', U1);
    assert.deepEqual(await list(), [`mdpy/mdpy-vga/${U1}`]);
  });
});

describe('the listing carries what a dashboard draws, without a request per device', () => {
  const stateDir = tmpDir('mdevkit-agent-view-agg-');
  const SIOV = '0000:6a:01.0';
  let la: LabAgent;
  before(async () => {
    la = await labAgent(stateDir, labWith([{ driver: 'siov' }, { driver: 'mdpy' }]));
  });
  after(() => la.agent.close());

  interface Listed {
    uuid: string;
    active: boolean;
    aggregation?: { value: number; max?: number };
  }
  const listed = async (uuid: string): Promise<Listed | undefined> =>
    (
      JSON.parse((await la.agent.app.inject({ url: '/api/v1/devices' })).body) as {
        devices: Listed[];
      }
    ).devices.find((d) => d.uuid === uuid);

  test('aggregation of active devices whose type aggregates, and of no others', async () => {
    createDevice(la.lab.port, SIOV, 'idxd-1wq', U1);
    createDevice(la.lab.port, 'mdpy', 'mdpy-hd', U2);
    const max = Number(la.lab.port.read(`/sys/bus/mdev/devices/${U1}/mdev/aggregation/max`).trim());
    assert.ok(max > 1);
    assert.deepEqual((await listed(U1))?.aggregation, { value: 1, max });
    assert.equal((await listed(U2))?.aggregation, undefined);
    // Through the API: the listing shows the new value at once.
    const put = await la.agent.app.inject({
      method: 'PUT',
      url: `/api/v1/devices/${U1}/aggregation`,
      headers: AUTH,
      payload: { value: 3 },
    });
    assert.equal(put.statusCode, 200, put.body);
    assert.deepEqual((await listed(U1))?.aggregation, { value: 3, max });
    // Behind the agent's back (no event for an attribute write): read again
    // at the next rebuild, which any change of the host causes.
    la.lab.port.write(`/sys/bus/mdev/devices/${U1}/mdev/aggregation/value`, '2');
    createDevice(la.lab.port, 'mdpy', 'mdpy-hd', U3);
    assert.deepEqual((await listed(U1))?.aggregation, { value: 2, max });
    removeDevice(la.lab.port, U1);
    assert.equal(await listed(U1), undefined);
  });
});
