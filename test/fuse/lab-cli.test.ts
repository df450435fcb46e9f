import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runMdevkit } from '../support/cli.js';
import { tmpDir } from '../support/tmp.js';

/** The live lab's commands answer mistakes in words, without a stack trace. */
describe('lab serve/shell/reboot: usage and errors', () => {
  it('lab serve needs --mount', () => {
    const r = runMdevkit(['lab', 'serve']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /lab serve needs --mount DIR/);
    assert.match(r.stderr, /usage: mdevkit lab serve/);
  });

  it('lab serve rejects a bad --cache', () => {
    const r = runMdevkit(['lab', 'serve', '--mount', tmpDir(), '--cache', 'soon']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--cache takes seconds/);
  });

  it('lab shell wants its command after --', () => {
    const r = runMdevkit(['lab', 'shell', 'ls']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /put the command after "--"/);
  });

  it('lab reboot says which lab it could not reach', () => {
    const dir = tmpDir();
    const none = runMdevkit(['lab', 'reboot'], { env: { ...process.env, MDEVKIT_LAB: '' } });
    assert.equal(none.status, 2);
    assert.match(none.stderr, /which lab\? give --mount DIR or set MDEVKIT_LAB/);
    const r = runMdevkit(['lab', 'reboot'], { env: { ...process.env, MDEVKIT_LAB: dir } });
    assert.equal(r.status, 1);
    assert.equal(r.stderr.split('\n').length, 2, 'one line, no stack');
    assert.match(r.stderr, /no lab is running at .* start one with 'mdevkit lab serve --mount/);
  });

  it('every live-lab command has --help', () => {
    for (const cmd of ['serve', 'shell', 'reboot']) {
      const r = runMdevkit(['lab', cmd, '--help']);
      assert.equal(r.status, 0);
      assert.match(r.stdout, new RegExp(`^usage: mdevkit lab ${cmd}`));
    }
    assert.match(runMdevkit(['lab', '--help']).stdout, /serve .*--mount DIR/);
  });
});
