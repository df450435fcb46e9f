/**
 * The config dir and the JSON documents a user hands in (issue 12, items 7
 * and 16): a file that is not a valid definition is never quoted — not in
 * a warning, not in an error, not in the JSON error line — links in the
 * config dir are not followed out of it, and `--jsonfile` reads at most
 * 1 MiB, so /dev/zero ends in a clear error instead of an aborted process.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { MAX_JSON_BYTES } from '../../src/host/config-store.js';
import {
  MdevError,
  defineDevice,
  listDefinedDevices,
  startDevice,
  type JsonSource,
} from '../../src/host/devices.js';
import { MDEVKIT_BIN } from '../support/cli.js';
import { uuidN } from '../support/labs.js';
import { assertCleanRefusal, assertNoSecret, hostLab, mdevctl, treeOf } from './host-support.js';

const MDEVCTL_BIN = new URL('../../bin/mdevctl', import.meta.url).pathname;
const DEF = (type = 'mdpy-hd'): string =>
  JSON.stringify({ mdev_type: type, start: 'manual', attrs: [] }, null, 2);

/** A lab whose config dir holds, for parent mdpy, every kind of file that is not a definition. */
function plantedLab() {
  const h = hostLab();
  const mdpy = path.join(h.configDir, 'mdpy');
  fs.mkdirSync(mdpy);
  const uuids = {
    good: uuidN(1),
    copied: uuidN(2), // someone copied a secret file into the config dir
    linkOut: uuidN(3), // a link to the secret outside
    linkOutValid: uuidN(4), // a link to a valid definition outside
    linkIn: uuidN(5), // a link to a definition inside the config dir
    dangling: uuidN(6),
    inLinkedParent: uuidN(7),
  };
  fs.writeFileSync(path.join(mdpy, uuids.good), DEF());
  fs.copyFileSync(path.join(h.outside, 'shadow'), path.join(mdpy, uuids.copied));
  fs.symlinkSync(path.join(h.outside, 'shadow'), path.join(mdpy, uuids.linkOut));
  fs.writeFileSync(path.join(h.outside, 'valid'), DEF('mdpy-vga'));
  fs.symlinkSync(path.join(h.outside, 'valid'), path.join(mdpy, uuids.linkOutValid));
  fs.symlinkSync(uuids.good, path.join(mdpy, uuids.linkIn));
  fs.symlinkSync(path.join(h.outside, 'nothing'), path.join(mdpy, uuids.dangling));
  // A parent directory that is a link to a directory outside, holding a valid definition.
  fs.mkdirSync(path.join(h.outside, 'mtty'));
  fs.writeFileSync(path.join(h.outside, 'mtty', uuids.inLinkedParent), DEF('mtty-1'));
  fs.symlinkSync(path.join(h.outside, 'mtty'), path.join(h.configDir, 'mtty'));
  return { ...h, uuids };
}

describe('a file that is not a definition is never quoted', () => {
  it('list -d reports the copied secret by name only, and lists the good definition', () => {
    const h = plantedLab();
    const r = mdevctl(h, ['list', '-d']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(h.uuids.good));
    assert.match(r.stderr, new RegExp(`Skipping invalid definition.*${h.uuids.copied}`));
    assertNoSecret(r.stdout + r.stderr, 'list -d');
    const json = mdevctl(h, ['list', '-d', '--dumpjson']);
    assertNoSecret(json.stdout + json.stderr, 'list -d --dumpjson');
  });

  it('the library reports it with a position, never with the bytes', () => {
    const h = plantedLab();
    const reported: MdevError[] = [];
    listDefinedDevices(h.env, {}, { invalidDefinition: (_p, e) => reported.push(e) });
    const copied = reported.find((e) => e.context['uuid'] === h.uuids.copied);
    assert.ok(copied !== undefined, reported.map((e) => e.message).join('\n'));
    assert.equal(copied.code, 'invalid-config');
    const chain = `${copied.message} ${String((copied.cause as Error).message)}`;
    assertNoSecret(chain, 'the error');
    // serde_json's words, as mdevctl prints them: where, not what.
    assert.match(chain, /expected value at line 1 column 1/);
  });

  it('commands that look the device up fail naming the file, without its contents', () => {
    const h = plantedLab();
    const u = h.uuids.copied;
    for (const args of [
      ['start', '-u', u],
      ['modify', '-u', u, '--auto'],
      ['undefine', '-u', u],
      ['start', '-u', u, '-p', 'mdpy'],
    ]) {
      for (const env of [{}, { MDEVKIT_ERROR_FORMAT: 'json' }]) {
        const r = mdevctl(h, args, env);
        assertCleanRefusal(r, args.join(' '));
        assertNoSecret(r.stdout + r.stderr, args.join(' '));
      }
    }
  });

  it('define, start and modify --jsonfile of a file that is not JSON say where it fails, not what it holds', () => {
    const h = plantedLab();
    const shadow = path.join(h.outside, 'shadow');
    for (const args of [
      ['define', '-u', uuidN(20), '-p', 'mdpy', '--jsonfile', shadow],
      ['start', '-u', uuidN(21), '-p', 'mdpy', '--jsonfile', shadow],
      ['modify', '-u', h.uuids.good, '-p', 'mdpy', '--jsonfile', shadow],
    ]) {
      for (const env of [{}, { MDEVKIT_ERROR_FORMAT: 'json' }]) {
        const r = mdevctl(h, args, env);
        assertCleanRefusal(r, args.join(' '));
        assertNoSecret(r.stdout + r.stderr, args.join(' '));
        if (Object.keys(env).length === 0) {
          assert.match(r.stderr, /expected value at line 1 column 1/, args.join(' '));
        }
      }
    }
  });

  it('the words of the JSON error never carry the document, however short or long', () => {
    const h = hostLab();
    // V8's own message quotes up to the whole document ("Unexpected token
    // 'z', "zq9" is not valid JSON"); each of these once leaked.
    for (const text of ['zq9', 'zq9:S3CR3T', `{"a": zq9}`, `["S3CR3T" zq9]`, `{"zq9" 1}`]) {
      const json: JsonSource = { name: 'doc', read: () => text };
      assert.throws(
        () => defineDevice(h.env, { uuid: uuidN(30), parent: 'mdpy', json }),
        (err: unknown) => {
          assert.ok(err instanceof MdevError);
          assert.equal(err.code, 'invalid-config');
          let m = err.message;
          for (let c: unknown = err.cause; c instanceof Error; c = c.cause) m += ` ${c.message}`;
          assertNoSecret(m, JSON.stringify(text));
          return true;
        },
      );
    }
  });
});

describe('links in the config dir are not followed', () => {
  it('list -d shows neither linked definitions nor a linked parent directory, as mdevctl', () => {
    const h = plantedLab();
    const r = mdevctl(h, ['list', '-d', '--dumpjson']);
    assert.equal(r.code, 0, r.stderr);
    const listed = JSON.stringify(JSON.parse(r.stdout));
    assert.ok(listed.includes(h.uuids.good));
    for (const k of ['linkOut', 'linkOutValid', 'linkIn', 'dangling', 'inLinkedParent'] as const) {
      assert.ok(!listed.includes(h.uuids[k]), `${k} listed: ${listed}`);
    }
    assertNoSecret(r.stdout + r.stderr, 'list -d');
  });

  it('a listing that reports skipped files names the links, and says they are links', () => {
    const h = plantedLab();
    const reported = new Map<string, MdevError>();
    listDefinedDevices(
      h.env,
      {},
      { invalidDefinition: (_p, e) => reported.set(String(e.context['uuid']), e) },
    );
    for (const k of ['linkOut', 'linkOutValid', 'linkIn', 'dangling'] as const) {
      const e = reported.get(h.uuids[k]);
      assert.ok(e !== undefined, `${k} not reported`);
      assert.equal(e.code, 'config-symlink', `${k}: ${e.code}`);
      assertNoSecret(e.message, k);
    }
  });

  it('start, modify and undefine treat a linked definition as not defined, and write nothing outside', () => {
    const h = plantedLab();
    const before = treeOf(h.outside);
    const u = h.uuids.linkOutValid;
    assertCleanRefusal(mdevctl(h, ['start', '-u', u]), 'start');
    assertCleanRefusal(mdevctl(h, ['modify', '-u', u, '--auto']), 'modify');
    assertCleanRefusal(mdevctl(h, ['undefine', '-u', u]), 'undefine');
    assert.deepEqual(treeOf(h.outside), before);
    assert.equal(h.lab.port.list('/sys/bus/mdev/devices').length, 0);
  });

  it('define never writes through a linked parent directory', () => {
    const h = plantedLab();
    const before = treeOf(h.outside);
    const r = mdevctl(h, ['define', '-u', uuidN(40), '-p', 'mtty', '-t', 'mtty-1']);
    assertCleanRefusal(r, 'define -p mtty');
    assert.match(r.stderr, /symbolic link/);
    const j = mdevctl(h, ['define', '-u', uuidN(40), '-p', 'mtty', '-t', 'mtty-1'], {
      MDEVKIT_ERROR_FORMAT: 'json',
    });
    assert.equal(JSON.parse(j.stderr).error.code, 'config-symlink');
    assert.deepEqual(treeOf(h.outside), before);
  });

  it('define over a linked definition replaces the link, never the file it points to', () => {
    const h = plantedLab();
    const before = treeOf(h.outside);
    const u = h.uuids.linkOut;
    const r = mdevctl(h, ['define', '-u', u, '-p', 'mdpy', '-t', 'mdpy-xga']);
    assert.equal(r.code, 0, r.stderr);
    const file = path.join(h.configDir, 'mdpy', u);
    assert.ok(fs.lstatSync(file).isFile());
    assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).mdev_type, 'mdpy-xga');
    assert.deepEqual(treeOf(h.outside), before);
  });

  it('list (active) marks a device with a linked definition as defined but reads nothing through the link', () => {
    const h = plantedLab();
    const u = h.uuids.linkOutValid;
    h.lab.port.write('/sys/class/mdev_bus/mdpy/mdev_supported_types/mdpy-hd/create', u);
    const r = mdevctl(h, ['list', '--dumpjson']);
    assert.equal(r.code, 0, r.stderr);
    // Through the link it would say mdpy-vga (the file outside); sysfs says mdpy-hd.
    assert.match(r.stdout, /mdpy-hd/);
    assert.doesNotMatch(r.stdout, /mdpy-vga/);
  });
});

describe('--jsonfile reads at most 1 MiB', () => {
  it('/dev/zero is refused with a clear error (in process)', { timeout: 60_000 }, () => {
    const h = hostLab();
    for (const cmd of ['define', 'start']) {
      const r = mdevctl(h, [cmd, '-u', uuidN(50), '-p', 'mdpy', '--jsonfile', '/dev/zero']);
      assertCleanRefusal(r, `${cmd} --jsonfile /dev/zero`);
      assert.match(r.stderr, /larger than 1 MiB/);
      const j = mdevctl(h, [cmd, '-u', uuidN(50), '-p', 'mdpy', '--jsonfile', '/dev/zero'], {
        MDEVKIT_ERROR_FORMAT: 'json',
      });
      assert.equal(JSON.parse(j.stderr).error.code, 'file-too-large');
    }
  });

  it('a definition of exactly 1 MiB is taken, one byte more is refused', () => {
    const h = hostLab();
    const body = DEF();
    const exact = path.join(h.dir, 'exact.json');
    fs.writeFileSync(exact, body + ' '.repeat(MAX_JSON_BYTES - body.length));
    assert.equal(fs.statSync(exact).size, MAX_JSON_BYTES);
    const big = path.join(h.dir, 'big.json');
    fs.writeFileSync(big, body + ' '.repeat(MAX_JSON_BYTES - body.length + 1));
    const ok = mdevctl(h, ['define', '-u', uuidN(51), '-p', 'mdpy', '--jsonfile', exact]);
    assert.equal(ok.code, 0, ok.stderr);
    const r = mdevctl(h, ['define', '-u', uuidN(52), '-p', 'mdpy', '--jsonfile', big]);
    assertCleanRefusal(r, 'define --jsonfile big');
    assert.match(r.stderr, /larger than 1 MiB/);
    assert.ok(!fs.existsSync(path.join(h.configDir, 'mdpy', uuidN(52))));
  });

  it('bin/mdevctl with --jsonfile /dev/zero or /dev/stdin fed from /dev/zero exits 1 at once', () => {
    const h = hostLab();
    const zero = fs.openSync('/dev/zero', 'r');
    try {
      for (const file of ['/dev/zero', '/dev/stdin']) {
        const r = spawnSync(
          MDEVCTL_BIN,
          ['define', '-u', uuidN(53), '-p', 'mdpy', '--jsonfile', file],
          {
            env: { ...process.env, MDEVCTL_ENV_ROOT: h.root },
            stdio: [zero, 'pipe', 'pipe'],
            encoding: 'utf8',
            timeout: 30_000,
          },
        );
        assert.equal(r.signal, null, `${file}: killed by ${r.signal} (it read forever)`);
        assert.equal(r.status, 1, `${file}: ${r.stderr}`);
        assert.match(r.stderr, /larger than 1 MiB/);
        assert.doesNotMatch(r.stderr, /^\s+at /m);
      }
    } finally {
      fs.closeSync(zero);
    }
  });

  it('a definition in the config dir larger than 1 MiB is reported, not read whole', () => {
    const h = hostLab();
    fs.mkdirSync(path.join(h.configDir, 'mdpy'));
    const u = uuidN(54);
    fs.writeFileSync(path.join(h.configDir, 'mdpy', u), DEF() + ' '.repeat(MAX_JSON_BYTES));
    const reported: MdevError[] = [];
    listDefinedDevices(h.env, {}, { invalidDefinition: (_p, e) => reported.push(e) });
    assert.equal(reported.length, 1);
    assert.equal(reported[0]!.code, 'file-too-large');
  });

  it('mdevkit start --jsonfile /dev/zero (the mdevkit spelling) too', { timeout: 60_000 }, () => {
    const h = hostLab();
    fs.mkdirSync(path.join(h.root, 'sys/class/mdev_bus'), { recursive: true });
    const r = spawnSync(
      process.execPath,
      [
        MDEVKIT_BIN,
        'start',
        '--root',
        h.root,
        '-u',
        uuidN(55),
        '-p',
        'mdpy',
        '--jsonfile',
        '/dev/zero',
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /larger than 1 MiB/);
  });

  it('startDevice from a document over 1 MiB is refused before anything is created', () => {
    const h = hostLab();
    const json: JsonSource = {
      name: 'the request body',
      read: () => DEF() + ' '.repeat(MAX_JSON_BYTES),
    };
    assert.throws(
      () => startDevice(h.env, { uuid: uuidN(56), parent: 'mdpy', json }),
      (e: unknown) => e instanceof MdevError && e.code === 'file-too-large',
    );
    assert.equal(h.lab.port.list('/sys/bus/mdev/devices').length, 0);
  });
});
