import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrnoError } from '../../src/common/errno.js';
import { PAGE_SIZE, SysfsDir, SysfsTree, relativeLink } from '../../src/sim/sysfs/tree.js';

const errnoOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    assert.ok(err instanceof ErrnoError, `an ErrnoError, got ${String(err)}`);
    return err.code;
  }
};

function sample(): { tree: SysfsTree; stored: string[] } {
  const tree = new SysfsTree();
  const stored: string[] = [];
  const dev = tree.mkdirp('/sys/devices/virtual/x/x');
  dev.attr('ro', 0o444, { show: () => 'value\n' });
  dev.attr('wo', 0o200, { store: (b) => void stored.push(b) });
  dev.attr('rw', 0o644, { show: () => `${stored.length}\n`, store: (b) => void stored.push(b) });
  dev.attr('fails', 0o200, {
    store: () => {
      throw new ErrnoError('ENOSPC', undefined, undefined, 'pool is empty');
    },
  });
  tree.mkdirp('/sys/class/x').link('x', relativeLink('/sys/class/x', '/sys/devices/virtual/x/x'));
  tree.mkdirp('/sys/loop').link('a', 'b');
  tree.mkdirp('/sys/loop').link('b', 'a');
  return { tree, stored };
}

describe('sysfs tree semantics', () => {
  it('reads and stores through links, one store per write', () => {
    const { tree, stored } = sample();
    assert.equal(tree.read('/sys/class/x/x/ro'), 'value\n');
    tree.write('/sys/class/x/x/wo', 'abc\n');
    tree.write('/sys/class/x/x/rw', 'def');
    assert.deepEqual(stored, ['abc\n', 'def']);
    assert.equal(tree.read('/sys/devices/virtual/x/x/rw'), '2\n');
  });

  it('lets the mode bits decide, even for root: EACCES', () => {
    const { tree } = sample();
    assert.equal(
      errnoOf(() => tree.read('/sys/class/x/x/wo')),
      'EACCES',
    );
    assert.equal(
      errnoOf(() => tree.write('/sys/class/x/x/ro', '1')),
      'EACCES',
    );
  });

  it('refuses more than a page in one write with E2BIG', () => {
    const { tree, stored } = sample();
    assert.equal(
      errnoOf(() => tree.write('/sys/class/x/x/wo', 'x'.repeat(PAGE_SIZE + 1))),
      'E2BIG',
    );
    tree.write('/sys/class/x/x/wo', 'x'.repeat(PAGE_SIZE));
    assert.equal(stored.length, 1);
    tree.write('/sys/class/x/x/wo', '');
    assert.equal(stored.length, 1, 'an empty write does not reach the store');
  });

  it("passes a store's errno and explanation to the writer, naming the file", () => {
    const { tree } = sample();
    try {
      tree.write('/sys/class/x/x/fails', '1');
      assert.fail('should throw');
    } catch (err) {
      assert.ok(err instanceof ErrnoError);
      assert.equal(err.code, 'ENOSPC');
      assert.equal(err.errno, 28);
      assert.equal(err.path, '/sys/class/x/x/fails');
      assert.equal(err.detail, 'pool is empty');
    }
  });

  it('reports ENOENT, ENOTDIR, EISDIR, ELOOP and EINVAL where the kernel does', () => {
    const { tree } = sample();
    assert.equal(
      errnoOf(() => tree.read('/sys/class/x/x/missing')),
      'ENOENT',
    );
    assert.equal(
      errnoOf(() => tree.read('/sys/class/x/x/ro/below')),
      'ENOTDIR',
    );
    assert.equal(
      errnoOf(() => tree.read('/sys/class/x/x')),
      'EISDIR',
    );
    assert.equal(
      errnoOf(() => tree.read('/sys/loop/a')),
      'ELOOP',
    );
    assert.equal(
      errnoOf(() => tree.readlink('/sys/class/x/x/ro')),
      'EINVAL',
    );
  });

  it('resolves realpath and readlink like the VFS', () => {
    const { tree } = sample();
    assert.equal(tree.readlink('/sys/class/x/x'), '../../devices/virtual/x/x');
    assert.equal(tree.realpath('/sys/class/x/x/ro'), '/sys/devices/virtual/x/x/ro');
    // '..' after a link climbs from the link's target, as the VFS does.
    assert.equal(tree.realpath('/sys/class/x/x/../x/.'), '/sys/devices/virtual/x/x');
    assert.equal(tree.lookup('/sys/class/x/x', false)?.kind, 'link');
    assert.equal(tree.lookup('/sys/class/x/x', true)?.kind, 'dir');
  });

  it('fills a lazy directory on listing, and finds eager entries without filling', () => {
    let filled = 0;
    const d = new SysfsDir((dir) => {
      filled++;
      dir.attr('late', 0o444, { show: () => 'late\n' });
    });
    d.attr('early', 0o200, { store: () => {} });
    assert.equal(d.get('early')?.kind, 'file');
    assert.equal(filled, 0);
    assert.deepEqual([...d.children.keys()].sort(), ['early', 'late']);
    assert.equal(filled, 1);
    assert.equal(d.get('late')?.kind, 'file');
    assert.equal(filled, 1);
  });

  it('computes relative link targets as sysfs_create_link stores them', () => {
    assert.equal(
      relativeLink('/sys/class/mdev_bus', '/sys/devices/virtual/mtty/mtty'),
      '../../devices/virtual/mtty/mtty',
    );
    assert.equal(
      relativeLink('/sys/bus/mdev/devices', '/sys/devices/pci0000:00/0000:00:02.0/u'),
      '../../../devices/pci0000:00/0000:00:02.0/u',
    );
    assert.equal(relativeLink('/a/b', '/a/b/c'), 'c');
  });
});
