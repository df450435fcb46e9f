import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createDevice, removeDevice } from '../../src/host/sysfs-model.js';
import { U1 } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { labAgent, type LabAgent } from './support.js';

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
