import { ErrnoError, fail } from '../../common/errno.js';

/**
 * The emulator's virtual sysfs: directories, attribute files whose contents
 * come from show/store callbacks, and symbolic links. Semantics follow
 * kernfs/sysfs, because every reader (our CLI, FUSE, real mdevctl) must see
 * what it would see on a host:
 *  - an attribute's mode decides what may be done with it, even for root:
 *    reading a write-only file (create, remove) is EACCES, writing a
 *    read-only one is EACCES;
 *  - a store receives the whole buffer of one write(2); more than a page
 *    is E2BIG, and an empty write succeeds without calling the store;
 *  - a store or show that fails surfaces its errno unchanged.
 * Everything is synchronous: one store runs to completion before the next,
 * which is what makes check-and-claim steps in drivers atomic (the kernel
 * gets the same from its locks).
 */

export const PAGE_SIZE = 4096;

export interface AttrOps {
  /** Contents of the file; may throw an ErrnoError. */
  show?: () => string;
  /** Handles one write(2) of `buf`; may throw an ErrnoError. */
  store?: (buf: string) => void;
  /**
   * A binary attribute (the kernel's bin_attribute, e.g. a PCI function's
   * `config`): its bytes, read at any offset. Takes the place of `show`.
   */
  read?: () => Uint8Array;
  /**
   * What stat(2) says the file's size is. sysfs reports PAGE_SIZE for every
   * text attribute whatever it holds; a binary attribute has its real size
   * (256 or 4096 for PCI config space), which tools such as libvirt read.
   */
  size?: number;
}

export class SysfsAttr {
  readonly kind = 'file';
  constructor(
    /** Permission bits as sysfs shows them (0o444, 0o200, 0o644 ...). */
    readonly mode: number,
    readonly ops: AttrOps,
  ) {}

  /** Size as stat(2) reports it: PAGE_SIZE unless the attribute says otherwise. */
  get size(): number {
    return this.ops.size ?? PAGE_SIZE;
  }

  /** Whether the file can be opened for reading (mode bits and a show or read). */
  get readable(): boolean {
    return (
      (this.ops.show !== undefined || this.ops.read !== undefined) && (this.mode & 0o444) !== 0
    );
  }
}

export class SysfsLink {
  readonly kind = 'link';
  #reversedParts: readonly string[] | undefined;
  /** `reversedParts` may be supplied by a caller that already has them split. */
  constructor(
    readonly target: string,
    reversedParts?: readonly string[],
  ) {
    this.#reversedParts = reversedParts;
  }

  /**
   * The target's components, reversed, ready to push on a walk's stack.
   * Split on first use: most links are made and removed without ever
   * being followed.
   */
  get reversedParts(): readonly string[] {
    return (this.#reversedParts ??= this.target.split('/').reverse());
  }
}

export class SysfsDir {
  readonly kind = 'dir';
  readonly mode = 0o755;
  readonly #children = new Map<string, SysfsNode>();
  #populate: ((dir: SysfsDir) => void) | undefined;
  /** Bumped on every change of `children`; lets caches (FUSE) notice. */
  generation = 0;

  /**
   * `populate`, when given, fills the directory the first time it is listed
   * or a name is missed. The mdev core uses it for device directories: a
   * device created and removed without anyone looking never pays for its
   * attribute files (only `remove`, added eagerly, is found without it).
   */
  constructor(populate?: (dir: SysfsDir) => void) {
    this.#populate = populate;
  }

  get children(): ReadonlyMap<string, SysfsNode> {
    if (this.#populate !== undefined) this.#fill();
    return this.#children;
  }

  #fill(): void {
    const populate = this.#populate!;
    this.#populate = undefined;
    populate(this);
  }

  /** A child by name; fills a lazy directory only when the name is not there yet. */
  get(name: string): SysfsNode | undefined {
    const hit = this.#children.get(name);
    if (hit !== undefined || this.#populate === undefined) return hit;
    this.#fill();
    return this.#children.get(name);
  }

  /** Add a child; a name that exists already is a bug in the caller (EEXIST). */
  add<N extends SysfsNode>(name: string, node: N): N {
    if (this.#children.has(name)) fail('EEXIST', `sysfs: duplicate entry '${name}'`);
    this.#children.set(name, node);
    this.generation++;
    return node;
  }

  /** Directory child, created if missing. */
  dir(name: string): SysfsDir {
    const existing = this.get(name);
    if (existing instanceof SysfsDir) return existing;
    if (existing !== undefined) fail('ENOTDIR', `sysfs: '${name}' is not a directory`);
    return this.add(name, new SysfsDir());
  }

  /** Nested directories from a relative path such as "mdev/aggregation". */
  dirPath(rel: string): SysfsDir {
    return rel
      .split('/')
      .filter((part) => part !== '')
      .reduce<SysfsDir>((d, part) => d.dir(part), this);
  }

  attr(name: string, mode: number, ops: AttrOps): SysfsAttr {
    return this.add(name, new SysfsAttr(mode, ops));
  }

  link(name: string, target: string): SysfsLink {
    return this.add(name, new SysfsLink(target));
  }

  /** Remove a child if present; a lazy directory's unfilled files need no removal. */
  remove(name: string): void {
    if (this.#children.delete(name)) this.generation++;
  }
}

export type SysfsNode = SysfsDir | SysfsAttr | SysfsLink;

/** Symlink hops before ELOOP, as Linux's MAXSYMLINKS. */
const MAX_LINK_HOPS = 40;

interface Resolved {
  node: SysfsNode;
  /** Canonical path (links resolved, no trailing slash). */
  path: string;
}

export class SysfsTree {
  /** The root of the file system ("/"); sysfs lives under "/sys". */
  readonly root = new SysfsDir();

  /**
   * Walk `path`, expanding links in every component and, when `followLast`,
   * in the final one too. ENOENT for a missing component, ENOTDIR for a walk
   * through a file, ELOOP after too many links.
   */
  resolve(path: string, followLast = true): Resolved {
    const names: string[] = [];
    const node = this.#walk(path, followLast, names);
    return { node, path: '/' + names.join('/') };
  }

  /** The node at `path` (the hot path of every read and write: no canonical name kept). */
  node(path: string, followLast = true): SysfsNode {
    return this.#walk(path, followLast, undefined);
  }

  #walk(path: string, followLast: boolean, names: string[] | undefined): SysfsNode {
    // Components come from the path itself (scanned in place, no split) and,
    // once links are met, from a stack of their targets' components (top =
    // next), which are walked before the rest of the path.
    let pos = 0;
    const pending: string[] = [];
    const nodes: SysfsNode[] = [this.root];
    let hops = 0;
    for (;;) {
      let name: string;
      if (pending.length > 0) {
        name = pending.pop()!;
      } else {
        if (pos >= path.length) break;
        let end = path.indexOf('/', pos);
        if (end === -1) end = path.length;
        name = path.slice(pos, end);
        pos = end + 1;
      }
      if (name === '' || name === '.') continue;
      if (name === '..') {
        if (nodes.length > 1) {
          nodes.pop();
          names?.pop();
        }
        continue;
      }
      const cur = nodes[nodes.length - 1]!;
      if (cur.kind !== 'dir') throw new ErrnoError('ENOTDIR', undefined, path);
      const child = cur.get(name);
      if (child === undefined) throw new ErrnoError('ENOENT', undefined, path);
      if (child.kind === 'link' && (followLast || hasMore(pending, path, pos))) {
        if (++hops > MAX_LINK_HOPS) throw new ErrnoError('ELOOP', undefined, path);
        if (child.target.startsWith('/')) {
          nodes.length = 1;
          if (names !== undefined) names.length = 0;
        }
        for (const part of child.reversedParts) pending.push(part);
        continue;
      }
      nodes.push(child);
      names?.push(name);
    }
    return nodes[nodes.length - 1]!;
  }

  /** The node at `path` or undefined, following links. */
  lookup(path: string, followLast = true): SysfsNode | undefined {
    try {
      return this.#walk(path, followLast, undefined);
    } catch (err) {
      if (err instanceof ErrnoError) return undefined;
      throw err;
    }
  }

  /** The directory at `path`; ENOTDIR if it is something else. */
  dirAt(path: string): SysfsDir {
    const node = this.node(path);
    if (node.kind !== 'dir') throw new ErrnoError('ENOTDIR', undefined, path);
    return node;
  }

  /** Create directories along an absolute path (no links expected). */
  mkdirp(path: string): SysfsDir {
    return this.root.dirPath(path);
  }

  /**
   * Contents of a text attribute. A binary attribute reads as its bytes
   * decoded as UTF-8, exactly what node:fs gives for the same file (the two
   * ports must agree); readBytes is the way to its bytes.
   */
  read(path: string): string {
    const node = this.#readable(path);
    const show = node.ops.show;
    if (show === undefined) return Buffer.from(node.ops.read!()).toString('utf8');
    const text = show();
    return text.length > PAGE_SIZE ? text.slice(0, PAGE_SIZE) : text;
  }

  /** Contents of any attribute as bytes: a binary one's whole content, a text one's rendering. */
  readBytes(path: string): Buffer {
    const node = this.#readable(path);
    if (node.ops.read !== undefined) return Buffer.from(node.ops.read());
    return Buffer.from(this.read(path));
  }

  #readable(path: string): SysfsAttr {
    const node = this.node(path);
    if (node.kind === 'dir') throw new ErrnoError('EISDIR', undefined, path);
    if (node.kind === 'link') throw new ErrnoError('ELOOP', undefined, path);
    if (!node.readable) throw new ErrnoError('EACCES', undefined, path);
    return node;
  }

  write(path: string, data: string): void {
    const node = this.node(path);
    if (node.kind === 'dir') throw new ErrnoError('EISDIR', undefined, path);
    if (node.kind === 'link') throw new ErrnoError('ELOOP', undefined, path);
    const store = node.ops.store;
    if (store === undefined || (node.mode & 0o222) === 0) {
      throw new ErrnoError('EACCES', undefined, path);
    }
    if (Buffer.byteLength(data) > PAGE_SIZE) throw new ErrnoError('E2BIG', undefined, path);
    // sysfs_kf_write: an empty write succeeds without reaching the store.
    if (data === '') return;
    try {
      store(data);
    } catch (err) {
      // Keep the driver's errno and explanation, but name the file written.
      if (err instanceof ErrnoError && err.path === undefined) {
        throw new ErrnoError(err.code, undefined, path, err.detail);
      }
      throw err;
    }
  }

  list(path: string): string[] {
    return [...this.dirAt(path).children.keys()];
  }

  readlink(path: string): string {
    const node = this.node(path, false);
    if (node.kind !== 'link') throw new ErrnoError('EINVAL', undefined, path);
    return node.target;
  }

  realpath(path: string): string {
    return this.resolve(path).path;
  }
}

/** Whether a walk still has a component to go: on its stack or in the rest of the path. */
function hasMore(pending: readonly string[], path: string, pos: number): boolean {
  for (let j = pending.length - 1; j >= 0; j--) {
    if (pending[j] !== '' && pending[j] !== '.') return true;
  }
  for (const part of path.slice(pos).split('/')) if (part !== '' && part !== '.') return true;
  return false;
}

/**
 * Relative symlink target from directory `fromDir` to `to` (both absolute),
 * as sysfs_create_link stores them ("../../devices/virtual/mtty/mtty").
 */
export function relativeLink(fromDir: string, to: string): string {
  const a = fromDir.split('/').filter(Boolean);
  const b = to.split('/').filter(Boolean);
  let common = 0;
  while (common < a.length && common < b.length && a[common] === b[common]) common++;
  const up = a.length - common;
  const rest = b.slice(common);
  return [...Array<string>(up).fill('..'), ...rest].join('/') || '.';
}
