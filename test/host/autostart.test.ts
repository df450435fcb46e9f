import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { describe, it } from 'node:test';
import { Autostart, parentToAutostart, type AutostartRun } from '../../src/host/autostart.js';
import { writeConfig } from '../../src/host/config-store.js';
import { environmentAt } from '../../src/host/environment.js';
import { listActiveDevices } from '../../src/host/sysfs-model.js';
import { U1, U2, U3, labWith } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';

/**
 * mdevctl's udev rule in src/host: which uevents start a parent's
 * start=auto definitions, and how a burst of them becomes one run.
 */

describe("parentToAutostart: the udev rule's match", () => {
  const ev = (action: string, devpath: string, subsystem: string, env = {}) => ({
    action,
    devpath,
    subsystem,
    env,
  });
  it('fires for a registering parent and for an added non-mdev device', () => {
    const reg = { MDEV_STATE: 'registered' };
    assert.equal(
      parentToAutostart(ev('change', '/devices/virtual/mtty/mtty', 'mtty', reg)),
      'mtty',
    );
    assert.equal(
      parentToAutostart(ev('add', '/devices/pci0000:85/0000:85:00.0', 'pci')),
      '0000:85:00.0',
    );
  });
  it('ignores mdevs, unregistering parents and other changes', () => {
    const mdev = `/devices/virtual/mtty/mtty/${U1}`;
    assert.equal(parentToAutostart(ev('add', mdev, 'mdev', { MDEV_TYPE: 'mtty-1' })), undefined);
    assert.equal(parentToAutostart(ev('remove', '/devices/virtual/mtty/mtty', 'mtty')), undefined);
    const unreg = { MDEV_STATE: 'unregistered' };
    assert.equal(
      parentToAutostart(ev('change', '/devices/virtual/mtty/mtty', 'mtty', unreg)),
      undefined,
    );
  });
});

describe('Autostart', () => {
  function setup() {
    const lab = labWith([{ driver: 'mtty' }, { driver: 'mdpy' }]);
    const root = tmpDir('mdevkit-autostart-');
    const env = environmentAt(root, lab.port);
    const define = (parent: string, uuid: string, type: string, start: 'auto' | 'manual') =>
      writeConfig(env.configDir, parent, uuid, { mdevType: type, start, attrs: [] });
    const runs: AutostartRun[] = [];
    const autostart = new Autostart(env, { onRun: (r) => runs.push(r) });
    const active = () =>
      listActiveDevices(lab.port)
        .map((d) => d.uuid)
        .sort();
    return { lab, env, define, runs, autostart, active };
  }

  it('coldplug starts every parent’s start=auto definitions, once each', async () => {
    const s = setup();
    s.define('mtty', U1, 'mtty-1', 'auto');
    s.define('mtty', U2, 'mtty-2', 'manual');
    s.define('mdpy', U3, 'mdpy-no-such-type', 'auto');
    s.autostart.coldplug();
    s.autostart.coldplug(); // a second trigger in the same burst changes nothing
    assert.deepEqual(s.active(), [], 'nothing runs inside the burst');
    await s.autostart.flush();
    assert.deepEqual(s.active(), [U1]);
    const byParent = new Map(s.runs.map((r) => [r.parent, r]));
    assert.equal(s.runs.length, 2, 'one run per parent with a config dir');
    assert.deepEqual(
      byParent.get('mtty')?.started.map((d) => d.uuid),
      [U1],
    );
    assert.equal(byParent.get('mtty')?.failed.length, 0);
    assert.deepEqual(
      byParent.get('mdpy')?.failed.map((f) => f.device.uuid),
      [U3],
    );
  });

  it('a reboot’s uevent burst (add and change per parent) is one run, and active devices are no failure', async () => {
    const s = setup();
    s.define('mtty', U1, 'mtty-1', 'auto');
    s.define('mtty', U2, 'mtty-1', 'auto');
    const off = s.lab.kernel.onUevent(s.autostart.uevent);
    s.lab.reboot();
    await s.autostart.flush();
    assert.deepEqual(s.active(), [U1, U2]);
    assert.equal(s.runs.length, 1);
    // Triggered again while the devices run (mdevctl#53): nothing started, nothing failed.
    s.autostart.parentRegistered('mtty');
    await s.autostart.flush();
    assert.equal(s.runs.length, 2);
    assert.equal(s.runs[1]!.started.length, 0);
    assert.equal(s.runs[1]!.failed.length, 0);
    off();
  });

  it('does nothing for a parent without a config dir (the rule’s TEST)', async () => {
    const s = setup();
    fs.mkdirSync(s.env.configDir, { recursive: true });
    s.autostart.parentRegistered('mtty');
    await s.autostart.flush();
    assert.equal(s.runs.length, 0);
    assert.equal(fs.existsSync(nodePath.join(s.env.configDir, 'mtty')), false);
  });
});
