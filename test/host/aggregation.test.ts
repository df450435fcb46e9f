import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runProgram } from '../../src/cli/command.js';
import { MDEVKIT } from '../../src/cli/main.js';
import type { CommandIo } from '../../src/ctl/io.js';
import { ErrnoError } from '../../src/common/errno.js';
import {
  AGGREGATION_VALUE,
  aggregationTarget,
  readAggregation,
  setAggregation,
} from '../../src/host/aggregation.js';
import { readConfig, writeConfig } from '../../src/host/config-store.js';
import { MdevError } from '../../src/host/devices.js';
import { environmentAt } from '../../src/host/environment.js';
import { U1, U2, U3, labWith } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';

/**
 * Aggregation changes in the host library (src/host/aggregation.ts) and
 * through `mdevkit aggregation`: the running device through its sysfs
 * file, the definition as the attribute mdevctl writes at start.
 */

const SIOV = '0000:6a:01.0';
const TYPE_DIR = `/sys/class/mdev_bus/${SIOV}/mdev_supported_types/idxd-1wq`;

function setup() {
  const lab = labWith([{ driver: 'siov' }, { driver: 'mtty' }]);
  const env = environmentAt(tmpDir('mdevkit-aggregation-'), lab.port);
  const available = () => Number(lab.port.read(`${TYPE_DIR}/available_instances`).trim());
  const value = (uuid: string) =>
    lab.port.read(`/sys/bus/mdev/devices/${uuid}/${AGGREGATION_VALUE}`).trim();
  return { lab, env, available, value };
}

describe('aggregation in the host library', () => {
  it('raises a running, defined device: sysfs first, then the definition (replacing, at the end)', () => {
    const { lab, env, available, value } = setup();
    writeConfig(env.configDir, SIOV, U1, {
      mdevType: 'idxd-1wq',
      start: 'auto',
      attrs: [
        { name: AGGREGATION_VALUE, value: '2' },
        { name: 'vendor/x', value: 'y' },
      ],
    });
    lab.port.write(`${TYPE_DIR}/create`, U1);
    const before = available();
    const target = aggregationTarget(env, U1.toUpperCase());
    assert.deepEqual(
      { uuid: target.uuid, parent: target.parent, type: target.type, active: target.active },
      { uuid: U1, parent: SIOV, type: 'idxd-1wq', active: true },
    );
    const a = setAggregation(env, target, 4);
    assert.equal(a.value, 4);
    assert.ok(a.max !== undefined && a.max >= 4);
    assert.equal(value(U1), '4');
    assert.equal(available(), before - 3);
    assert.deepEqual(readConfig(env.configDir, SIOV, U1), {
      mdevType: 'idxd-1wq',
      start: 'auto',
      attrs: [
        { name: 'vendor/x', value: 'y' },
        { name: AGGREGATION_VALUE, value: '4' },
      ],
    });
    assert.deepEqual(readAggregation(env, U1), a);
  });

  it('keeps the definition when the kernel refuses (EBUSY while open), with its errno', () => {
    const { lab, env, value } = setup();
    writeConfig(env.configDir, SIOV, U1, { mdevType: 'idxd-1wq', start: 'manual', attrs: [] });
    lab.port.write(`${TYPE_DIR}/create`, U1);
    lab.open(U1);
    assert.throws(
      () => setAggregation(env, aggregationTarget(env, U1), 2),
      (e: unknown) => e instanceof ErrnoError && e.code === 'EBUSY',
    );
    assert.equal(value(U1), '1');
    assert.deepEqual(readConfig(env.configDir, SIOV, U1).attrs, []);
  });

  it('a defined device that is not running: only the definition changes', () => {
    const { env } = setup();
    writeConfig(env.configDir, SIOV, U2, { mdevType: 'idxd-2wq', start: 'manual', attrs: [] });
    const target = aggregationTarget(env, U2);
    assert.equal(target.active, false);
    assert.deepEqual(setAggregation(env, target, 3), { value: 3 });
    assert.deepEqual(readConfig(env.configDir, SIOV, U2).attrs, [
      { name: AGGREGATION_VALUE, value: '3' },
    ]);
    assert.equal(readAggregation(env, U2), undefined);
  });

  it('names the device it cannot find, and one on several parents', () => {
    const { env } = setup();
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return e instanceof MdevError ? e.code : e;
      }
      return 'no error';
    };
    assert.equal(
      code(() => aggregationTarget(env, U3)),
      'device-unknown',
    );
    assert.equal(
      code(() => aggregationTarget(env, 'gpu0')),
      'invalid-name',
    );
    writeConfig(env.configDir, SIOV, U3, { mdevType: 'idxd-1wq', start: 'manual', attrs: [] });
    writeConfig(env.configDir, 'mtty', U3, { mdevType: 'mtty-1', start: 'manual', attrs: [] });
    assert.equal(
      code(() => aggregationTarget(env, U3)),
      'ambiguous',
    );
    assert.equal(aggregationTarget(env, U3, 'mtty').type, 'mtty-1');
  });
});

describe('mdevkit aggregation', () => {
  async function run(env: ReturnType<typeof setup>['env'], args: string[]) {
    let out = '';
    let err = '';
    const io: CommandIo = {
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
      env: {},
      cwd: '/',
      readStdin: () => '',
    };
    const code = await runProgram(MDEVKIT, io, ['aggregation', ...args], { host: () => env });
    return { code, out, err };
  }

  it('shows and changes a running device, and says why it cannot', async () => {
    const { lab, env, value } = setup();
    lab.port.write(`${TYPE_DIR}/create`, U1);
    const show = await run(env, [U1]);
    assert.equal(show.code, 0, show.err);
    assert.match(show.out, new RegExp(`^${U1} aggregates 1 \\(at most \\d+\\)\\n$`));
    const set = await run(env, [U1, '2', '--json']);
    assert.equal(set.code, 0, set.err);
    assert.deepEqual(
      { ...JSON.parse(set.out), max: undefined },
      { uuid: U1, parent: SIOV, value: 2, max: undefined },
    );
    assert.equal(value(U1), '2');
    lab.open(U1);
    const busy = await run(env, [U1, '3']);
    assert.equal(busy.code, 1);
    assert.match(busy.err, /^mdevkit: Device or resource busy/);
    const bad = await run(env, [U1, 'lots']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /VALUE is a number of instances/);
    const none = await run(env, [U3]);
    assert.equal(none.code, 1);
    assert.match(none.err, new RegExp(`^mdevkit: No mediated device ${U3} is running or defined`));
  });
});
