/**
 * Names and values that a request may not carry (issue 12, items 11, 12
 * and 13), refused by the host library, so by the CLI (mdevctl's commands
 * and mdevkit's) and the API alike, before anything is written:
 *
 * - the parent `scripts.d` (and the `.#` temp-file names): a definition
 *   there is in mdevctl's script directory, never listed, never removable;
 * - control characters in names, types and attribute names or values: they
 *   reach terminals raw, and libvirt's XML cannot carry them (the node
 *   device XML of such a device answered 500);
 * - attribute names that are the device core's files (`remove` deleted the
 *   device on start while the reply said active: true).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { formatConfig, writeConfig, type MdevConfig } from '../../src/host/config-store.js';
import {
  MdevError,
  defineDevice,
  listDefinedDevices,
  modifyDevice,
  startDevice,
  undefineDevice,
} from '../../src/host/devices.js';
import { CORE_DEVICE_FILES } from '../../src/host/paths.js';
import { AUTH, labAgent } from '../agent/support.js';
import { labWith, uuidN } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import {
  assertCleanRefusal,
  hostLab,
  mdevctl,
  mdevkit,
  treeOf,
  type HostLab,
} from './host-support.js';

const codeOf = (f: () => unknown): string => {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof MdevError, String(err));
    return err.code;
  }
  assert.fail('accepted');
};

function jsonFile(h: HostLab, name: string, doc: unknown): string {
  const file = path.join(h.dir, name);
  fs.writeFileSync(file, typeof doc === 'string' ? doc : JSON.stringify(doc));
  return file;
}

const devices = (h: HostLab): string[] => h.lab.port.list('/sys/bus/mdev/devices');

/** A definition as an editor leaves it (the library refuses to write these). */
function writeByHand(h: HostLab, uuid: string, config: MdevConfig): void {
  fs.mkdirSync(path.join(h.configDir, 'mtty'), { recursive: true });
  fs.writeFileSync(path.join(h.configDir, 'mtty', uuid), formatConfig(config));
}

describe('parent names that collide with the config directory', () => {
  for (const parent of ['scripts.d', '.#x', '.#00000000-0000-4000-8000-000000000001.1.0']) {
    it(`${JSON.stringify(parent)} is refused by define, start, modify and undefine`, async () => {
      const h = hostLab();
      const before = treeOf(h.root);
      const u = uuidN(1);
      assert.equal(
        codeOf(() => defineDevice(h.env, { uuid: u, parent, type: 'mtty-1' })),
        'reserved-name',
      );
      assert.equal(
        codeOf(() => startDevice(h.env, { uuid: u, parent, type: 'mtty-1' })),
        'reserved-name',
      );
      assert.equal(
        codeOf(() => modifyDevice(h.env, { uuid: u, parent, start: 'auto' })),
        'reserved-name',
      );
      assert.equal(
        codeOf(() => undefineDevice(h.env, u, parent)),
        'reserved-name',
      );
      const doc = jsonFile(h, 'def.json', { mdev_type: 'mtty-1', start: 'auto' });
      for (const args of [
        ['define', '-u', u, '-p', parent, '-t', 'mtty-1'],
        ['define', '-u', u, '-p', parent, '--jsonfile', doc],
        ['start', '-u', u, '-p', parent, '-t', 'mtty-1'],
      ]) {
        const r = mdevctl(h, args);
        assertCleanRefusal(r, args.join(' '));
        assert.match(r.stderr, /Refusing parent name/);
        const k = await mdevkit(h, args, { MDEVKIT_ERROR_FORMAT: 'json' });
        assert.equal(k.code, 1, k.stderr);
        assert.equal(JSON.parse(k.stderr).error.code, 'reserved-name');
      }
      assert.deepEqual(treeOf(h.root), before);
      assert.deepEqual(devices(h), []);
    });
  }

  it('the API refuses it with 400 reserved-name', async () => {
    const la = await labAgent(tmpDir('mdevkit-sec-names-api-'));
    after(() => la.agent.close());
    const r = await la.agent.app.inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: AUTH,
      payload: { parent: 'scripts.d', type: 'mtty-1', activate: false },
    });
    assert.equal(r.statusCode, 400, r.body);
    assert.equal(JSON.parse(r.body).error.code, 'reserved-name');
    assert.deepEqual(fs.readdirSync(path.join(la.env.configDir, 'scripts.d')).sort(), [
      'callouts',
      'notifiers',
    ]);
  });
});

/** A control character of every kind: C0 (NUL through US), DEL, C1 (CSI among them). */
const CONTROLS = [
  '\u0000',
  '\u0001',
  '\t',
  '\n',
  '\r',
  '\u001b',
  '\u001f',
  '\u007f',
  '\u0085',
  '\u009b',
];

describe('control characters are refused at the edge', () => {
  it('in attribute names and values, by define, modify and start --jsonfile', () => {
    const h = hostLab();
    const before = treeOf(h.root);
    let n = 0;
    for (const c of CONTROLS) {
      for (const attr of [
        { [`vendor${c}x`]: '1' },
        { vendor: `1${c}` },
        { [`${c}`]: `${c}[31m` },
      ]) {
        const doc = jsonFile(h, `c${n++}.json`, {
          mdev_type: 'mtty-2',
          start: 'manual',
          attrs: [attr],
        });
        for (const cmd of ['define', 'start']) {
          const r = mdevctl(h, [cmd, '-u', uuidN(n), '-p', 'mtty', '--jsonfile', doc]);
          assertCleanRefusal(r, `${cmd} ${JSON.stringify(attr)}`);
          assert.match(r.stderr, /control character \(U\+[0-9A-F]{4} at offset \d+\)/);
          // The raw character never reaches the terminal.
          assert.ok(
            !/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(r.stderr),
            JSON.stringify(r.stderr),
          );
          const j = mdevctl(h, [cmd, '-u', uuidN(n), '-p', 'mtty', '--jsonfile', doc], {
            MDEVKIT_ERROR_FORMAT: 'json',
          });
          assert.equal(JSON.parse(j.stderr).error.code, 'control-character', j.stderr);
        }
      }
    }
    // modify --addattr, name and value.
    assert.equal(mdevctl(h, ['define', '-u', uuidN(999), '-p', 'mtty', '-t', 'mtty-2']).code, 0);
    const defined = treeOf(h.root);
    for (const c of CONTROLS.filter((x) => x !== '\u0000')) {
      for (const [name, value] of [
        [`a${c}`, '1'],
        ['a', `1${c}`],
      ] as const) {
        const r = mdevctl(h, ['modify', '-u', uuidN(999), '--addattr', name, '--value', value]);
        assertCleanRefusal(r, `modify --addattr ${JSON.stringify(name)}=${JSON.stringify(value)}`);
        assert.equal(
          codeOf(() => modifyDevice(h.env, { uuid: uuidN(999), addAttr: { name, value } })),
          'control-character',
        );
      }
    }
    assert.deepEqual(treeOf(h.root), defined);
    assert.ok(before.size > 0);
    assert.deepEqual(devices(h), []);
  });

  it('in parent and type names', () => {
    const h = hostLab();
    for (const c of CONTROLS.filter((x) => x !== '\u0000')) {
      assert.equal(
        codeOf(() => defineDevice(h.env, { uuid: uuidN(1), parent: `mtty${c}`, type: 'mtty-1' })),
        'control-character',
      );
      const doc = jsonFile(h, 't.json', { mdev_type: `mtty-1${c}`, start: 'manual' });
      const r = mdevctl(h, ['define', '-u', uuidN(2), '-p', 'mtty', '--jsonfile', doc], {
        MDEVKIT_ERROR_FORMAT: 'json',
      });
      assert.equal(JSON.parse(r.stderr).error.code, 'control-character');
    }
    assert.deepEqual(fs.readdirSync(h.configDir), ['scripts.d']);
  });

  it('a definition written by hand with one is skipped and reported, never printed raw', async () => {
    const h = hostLab();
    writeConfig(h.configDir, 'mtty', uuidN(1), { mdevType: 'mtty-1', start: 'manual', attrs: [] });
    fs.writeFileSync(
      path.join(h.configDir, 'mtty', uuidN(2)),
      JSON.stringify({
        mdev_type: 'mtty-1',
        start: 'auto',
        attrs: [{ x: '\u001b]0;owned\u0007' }],
      }),
    );
    const r = mdevctl(h, ['list', '-d']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(uuidN(1)));
    assert.doesNotMatch(r.stdout, new RegExp(uuidN(2)));
    assert.match(
      r.stderr,
      /Skipping invalid definition: the value of attribute 0 holds a control character/,
    );
    assert.ok(!/[\u001b\u0007]/.test(r.stdout + r.stderr));
    const reported: MdevError[] = [];
    listDefinedDevices(h.env, {}, { invalidDefinition: (_p, e) => reported.push(e) });
    assert.deepEqual(
      reported.map((e) => e.code),
      ['control-character'],
    );
    // libvirt's listings go on past it, and its XML never sees the character.
    const list = await mdevkit(h, ['nodedev-list', '--all']);
    assert.equal(list.code, 0, list.stderr);
    assert.ok(!/[\u001b\u0007]/.test(list.stdout + list.stderr));
    // start of it says why, and creates nothing.
    const s = mdevctl(h, ['start', '-u', uuidN(2)], { MDEVKIT_ERROR_FORMAT: 'json' });
    assert.equal(s.code, 1);
    assert.equal(JSON.parse(s.stderr).error.code, 'control-character');
    assert.deepEqual(devices(h), []);
  });

  it("the device's node device XML answers (no 500) when a running device's definition holds one", async () => {
    const la = await labAgent(tmpDir('mdevkit-sec-names-xml-'));
    after(() => la.agent.close());
    const u = uuidN(3);
    la.lab.port.write('/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1/create', u);
    fs.mkdirSync(path.join(la.env.configDir, 'mtty'), { recursive: true });
    fs.writeFileSync(
      path.join(la.env.configDir, 'mtty', u),
      JSON.stringify({
        mdev_type: 'mtty-1',
        start: 'manual',
        attrs: [{ a: '1' }, { b: '\u0001' }],
      }),
    );
    const r = await la.agent.app.inject({
      url: `/api/v1/devices/${u}/libvirt/nodedev`,
      headers: AUTH,
    });
    assert.ok(r.statusCode < 500, `${r.statusCode} ${r.body}`);
    assert.ok(!r.body.includes('\u0001'));
    const post = await la.agent.app.inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: AUTH,
      payload: {
        parent: 'mtty',
        type: 'mtty-1',
        activate: false,
        attrs: [{ name: 'a', value: 'x\u001b[2J' }],
      },
    });
    assert.equal(post.statusCode, 400, post.body);
  });
});

/** A file tree as a map from relative path to contents (directories map to ""). */
function filesUnder(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const rel of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const p = path.join(dir, rel);
    out.set(rel, fs.lstatSync(p).isFile() ? fs.readFileSync(p, 'latin1') : '');
  }
  return out;
}

describe("control characters and core attributes at the API, with the CLI's codes", () => {
  // The library's rule: every control character, the invisible formatting
  // characters (a left-to-right mark, the BOM) and a lone surrogate.
  const hostile = [...CONTROLS.filter((c) => c !== '\u0000'), '\u200e', '\ufeff', '\ud800'];

  it('POST /api/v1/devices refuses them in names, types and attributes: 400 control-character', async () => {
    const la = await labAgent(tmpDir('mdevkit-sec-names-api-cc-'));
    after(() => la.agent.close());
    const before = filesUnder(la.env.configDir);
    const bodies = hostile.flatMap((c) => [
      { parent: 'mtty', type: 'mtty-1', attrs: [{ name: `a${c}`, value: '1' }] },
      { parent: 'mtty', type: 'mtty-1', attrs: [{ name: 'a', value: `1${c}` }] },
      { parent: 'mtty', type: `mtty-1${c}` },
      { parent: `mtty${c}`, type: 'mtty-1' },
    ]);
    for (const body of bodies) {
      for (const activate of [false, true]) {
        const r = await la.agent.app.inject({
          method: 'POST',
          url: '/api/v1/devices',
          headers: AUTH,
          payload: { ...body, activate },
        });
        const what = JSON.stringify({ ...body, activate });
        assert.equal(r.statusCode, 400, `${what}: ${r.body}`);
        assert.equal(JSON.parse(r.body).error.code, 'control-character', `${what}: ${r.body}`);
      }
    }
    assert.deepEqual(filesUnder(la.env.configDir), before);
    assert.deepEqual(la.lab.port.list('/sys/bus/mdev/devices'), []);
  });

  it('PATCH /api/v1/devices/{uuid} (attribute edits) refuses them, and core attributes, leaving the definition as it was', async () => {
    const la = await labAgent(tmpDir('mdevkit-sec-names-api-patch-'));
    after(() => la.agent.close());
    const u = uuidN(7);
    const made = await la.agent.app.inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: AUTH,
      payload: { uuid: u, parent: 'mtty', type: 'mtty-1', attrs: [{ name: 'a', value: '1' }] },
    });
    assert.equal(made.statusCode, 201, made.body);
    const definition = fs.readFileSync(path.join(la.env.configDir, 'mtty', u), 'utf8');
    const edits: [attrs: { name: string; value: string }[], code: string][] = [
      ...hostile.flatMap((c): [{ name: string; value: string }[], string][] => [
        [[{ name: `a${c}`, value: '1' }], 'control-character'],
        [[{ name: 'a', value: `1${c}` }], 'control-character'],
      ]),
      ...[...CORE_DEVICE_FILES, 'power/control', 'driver/unbind', 'mdev_type/create'].map(
        (name): [{ name: string; value: string }[], string] => [
          [
            { name: 'a', value: '1' },
            { name, value: '1' },
          ],
          'core-attribute',
        ],
      ),
    ];
    for (const [attrs, code] of edits) {
      const r = await la.agent.app.inject({
        method: 'PATCH',
        url: `/api/v1/devices/${u}`,
        headers: AUTH,
        payload: { attrs },
      });
      assert.equal(r.statusCode, 400, `${JSON.stringify(attrs)}: ${r.body}`);
      assert.equal(JSON.parse(r.body).error.code, code, `${JSON.stringify(attrs)}: ${r.body}`);
    }
    assert.equal(fs.readFileSync(path.join(la.env.configDir, 'mtty', u), 'utf8'), definition);
    // Core attributes at create too, define-only and with activate.
    for (const activate of [false, true]) {
      const r = await la.agent.app.inject({
        method: 'POST',
        url: '/api/v1/devices',
        headers: AUTH,
        payload: {
          parent: 'mtty',
          type: 'mtty-1',
          activate,
          attrs: [{ name: 'driver/unbind', value: '1' }],
        },
      });
      assert.equal(r.statusCode, 400, r.body);
      assert.equal(JSON.parse(r.body).error.code, 'core-attribute', r.body);
    }
    assert.deepEqual(fs.readdirSync(path.join(la.env.configDir, 'mtty')), [u]);
    assert.deepEqual(la.lab.port.list('/sys/bus/mdev/devices'), []);
  });
});

describe("attribute names that are the device core's files", () => {
  const names = [
    ...CORE_DEVICE_FILES,
    'power/control',
    'driver/unbind',
    'subsystem/drivers_probe',
    'iommu_group/type',
    'mdev_type/create',
  ];

  it('are refused by define and modify before anything is stored', () => {
    const h = hostLab();
    assert.equal(mdevctl(h, ['define', '-u', uuidN(1), '-p', 'mtty', '-t', 'mtty-2']).code, 0);
    const before = treeOf(h.root);
    for (const name of names) {
      const r = mdevctl(h, ['modify', '-u', uuidN(1), '--addattr', name, '--value', '1']);
      assertCleanRefusal(r, `modify --addattr ${name}`);
      assert.match(r.stderr, /belongs to the device core/);
      const doc = jsonFile(h, 'core.json', {
        mdev_type: 'mtty-2',
        start: 'manual',
        attrs: [{ [name]: '1' }],
      });
      const d = mdevctl(h, ['define', '-u', uuidN(2), '-p', 'mtty', '--jsonfile', doc], {
        MDEVKIT_ERROR_FORMAT: 'json',
      });
      assert.equal(JSON.parse(d.stderr).error.code, 'core-attribute', name);
    }
    assert.deepEqual(treeOf(h.root), before);
  });

  it('are never written into a definition, whoever asks the store', () => {
    const h = hostLab();
    for (const name of names) {
      assert.equal(
        codeOf(() =>
          writeConfig(h.configDir, 'mtty', uuidN(1), {
            mdevType: 'mtty-2',
            start: 'manual',
            attrs: [{ name, value: '1' }],
          }),
        ),
        'core-attribute',
      );
    }
    assert.equal(
      codeOf(() =>
        writeConfig(h.configDir, 'mtty', uuidN(1), {
          mdevType: 'mtty-2',
          start: 'manual',
          attrs: [{ name: 'x', value: '\u001b[2J' }],
        }),
      ),
      'control-character',
    );
    assert.deepEqual(fs.readdirSync(h.configDir), ['scripts.d']);
  });

  it('in a definition written by hand, make start refuse before the device is created', () => {
    const h = hostLab();
    for (const [i, name] of names.entries()) {
      const u = uuidN(100 + i);
      writeByHand(h, u, {
        mdevType: 'mtty-2',
        start: 'manual',
        attrs: [{ name, value: name === 'uevent' ? 'remove' : '1' }],
      });
      const r = mdevctl(h, ['start', '-u', u], { MDEVKIT_ERROR_FORMAT: 'json' });
      assert.equal(r.code, 1, `${name}: ${r.stderr}`);
      assert.equal(JSON.parse(r.stderr).error.code, 'core-attribute', name);
      assert.deepEqual(devices(h), [], `${name}: a device was created`);
    }
  });

  it('remove no longer deletes the device the reply calls active (the API)', async () => {
    const la = await labAgent(tmpDir('mdevkit-sec-names-remove-'), labWith([{ driver: 'mtty' }]));
    after(() => la.agent.close());
    const r = await la.agent.app.inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: AUTH,
      payload: {
        parent: 'mtty',
        type: 'mtty-2',
        activate: true,
        attrs: [{ name: 'remove', value: '1' }],
      },
    });
    assert.equal(r.statusCode, 400, r.body);
    assert.equal(JSON.parse(r.body).error.code, 'core-attribute');
    assert.deepEqual(la.lab.port.list('/sys/bus/mdev/devices'), []);
  });
});
