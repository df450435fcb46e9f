import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { MDEVCTL_NS, isRoot, mdevctlReference, requires } from '../support/capabilities.js';
import { generateTree } from '../support/gen-tree.js';
import { tmpDir } from '../support/tmp.js';

/**
 * Listings of a host with hundreds of devices take a faster path (parent
 * and type from each type's devices/ listing, one readlink per device to
 * confirm): it must print exactly what mdevctl 1.4.0 prints, including for
 * devices that break the fast path's assumptions.
 */
const ROOT = new URL('../../', import.meta.url).pathname;

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('list and list -d on 600 devices and 700 definitions, some broken: identical to mdevctl 1.4.0', (t) => {
  const reference = mdevctlReference('1.4.0');
  if (
    !requires(
      t,
      { root: isRoot, 'mdevctl 1.4.0': reference !== undefined },
      'compares with the real mdevctl 1.4.0 in a mount namespace',
    )
  )
    return;
  const tree = path.join(tmpDir(), 'tree');
  generateTree(tree, { parents: 3, types: 3, active: 600, defined: 700 });
  const bus = path.join(tree, 'sys/bus/mdev/devices');
  const uuids = fs.readdirSync(bus).sort();
  const devDir = (u: string) => fs.realpathSync(path.join(bus, u));
  const typeOf = (u: string) => path.basename(fs.readlinkSync(path.join(devDir(u), 'mdev_type')));
  const typesDirOf = (u: string) => path.join(path.dirname(devDir(u)), 'mdev_supported_types');
  // 1: no mdev_type link (mdevctl skips the device), though its type still lists it.
  fs.unlinkSync(path.join(devDir(uuids[0]!), 'mdev_type'));
  // 2: listed under a second type of the same parent as well (ambiguous index entry).
  const other = fs.readdirSync(typesDirOf(uuids[1]!)).find((x) => x !== typeOf(uuids[1]!))!;
  fs.symlinkSync(
    `../../../${uuids[1]}`,
    path.join(typesDirOf(uuids[1]!), other, 'devices', uuids[1]!),
  );
  // 3: not listed by its type at all.
  fs.unlinkSync(path.join(typesDirOf(uuids[2]!), typeOf(uuids[2]!), 'devices', uuids[2]!));
  // 4: mdev_type points at a type directory that does not exist.
  const link4 = path.join(devDir(uuids[3]!), 'mdev_type');
  fs.unlinkSync(link4);
  fs.symlinkSync('../mdev_supported_types/no-such-type', link4);

  const parent = fs.readdirSync(path.join(tree, 'sys/class/mdev_bus')).sort()[1]!;
  for (const args of [
    ['list'],
    ['list', '--dumpjson'],
    ['list', '-v'],
    ['list', '-d'],
    ['list', '-d', '--dumpjson'],
    ['list', '-p', parent],
  ]) {
    const ref = run(MDEVCTL_NS, [tree, '--', reference!, ...args]);
    const cand = run(`${ROOT}bin/mdevctl`, args, { MDEVCTL_ENV_ROOT: tree });
    assert.equal(cand.status, ref.status, `${args.join(' ')}: exit\n${cand.stderr}`);
    assert.equal(cand.stdout, ref.stdout, `${args.join(' ')}: stdout`);
  }
});
