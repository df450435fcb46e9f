/**
 * The configuration file: the example parses; bad input (unknown fields,
 * wrong types, hostile names, broken YAML) is refused with the file, line,
 * column and field named, before anything reads the host.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  globMatch,
  loadConfigFile,
  parseApIds,
  selectConfig,
} from '../../../src/host/desired/config.js';
import { DesiredError } from '../../../src/host/desired/errors.js';
import { tmpDir } from '../../support/tmp.js';

const EXAMPLE = new URL('../../../examples/host.yaml', import.meta.url).pathname;

function write(text: string): string {
  const file = path.join(tmpDir('mdevkit-config-'), 'host.yaml');
  fs.writeFileSync(file, text);
  return file;
}

function refused(text: string): DesiredError {
  const file = write(text);
  try {
    loadConfigFile(file);
  } catch (err) {
    assert.ok(err instanceof DesiredError, `a DesiredError, got ${String(err)}`);
    assert.ok(err.message.startsWith(file), `the message names the file: ${err.message}`);
    return err;
  }
  assert.fail(`accepted:\n${text}`);
}

test('the example parses into its configurations', () => {
  const f = loadConfigFile(EXAMPLE);
  assert.deepEqual([...f.configs.keys()], ['default', 'crypto']);
  const d = selectConfig(f);
  assert.equal(d.policy, 'pack');
  assert.equal(d.entries[0]!.devices[0]!.count, 'fill');
  assert.deepEqual(d.entries[0]!.parents.vendorDevice, { vendor: 0x10de, device: 0x13f2 });
  assert.deepEqual(d.entries[0]!.devices[0]!.attrs, [
    { name: 'nvidia/vgpu_params', value: 'frame_rate_limiter=0' },
  ]);
  const crypto = selectConfig(f, 'crypto');
  assert.deepEqual(crypto.entries[0]!.matrix[0], {
    field: 'configs.crypto.entries[0].matrix[0]',
    adapters: [5],
    domains: [0x47],
    controlDomains: [0x47],
    start: 'auto',
  });
  assert.deepEqual(f.locate('configs.default.entries[1].devices[0]'), { line: 21, column: 13 });
});

test('an unknown field is named with its line and column', () => {
  const e = refused(`version: 1
configs:
  default:
    entries:
      - parents: all
        devices:
          - type: mtty-1
            count: 2
            colour: blue
`);
  assert.equal(e.code, 'config-invalid');
  assert.equal(e.context.line, '9');
  assert.equal(e.context.column, '13');
  assert.equal(e.context.field, 'configs.default.entries[0].devices[0].colour');
  assert.match(
    e.message,
    /host\.yaml:9:13: configs\.default\.entries\[0\]\.devices\[0\]\.colour: unknown field "colour"/,
  );
});

test('wrong types and missing fields name the field', () => {
  let e = refused(`version: 1
configs:
  default:
    entries:
      - parents: all
        devices:
          - { type: mtty-1, count: many }
`);
  assert.equal(e.context.field, 'configs.default.entries[0].devices[0].count');
  assert.equal(e.context.line, '7');
  e = refused(
    `version: 1\nconfigs:\n  default:\n    entries:\n      - parents: all\n        devices:\n          - { count: 1 }\n`,
  );
  assert.match(e.message, /either `type` or `select`/);
  e = refused(`configs: {}\n`);
  assert.equal(e.context.field, 'version');
  e = refused(`version: 2\nconfigs: {}\n`);
  assert.equal(e.context.line, '1');
  e = refused(`version: 1\nconfigs:\n  default:\n    policy: random\n    entries: []\n`);
  assert.equal(e.context.field, 'configs.default.policy');
  assert.equal(e.context.line, '4');
});

test('hostile names are refused before anything reads the host', () => {
  const cases: [string, string][] = [
    ['type: ../../../etc', 'devices[0].type'],
    ['type: a/b', 'devices[0].type'],
    ['type: ".."', 'devices[0].type'],
    ['type: "x\\0y"', 'devices[0].type'],
    ['type: mtty-1, attrs: { "../remove": "1" }', 'devices[0].attrs'],
    ['type: mtty-1, attrs: { "/sys/bus/mdev/devices/x/remove": "1" }', 'devices[0].attrs'],
    ['type: mtty-1, parents: ["a/b"]', 'devices[0].parents[0]'],
  ];
  for (const [req, field] of cases) {
    const e = refused(`version: 1
configs:
  default:
    entries:
      - parents: all
        devices:
          - { ${req}, count: 1 }
`);
    assert.equal(e.code, 'config-invalid', req);
    assert.ok(e.context.field?.includes(field), `${req}: field ${e.context.field}`);
    assert.equal(e.context.line, '7', req);
  }
  const parent = refused(
    `version: 1\nconfigs:\n  default:\n    entries:\n      - parents: { address: ".." }\n        devices: [{ type: t, count: 1 }]\n`,
  );
  assert.equal(parent.context.field, 'configs.default.entries[0].parents.address');
  const name = refused(`version: 1\nconfigs:\n  "../x":\n    entries: []\n`);
  assert.match(name.message, /configs\.\.\.\/x|configuration name/);
  const nul = write('version: 1\nconfigs: {}\n\0');
  assert.throws(() => loadConfigFile(nul), /NUL/);
});

test('broken YAML and unreadable files are reported with their place', () => {
  const e = refused(`version: 1\nconfigs:\n  default:\n    entries: [\n`);
  assert.match(e.message, /not valid YAML/);
  assert.ok(Number(e.context.line) >= 4);
  const dup = refused(`version: 1\nversion: 1\nconfigs: {}\n`);
  assert.match(dup.message, /not valid YAML/);
  assert.throws(
    () => loadConfigFile('/nonexistent/host.yaml'),
    (err: unknown) => err instanceof DesiredError && err.code === 'config-unreadable',
  );
});

test('an unknown configuration name lists the ones there are', () => {
  const f = loadConfigFile(EXAMPLE);
  assert.throws(
    () => selectConfig(f, 'nope'),
    (err: unknown) =>
      err instanceof DesiredError &&
      err.code === 'config-unknown' &&
      /default, crypto/.test(err.message),
  );
});

test('AP id lists and globs', () => {
  assert.deepEqual(parseApIds('5,0x47,10-12'), [5, 10, 11, 12, 0x47]);
  assert.match(String(parseApIds('300')), /above 255/);
  assert.match(String(parseApIds('x')), /not an id/);
  assert.ok(globMatch('0000:8?:00.*', '0000:85:00.0'));
  assert.ok(globMatch('0000:[8]5:00.0', '0000:85:00.0'));
  assert.ok(!globMatch('0000:86:*', '0000:85:00.0'));
  assert.ok(globMatch('a.b', 'a.b') && !globMatch('a.b', 'aXb'));
});
