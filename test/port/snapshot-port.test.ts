import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ErrnoError } from '../../src/common/errno.js';
import { listActiveDevices, listParents } from '../../src/host/sysfs-model.js';
import { FsSysfsPort } from '../../src/port/fs-port.js';
import type { SysfsPort } from '../../src/port/sysfs-port.js';
import { Lab } from '../../src/sim/lab.js';
import { writeSnapshot } from '../../src/sim/sysfs/snapshot.js';
import { tmpDir } from '../support/tmp.js';
import { uuidN } from '../support/labs.js';

/**
 * The port contract, read side: the node:fs port over a static snapshot
 * answers exactly as the in-process port over the live tree, for every
 * path of the default lab with devices of several types. (The write side
 * needs a live tree: test/port/port-behaviour.test.ts runs over FUSE.)
 */

function labWithDevices(): Lab {
  const lab = Lab.fromProfile('lab');
  let n = 1;
  for (const parent of lab.port.list('/sys/class/mdev_bus').sort()) {
    const typesDir = `/sys/class/mdev_bus/${parent}/mdev_supported_types`;
    const t = lab.port
      .list(typesDir)
      .sort()
      .find((id) => Number(lab.port.read(`${typesDir}/${id}/available_instances`)) > 0);
    if (t !== undefined) lab.port.write(`${typesDir}/${t}/create`, uuidN(n++));
  }
  return lab;
}

type Answer = { ok: unknown } | { errno: string };
function answer(fn: () => unknown): Answer {
  try {
    return { ok: fn() };
  } catch (err) {
    if (err instanceof ErrnoError) return { errno: err.code };
    throw err;
  }
}

function walk(port: SysfsPort, dir: string, out: string[], seen: Set<string>): void {
  for (const name of port.list(dir).sort()) {
    const p = `${dir}/${name}`;
    out.push(p);
    if (port.kind(p) === 'dir') {
      const real = port.realpath(p);
      if (!seen.has(real)) {
        seen.add(real);
        walk(port, p, out, seen);
      }
    }
  }
}

describe('port contract: node:fs over a snapshot = in-process tree', () => {
  const lab = labWithDevices();
  const root = tmpDir();
  writeSnapshot(lab.kernel.tree, root);
  const fsPort = new FsSysfsPort(root);
  const treePort = lab.port;
  const paths: string[] = [];
  walk(treePort, '/sys', paths, new Set());

  it('sees the same paths, kinds, links and canonical paths', () => {
    assert.ok(paths.length > 200, `a real tree (${paths.length} paths)`);
    for (const p of paths) {
      assert.deepEqual(
        answer(() => fsPort.kind(p)),
        answer(() => treePort.kind(p)),
        `kind ${p}`,
      );
      if (treePort.kind(p) === 'link') {
        assert.deepEqual(
          answer(() => fsPort.readlink(p)),
          answer(() => treePort.readlink(p)),
          `readlink ${p}`,
        );
      }
      assert.deepEqual(
        answer(() => fsPort.realpath(p)),
        answer(() => treePort.realpath(p)),
        `realpath ${p}`,
      );
      if (treePort.kind(p) === 'dir') {
        const a = answer(() => fsPort.list(p));
        const b = answer(() => treePort.list(p));
        assert.deepEqual(
          'ok' in a ? { ok: (a.ok as string[]).sort() } : a,
          'ok' in b ? { ok: (b.ok as string[]).sort() } : b,
          `list ${p}`,
        );
      }
    }
  });

  it('reads the same contents from every readable attribute', () => {
    let files = 0;
    for (const p of paths) {
      if (treePort.kind(p) !== 'file') continue;
      const live = answer(() => treePort.read(p));
      if ('errno' in live) continue; // write-only files: root may read the static copy
      files++;
      assert.deepEqual(
        answer(() => fsPort.read(p)),
        live,
        `read ${p}`,
      );
    }
    assert.ok(files > 50);
  });

  it('gives the host model the same parents, types and devices', () => {
    assert.deepEqual(listParents(fsPort), listParents(treePort));
    const sort = (d: { uuid: string }[]) => [...d].sort((a, b) => a.uuid.localeCompare(b.uuid));
    assert.deepEqual(sort(listActiveDevices(fsPort)), sort(listActiveDevices(treePort)));
    assert.ok(listActiveDevices(treePort).length >= 3);
  });

  it('maps errors to the same errno codes', () => {
    for (const p of [
      '/sys/class/mdev_bus/nope',
      '/sys/bus/mdev/devices/x/y',
      path.posix.join('/sys', 'kernel', 'missing'),
    ]) {
      assert.deepEqual(
        answer(() => fsPort.read(p)),
        answer(() => treePort.read(p)),
        p,
      );
    }
    assert.deepEqual(
      answer(() => fsPort.read('/sys/class/mdev_bus')),
      { errno: 'EISDIR' },
    );
    assert.deepEqual(
      answer(() => treePort.read('/sys/class/mdev_bus')),
      { errno: 'EISDIR' },
    );
  });
});
