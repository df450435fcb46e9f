/**
 * Names that try to leave their directory — attribute names, parents and
 * UUIDs with "..", "/", NUL, absolute paths or links leading out of the
 * device — are refused with an error naming them, and nothing is written
 * anywhere else: checked on the emulated host (through its sysfs port,
 * the same files the kernel shows) and on the config directory, for well
 * over 200 hostile names.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatConfig, type MdevConfig } from '../../src/host/config-store.js';
import {
  AttributeWriteError,
  MdevError,
  defineDevice,
  startDevice,
  undefineDevice,
  modifyDevice,
  stopDevice,
} from '../../src/host/devices.js';
import type { Environment } from '../../src/host/environment.js';
import type { SysfsPort } from '../../src/port/sysfs-port.js';
import { runMdevctl } from '../../src/ctl/mdevctl/run.js';
import { labWith, uuidN } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { readTree } from './support/differential.js';

/** Every path under /sys with the content of each readable file. */
function snapshotSysfs(port: SysfsPort): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (p: string, depth: number): void => {
    const kind = port.kind(p);
    if (kind === 'link') {
      out.set(p, `-> ${port.readlink(p)}`);
      return;
    }
    if (kind === 'file') {
      try {
        out.set(p, port.read(p));
      } catch {
        out.set(p, '<unreadable>');
      }
      return;
    }
    out.set(p, '<dir>');
    if (depth > 12) return;
    for (const n of port.list(p).sort()) walk(`${p}/${n}`, depth + 1);
  };
  walk('/sys', 0);
  return out;
}

/**
 * A definition as an editor leaves it: the library itself refuses to write
 * one holding these names (writeConfig checks), so only a hand can.
 */
function writeByHand(configDir: string, parent: string, uuid: string, config: MdevConfig): void {
  fs.mkdirSync(path.join(configDir, parent), { recursive: true });
  fs.writeFileSync(path.join(configDir, parent, uuid), formatConfig(config));
}

function hostileAttributeNames(): string[] {
  const prefixes = [
    '..',
    '../',
    '../../',
    '../../../',
    '/',
    '/sys/',
    './',
    'a/../../',
    'x/./',
    './/',
    'sub//',
  ];
  const links = [
    'mdev_type/',
    'driver/',
    'subsystem/',
    'iommu_group/',
    'mdev_type/../',
    'driver/../../',
  ];
  const targets = [
    'remove',
    'create',
    'unbind',
    'etc/passwd',
    'devices',
    'x',
    'available_instances',
    '',
  ];
  const names = new Set<string>();
  for (const p of [...prefixes, ...links]) for (const t of targets) names.add(p + t);
  for (const t of targets) {
    names.add(`${t}\0`);
    names.add(`\0${t}`);
    names.add(`${t}/..`);
    names.add(`${t}/.`);
  }
  names.add('');
  names.add('.');
  names.add('..');
  names.add('/');
  names.delete('remove'); // a real attribute of the device, not hostile
  return [...names];
}

const HOSTILE_PARENTS = [
  '',
  '.',
  '..',
  '../x',
  '../../etc',
  '/',
  '/etc',
  '/sys/class/mdev_bus/mtty',
  'mtty/..',
  'mtty/../../',
  'a/b',
  'mtty\0',
  '\0',
  './mtty',
  'mtty/',
  '//',
  '../mdevctl.d',
  '../../../../../../tmp/evil',
];

const HOSTILE_UUIDS = [
  '../11111111-1111-4111-8111-111111111111',
  '11111111-1111-4111-8111-111111111111/..',
  '/etc/passwd',
  '..',
  '11111111-1111-4111-8111-11111111111\0',
  '11111111-1111-4111-8111-1111111111/x',
  '',
  'urn:uuid:../../../x',
  '{../../../../../../../x}',
];

test('hostile names never reach outside their directory', () => {
  const lab = labWith([{ driver: 'mtty' }]);
  const dir = tmpDir('mdevkit-hostile-');
  const root = path.join(dir, 'root');
  const configDir = path.join(root, 'etc/mdevctl.d');
  fs.mkdirSync(path.join(configDir, 'scripts.d/callouts'), { recursive: true });
  fs.mkdirSync(path.join(configDir, 'scripts.d/notifiers'), { recursive: true });
  // what mdevctl 1.4 checks for before it reads its command line
  for (const d of ['callouts', 'notifiers']) {
    fs.mkdirSync(path.join(root, 'usr/lib/mdevctl/scripts.d', d), { recursive: true });
  }
  fs.writeFileSync(path.join(dir, 'outside'), 'untouched');
  const env: Environment = {
    port: lab.port,
    root,
    configDir,
    calloutDirs: [path.join(configDir, 'scripts.d/callouts')],
    notifierDirs: [path.join(configDir, 'scripts.d/notifiers')],
  };
  const parent = lab.port.list('/sys/class/mdev_bus')[0]!;
  const type = lab.port.list(`/sys/class/mdev_bus/${parent}/mdev_supported_types`)[0]!;
  let checked = 0;

  // Attribute names: a definition carrying one is started; the start fails
  // naming the attribute, the device is removed again, sysfs is as before.
  const names = hostileAttributeNames();
  const sysBefore = snapshotSysfs(lab.port);
  names.forEach((name, i) => {
    const uuid = uuidN(1000 + i);
    writeByHand(configDir, parent, uuid, {
      mdevType: type,
      start: 'manual',
      attrs: [{ name, value: '1' }],
    });
    assert.throws(
      () => startDevice(env, { uuid }),
      (err: unknown) => {
        assert.ok(err instanceof MdevError, `${JSON.stringify(name)}: ${String(err)}`);
        // Refused by name (a core file of the device, a NUL included), or
        // absent from the device: never written.
        assert.ok(
          err.code === 'invalid-name' ||
            err.code === 'core-attribute' ||
            err.code === 'control-character' ||
            err.code === 'attribute-missing',
          `${JSON.stringify(name)}: ${err.code}: ${err.message}`,
        );
        if (err instanceof AttributeWriteError) assert.equal(err.removeError, undefined);
        return true;
      },
      `attribute ${JSON.stringify(name)} was accepted`,
    );
    assert.deepEqual(
      snapshotSysfs(lab.port),
      sysBefore,
      `attribute ${JSON.stringify(name)} changed sysfs`,
    );
    checked++;
  });

  // Parents: refused by every command before anything is written.
  const configBefore = readTree(dir);
  for (const p of HOSTILE_PARENTS) {
    const uuid = uuidN(5000 + checked);
    const ops: [string, () => unknown][] = [
      ['define', () => defineDevice(env, { uuid, parent: p, type })],
      [
        'define --jsonfile',
        () =>
          defineDevice(env, {
            uuid,
            parent: p,
            json: { name: 'x', read: () => '{"mdev_type":"t","start":"auto"}' },
          }),
      ],
      ['start', () => startDevice(env, { uuid, parent: p, type })],
      ['modify', () => modifyDevice(env, { uuid, parent: p, start: 'auto' })],
      ['undefine', () => undefineDevice(env, uuid, p)],
    ];
    for (const [what, op] of ops) {
      assert.throws(
        op,
        (err: unknown) => err instanceof MdevError,
        `${what} -p ${JSON.stringify(p)}`,
      );
      checked++;
    }
  }
  assert.deepEqual(readTree(dir), configBefore);
  assert.deepEqual(snapshotSysfs(lab.port), sysBefore);

  // UUIDs: refused by the library, and by the command line as a usage error.
  for (const u of HOSTILE_UUIDS) {
    assert.throws(() => defineDevice(env, { uuid: u, parent, type }), /Invalid UUID/);
    assert.throws(() => stopDevice(env, u), /Invalid UUID/);
    assert.throws(() => startDevice(env, { uuid: u, parent, type }), /Invalid UUID/);
    const stderr: string[] = [];
    const io = {
      stdout: { write: () => true },
      stderr: { write: (s: string) => stderr.push(s) },
      env: { MDEVCTL_ENV_ROOT: root },
      cwd: dir,
      readStdin: () => '',
    };
    assert.equal(runMdevctl(io, ['define', '-u', u, '-p', 'mtty', '-t', type]), 2, stderr.join(''));
    assert.match(stderr.join(''), /invalid value/);
    checked += 4;
  }
  assert.deepEqual(readTree(dir), configBefore);
  assert.equal(fs.readFileSync(path.join(dir, 'outside'), 'utf8'), 'untouched');
  assert.ok(checked >= 200, `only ${checked} hostile cases`);
});

test('the command line names a refused parent in its error', () => {
  const dir = tmpDir('mdevkit-hostile-cli-');
  fs.mkdirSync(path.join(dir, 'etc/mdevctl.d'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'usr/lib/mdevctl/scripts.d/callouts'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'usr/lib/mdevctl/scripts.d/notifiers'), { recursive: true });
  const stderr: string[] = [];
  const io = {
    stdout: { write: () => true },
    stderr: { write: (s: string) => stderr.push(s) },
    env: { MDEVCTL_ENV_ROOT: dir },
    cwd: dir,
    readStdin: () => '',
  };
  const code = runMdevctl(io, ['define', '-u', uuidN(1), '-p', '../../x', '-t', 'mtty-1']);
  assert.equal(code, 1);
  assert.match(stderr.join(''), /^Error: Refusing parent name "\.\.\/\.\.\/x"/);
  assert.ok(!fs.existsSync(path.join(dir, 'x')));
  assert.ok(!fs.existsSync(path.join(dir, 'etc/x')));
});
