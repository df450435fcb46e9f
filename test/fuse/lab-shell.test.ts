import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it } from 'node:test';
import { runMdevkit } from '../support/cli.js';
import { hasMdevctl, requires } from '../support/capabilities.js';
import { FUSE_NEEDS, serveLab } from './served-lab.js';

/** `mdevkit lab shell`: commands see the lab as the host's /sys and /etc/mdevctl.d. */
describe('lab shell', () => {
  it('runs a command where /sys is a fresh lab, then unmounts it', (t) => {
    if (!requires(t, { ...FUSE_NEEDS, mdevctl: hasMdevctl }, 'mount namespaces, FUSE, mdevctl')) {
      return;
    }
    const script = [
      'set -e',
      'ls /sys/class/mdev_bus | sort | tr "\\n" " "; echo',
      'echo 11111111-1111-4111-8111-111111111111 > /sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2/create',
      'ls /sys/bus/mdev/devices',
      'mdevctl list',
      'echo "lab=$MDEVKIT_LAB"',
      'exit 7',
    ].join('\n');
    const r = runMdevkit(['lab', 'shell', '--', 'bash', '-c', script], { timeout: 30000 });
    assert.equal(r.status, 7, `the command's exit status is the shell's: ${r.stderr}`);
    // (mdevctl 1.2.0 ends its listing with an empty line.)
    const [parents, device, listed, labLine] = r.stdout.split('\n').filter((l) => l !== '');
    assert.match(parents!, /\bmbochs mdpy mtty\b/);
    assert.equal(device, '11111111-1111-4111-8111-111111111111');
    assert.equal(listed, '11111111-1111-4111-8111-111111111111 mtty mtty-2 manual');
    const dir = labLine!.replace(/^lab=/, '');
    assert.match(dir, /mdevkit-lab-/);
    assert.ok(!fs.existsSync(dir), 'the temporary lab is gone afterwards');
    // Nothing leaked into this namespace.
    assert.ok(!fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(dir));
  });

  it('joins a lab that is served already (--mount), and the lab keeps running', async (t) => {
    if (!requires(t, FUSE_NEEDS, 'mount namespaces and FUSE')) return;
    const lab = await serveLab();
    t.after(() => lab.close());
    const u = '22222222-2222-4222-8222-222222222222';
    const r = runMdevkit(
      [
        'lab',
        'shell',
        '--mount',
        lab.dir,
        '--',
        'sh',
        '-c',
        `echo ${u} > /sys/bus/mdev/../../class/mdev_bus/mdpy/mdev_supported_types/mdpy-vga/create`,
      ],
      { timeout: 30000 },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(fs.readdirSync(`${lab.sys}/bus/mdev/devices`), [u]);
    assert.equal(lab.child.exitCode, null, 'the served lab is still running');
  });
});
