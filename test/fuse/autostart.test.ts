import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { runMdevkit } from '../support/cli.js';
import { requires } from '../support/capabilities.js';
import { uuidN } from '../support/labs.js';
import { FUSE_NEEDS, eventually, serveLabIn, writeProfile } from './served-lab.js';

/**
 * Uevents and autostart on the live lab: a parent that registers gets its
 * start=auto definitions started, as mdevctl's udev rule does, once per
 * burst of uevents (the rule fires on the parent's add and on its change).
 */

function define(configDir: string, parent: string, uuid: string, type: string, start: string) {
  fs.mkdirSync(path.join(configDir, parent), { recursive: true });
  fs.writeFileSync(
    path.join(configDir, parent, uuid),
    JSON.stringify({ mdev_type: type, start, attrs: [] }, null, 2),
  );
}

describe('lab serve: uevents and autostart', () => {
  it('starts start=auto devices at boot and after a reboot, once per burst', async (t) => {
    if (!requires(t, FUSE_NEEDS, 'mounts the lab over FUSE')) return;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdevkit-autostart-'));
    const configDir = path.join(dir, 'etc/mdevctl.d');
    const auto = [uuidN(1), uuidN(2), uuidN(3)];
    for (const u of auto) define(configDir, 'mtty', u, 'mtty-1', 'auto');
    define(configDir, 'mtty', uuidN(4), 'mtty-2', 'manual');
    define(configDir, 'mdpy', uuidN(5), 'mdpy-no-such-type', 'auto');
    const profile = writeProfile([{ driver: 'mtty' }, { driver: 'mdpy' }]);
    const lab = await serveLabIn(dir, ['--profile', profile, '--monitor']);
    t.after(async () => {
      await lab.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const active = () => fs.readdirSync(path.join(lab.sys, 'bus/mdev/devices')).sort();
    const runsOf = (parent: string) =>
      lab
        .errors()
        .split('\n')
        .filter((l) => l.startsWith(`mdevkit lab: autostart ${parent}:`));

    // Boot: the auto devices are up by the time the lab says ready.
    assert.deepEqual(active(), auto);
    assert.deepEqual(runsOf('mtty'), ['mdevkit lab: autostart mtty: 3 started, 0 failed']);
    assert.deepEqual(runsOf('mdpy'), ['mdevkit lab: autostart mdpy: 0 started, 1 failed']);
    assert.match(lab.errors(), new RegExp(`autostart: mdpy/${uuidN(5)}: .*mdpy-no-such-type`));

    // A device the user removes stays removed until the next boot.
    fs.writeFileSync(path.join(lab.sys, 'bus/mdev/devices', auto[0]!, 'remove'), '1');
    assert.deepEqual(active(), auto.slice(1));

    const r = runMdevkit(['lab', 'reboot', '--mount', dir]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(active(), auto, 'every start=auto device is back, the manual one is not');
    await eventually(() => runsOf('mtty').length >= 2 && runsOf('mdpy').length >= 2);
    await new Promise((resolve) => setTimeout(resolve, 100)); // room for a wrong third run
    assert.equal(runsOf('mtty').length, 2, 'one run per boot, not one per uevent');
    assert.ok(fs.existsSync(path.join(configDir, 'mtty', uuidN(4))), 'definitions are kept');

    const events = lab.output();
    for (const line of [
      / remove +\/devices\/virtual\/mtty\/mtty\/[0-9a-f-]{36} \(mdev\)$/m,
      / change +\/devices\/virtual\/mtty\/mtty \(mtty\) MDEV_STATE=unregistered$/m,
      / add +\/devices\/virtual\/mtty\/mtty \(mtty\)$/m,
      / change +\/devices\/virtual\/mtty\/mtty \(mtty\) MDEV_STATE=registered$/m,
      / add +\/devices\/virtual\/mtty\/mtty\/[0-9a-f-]{36} \(mdev\)$/m,
    ]) {
      assert.match(events, line);
    }
    // Order within the reboot: the parent registers before its devices come back.
    const registered = events.indexOf('(mtty) MDEV_STATE=registered');
    const readded = events.indexOf(`add      /devices/virtual/mtty/mtty/${auto[0]}`);
    assert.ok(registered >= 0 && readded > registered);
  });
});
