/**
 * What mdevctl 1.2.0 cannot be the oracle for: behaviour of later upstream
 * versions (--force, modify --jsonfile, --live, callouts in
 * /usr/lib/mdevctl/scripts.d) and mdevkit's improvements (mdevctl#115's
 * attribute errors), plus start/stop/autostart against the emulated kernel,
 * where devices really appear and disappear. Expected results are written
 * here, from upstream's source and docs/mdevctl-compat.md.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runMdevctl } from '../../src/ctl/mdevctl/run.js';
import { readConfig, writeConfig } from '../../src/host/config-store.js';
import {
  AttributeWriteError,
  listActiveDevices,
  listDefinedDevices,
  startDevice,
  startParentDevices,
  stopDevice,
} from '../../src/host/devices.js';
import type { Environment } from '../../src/host/environment.js';
import { FsSysfsPort } from '../../src/port/fs-port.js';
import { labWith, uuidN } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';

function labEnv(): { env: Environment; parent: string; type: string } {
  const lab = labWith([{ driver: 'mtty' }]);
  const root = tmpDir('mdevkit-beyond-');
  const configDir = path.join(root, 'etc/mdevctl.d');
  fs.mkdirSync(configDir, { recursive: true });
  const env: Environment = { port: lab.port, root, configDir, calloutDirs: [], notifierDirs: [] };
  const parent = lab.port.list('/sys/class/mdev_bus')[0]!;
  const type = lab.port.list(`/sys/class/mdev_bus/${parent}/mdev_supported_types`).sort()[0]!;
  return { env, parent, type };
}

test('start: a failing attribute says which, where and why, and the device is gone again (mdevctl#115)', () => {
  const { env, parent, type } = labEnv();
  const uuid = uuidN(1);
  writeConfig(env.configDir, parent, uuid, {
    mdevType: type,
    start: 'manual',
    attrs: [{ name: 'vendor/sample_mdev_dev', value: 'x' }],
  });
  assert.throws(
    () => startDevice(env, { uuid }),
    (err: unknown) => {
      assert.ok(err instanceof AttributeWriteError);
      assert.equal(err.attribute, 'vendor/sample_mdev_dev');
      assert.equal(err.removeError, undefined);
      assert.equal(
        err.message,
        `Failed to set attribute 'vendor/sample_mdev_dev' of mdev ${uuid} (parent ${parent}, type ${type}): ` +
          `writing "x" to /sys/bus/mdev/devices/${uuid}/vendor/sample_mdev_dev: Permission denied (EACCES); ` +
          'the device was removed again',
      );
      return true;
    },
  );
  assert.equal(listActiveDevices(env).size, 0);
});

test('start, list and stop on the emulated kernel', () => {
  const { env, parent, type } = labEnv();
  const dev = startDevice(env, { parent, type });
  assert.equal(dev.generatedUuid, true);
  const active = listActiveDevices(env);
  assert.deepEqual(
    [...active.values()].flat().map((d) => [d.uuid, d.parent, d.type, d.defined]),
    [[dev.uuid, parent, type, false]],
  );
  stopDevice(env, dev.uuid);
  assert.equal(listActiveDevices(env).size, 0);
});

test('start-parent-mdevs starts only the auto definitions, and reports each failure', () => {
  const { env, parent, type } = labEnv();
  writeConfig(env.configDir, parent, uuidN(1), { mdevType: type, start: 'auto', attrs: [] });
  writeConfig(env.configDir, parent, uuidN(2), { mdevType: type, start: 'manual', attrs: [] });
  writeConfig(env.configDir, parent, uuidN(3), {
    mdevType: 'no-such-type',
    start: 'auto',
    attrs: [],
  });
  const outcomes = startParentDevices(env, parent);
  assert.deepEqual(
    outcomes.map((o) => [o.device.uuid, o.error === undefined ? 'ok' : (o.error as Error).message]),
    [
      [uuidN(1), 'ok'],
      [uuidN(3), `Parent ${parent} does not support mdev type no-such-type`],
    ],
  );
  const active = [...listActiveDevices(env).values()].flat();
  assert.deepEqual(
    active.map((d) => [d.uuid, d.start, d.defined]),
    [[uuidN(1), 'auto', true]],
  );
});

/** A static tree as mdevctl-ns would mount it, driven through MDEVCTL_ENV_ROOT. */
function staticTree(): {
  root: string;
  run: (args: string[], stdin?: string) => [number, string, string];
} {
  const root = tmpDir('mdevkit-beyond-cli-');
  for (const d of ['callouts', 'notifiers']) {
    fs.mkdirSync(path.join(root, 'usr/lib/mdevctl/scripts.d', d), { recursive: true });
    fs.mkdirSync(path.join(root, 'etc/mdevctl.d/scripts.d', d), { recursive: true });
  }
  const parentDir = path.join(root, 'sys/devices/pci0000:00/0000:00:02.0');
  const typeDir = path.join(parentDir, 'mdev_supported_types/i915-GVTg_V5_4');
  fs.mkdirSync(path.join(typeDir, 'devices'), { recursive: true });
  fs.writeFileSync(path.join(typeDir, 'available_instances'), '2\n');
  fs.writeFileSync(path.join(typeDir, 'device_api'), 'vfio-pci\n');
  fs.writeFileSync(path.join(typeDir, 'create'), '');
  fs.mkdirSync(path.join(root, 'sys/class/mdev_bus'), { recursive: true });
  fs.symlinkSync(
    '../../devices/pci0000:00/0000:00:02.0',
    path.join(root, 'sys/class/mdev_bus/0000:00:02.0'),
  );
  // One active device.
  const dev = path.join(parentDir, uuidN(9));
  fs.mkdirSync(dev);
  fs.symlinkSync('../mdev_supported_types/i915-GVTg_V5_4', path.join(dev, 'mdev_type'));
  fs.writeFileSync(path.join(dev, 'remove'), '');
  fs.mkdirSync(path.join(root, 'sys/bus/mdev/devices'), { recursive: true });
  fs.symlinkSync(
    `../../../devices/pci0000:00/0000:00:02.0/${uuidN(9)}`,
    path.join(root, 'sys/bus/mdev/devices', uuidN(9)),
  );
  const run = (args: string[], stdin = ''): [number, string, string] => {
    const out: string[] = [];
    const err: string[] = [];
    const code = runMdevctl(
      {
        stdout: { write: (s: string) => out.push(s) },
        stderr: { write: (s: string) => err.push(s) },
        env: { MDEVCTL_ENV_ROOT: root },
        cwd: root,
        readStdin: () => stdin,
      },
      args,
    );
    return [code, out.join(''), err.join('')];
  };
  return { root, run };
}

test('modify --jsonfile replaces the definition (mdevctl 1.3)', () => {
  const { root, run } = staticTree();
  const u = uuidN(1);
  assert.equal(run(['define', '-u', u, '-p', '0000:00:02.0', '-t', 'i915-GVTg_V5_4'])[0], 0);
  const doc = JSON.stringify({
    mdev_type: 'i915-GVTg_V5_8',
    start: 'auto',
    attrs: [{ a: '1' }],
    extra: 1,
  });
  let [code, , err] = run(['modify', '-u', u, '--jsonfile', '/dev/stdin'], doc);
  assert.equal(code, 1);
  assert.match(err, /Parent device required to modify device via json file/);
  // As libvirt runs it: --defined names the stored definition explicitly.
  [code, , err] = run(
    ['modify', '--uuid', u, '--parent=0000:00:02.0', '--jsonfile', '/dev/stdin', '--defined'],
    doc,
  );
  assert.equal(code, 0, err);
  const configDir = path.join(root, 'etc/mdevctl.d');
  assert.deepEqual(readConfig(configDir, '0000:00:02.0', u), {
    mdevType: 'i915-GVTg_V5_8',
    start: 'auto',
    attrs: [{ name: 'a', value: '1' }],
  });
  assert.equal(run(['modify', '-u', u, '--live'])[0], 2, '--live requires --jsonfile');
  assert.equal(run(['modify', '-u', u])[0], 2, 'and modify one of its options (1.4)');
});

test('--force goes past a refusing pre callout; callouts in /usr/lib/mdevctl/scripts.d come first', () => {
  const { root, run } = staticTree();
  const log = path.join(root, 'callout.log');
  const script = (name: string, body: string): void => {
    const dir = path.join(root, 'usr/lib/mdevctl/scripts.d/callouts');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, name), `#!/bin/sh\necho "${name} $*" >> '${log}'\n${body}`, {
      mode: 0o755,
    });
  };
  script('policy.sh', 'case "$*" in *"-e pre"*) echo "not now" >&2; exit 1;; esac\nexit 0\n');
  const old = path.join(root, 'etc/mdevctl.d/scripts.d/callouts/old.sh');
  fs.writeFileSync(old, `#!/bin/sh\necho "old.sh $*" >> '${log}'\nexit 0\n`, { mode: 0o755 });
  const removeFile = path.join(root, 'sys/devices/pci0000:00/0000:00:02.0', uuidN(9), 'remove');

  let [code, , err] = run(['stop', '-u', uuidN(9)]);
  assert.equal(code, 1, err);
  assert.match(err, /policy\.sh: not now/);
  assert.match(err, /^Error: Script '".*policy\.sh"' failed with status '1'\n/m);
  assert.equal(fs.readFileSync(removeFile, 'utf8'), '', 'the refused stop wrote nothing');

  [code, , err] = run(['stop', '--force', '-u', uuidN(9)]);
  assert.equal(code, 0, err);
  assert.match(
    err,
    /WARN {2}mdevctl::callouts\] Forcing operation 'stop' despite callout failure\. Error was: Script '".*policy\.sh"' failed with status '1'\n/,
  );
  assert.equal(fs.readFileSync(removeFile, 'utf8'), '1');
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
  const args = `-t i915-GVTg_V5_4 -a stop -u ${uuidN(9)} -p 0000:00:02.0`.split(' ');
  // Every script is asked for its version first (none has one); then the
  // first that claims the device, in the newer directory, gets the events.
  assert.ok(
    lines.every((l) => l.startsWith('policy.sh ') || l.includes('-e get -a capabilities')),
    `the old directory's script gets no event:\n${lines.join('\n')}`,
  );
  assert.ok(lines[0]!.startsWith('policy.sh -t i915-GVTg_V5_4 -e get -a capabilities'));
  assert.ok(lines.some((l) => l.includes('-e post') && l.includes('-s success')));
  const pre = lines.find((l) => l.includes('-e pre'))!;
  for (const a of args) assert.ok(pre.includes(a), pre);
});

test('modify --live goes through a versioned callout script (capabilities protocol)', () => {
  const { root, run } = staticTree();
  const active = uuidN(9);
  const doc = (type: string): string =>
    JSON.stringify({ mdev_type: type, start: 'manual', attrs: [{ weight: '8' }] });
  const live = ['modify', '-u', active, '--live', '--jsonfile', '/dev/stdin'];

  let [code, , err] = run(live, doc('i915-GVTg_V5_4'));
  assert.equal(code, 1);
  assert.match(err, /No callout script with version support found that supports live modify/);
  [code, , err] = run(['modify', '-u', uuidN(8), '--live', '--jsonfile', '/dev/stdin'], doc('x'));
  assert.equal(code, 1);
  assert.match(err, /Mediated device .* is not active/);

  const log = path.join(root, 'live.log');
  const dir = path.join(root, 'usr/lib/mdevctl/scripts.d/callouts');
  fs.mkdirSync(dir, { recursive: true });
  const supports = JSON.stringify({
    supports: {
      version: 2,
      actions: ['modify', 'define', 'start', 'stop', 'attributes'],
      events: ['pre', 'post', 'live', 'get'],
    },
  });
  fs.writeFileSync(
    path.join(dir, 'gpu.sh'),
    `#!/bin/sh\necho "$* | $(cat)" >> '${log}'\ncase "$*" in *"-a capabilities"*) echo '${supports}';; esac\nexit 0\n`,
    { mode: 0o755 },
  );
  [code, , err] = run(live, doc('i915-GVTg_V5_8'));
  assert.equal(code, 1);
  assert.match(err, /'type' cannot be changed on active mdev/);

  [code, , err] = run(live, doc('i915-GVTg_V5_4'));
  assert.equal(code, 0, err);
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
  assert.match(lines[0]!, /-e get -a capabilities .* \| \{"provides":\{"version":2,/);
  assert.equal(
    lines.at(-1),
    `-t i915-GVTg_V5_4 -e live -a modify -s none -u ${active} -p 0000:00:02.0 | ` +
      '{"mdev_type":"i915-GVTg_V5_4","start":"manual","attrs":[{"weight":"8"}]}',
  );
  const configFile = path.join(root, 'etc/mdevctl.d/0000:00:02.0', active);
  assert.ok(!fs.existsSync(configFile), '--live alone leaves definitions alone');

  [code, , err] = run([...live, '--defined'], doc('i915-GVTg_V5_4'));
  assert.equal(code, 1);
  assert.match(err, /is not defined/);
  assert.equal(run(['define', '-u', active])[0], 0);
  [code, , err] = run([...live, '--defined'], doc('i915-GVTg_V5_4'));
  assert.equal(code, 0, err);
  assert.equal(
    fs.readFileSync(configFile, 'utf8'),
    JSON.stringify(
      { mdev_type: 'i915-GVTg_V5_4', start: 'manual', attrs: [{ weight: '8' }] },
      null,
      2,
    ),
  );
});

test('a malformed definition is reported with its path and skipped; the rest is listed', () => {
  const { root, run } = staticTree();
  const dir = path.join(root, 'etc/mdevctl.d/0000:00:02.0');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, uuidN(1)), '{ "mdev_type": "i915-GVTg_V5_4", ');
  writeConfig(path.join(root, 'etc/mdevctl.d'), '0000:00:02.0', uuidN(2), {
    mdevType: 'i915-GVTg_V5_4',
    start: 'auto',
    attrs: [],
  });
  const [code, out, err] = run(['list', '-d']);
  assert.equal(code, 0, err);
  assert.equal(out, `${uuidN(2)} 0000:00:02.0 i915-GVTg_V5_4 auto\n`);
  assert.match(err, /WARN +mdevctl::environment\] Skipping invalid definition: malformed JSON/);
  assert.ok(err.includes(path.join(dir, uuidN(1))), err);
  const [jcode, jout] = run(['list', '-d', '--dumpjson']);
  assert.equal(jcode, 0);
  assert.deepEqual(
    (JSON.parse(jout) as Record<string, Record<string, unknown>[]>[]).flatMap((p) =>
      Object.values(p).flatMap((devs) => devs.flatMap((d) => Object.keys(d))),
    ),
    [uuidN(2)],
  );
  // Looking the broken one up by UUID still fails, naming the file.
  const [mcode, , merr] = run(['modify', '-u', uuidN(1), '--auto']);
  assert.equal(mcode, 1);
  assert.ok(merr.startsWith(`Error: Invalid definition ${path.join(dir, uuidN(1))}\n`), merr);

  const env: Environment = {
    port: new FsSysfsPort(root),
    root,
    configDir: path.join(root, 'etc/mdevctl.d'),
    calloutDirs: [],
    notifierDirs: [],
  };
  const skipped: string[] = [];
  const listed = listDefinedDevices(env, {}, { invalidDefinition: (p) => skipped.push(p) });
  assert.deepEqual(skipped, [path.join(dir, uuidN(1))]);
  assert.deepEqual(
    [...listed.values()].flat().map((d) => d.uuid),
    [uuidN(2)],
  );
});
