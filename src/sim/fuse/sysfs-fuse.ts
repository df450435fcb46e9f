import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as nodePath from 'node:path';
import type Fuse from 'fuse-native';
import type { FuseOps, FuseStat } from 'fuse-native';
import { ErrnoError, errnoNumber, type ErrnoCode } from '../../common/errno.js';
import { PAGE_SIZE, type SysfsAttr, type SysfsNode, type SysfsTree } from '../sysfs/tree.js';

/**
 * The emulator's sysfs served as a real file system over FUSE (fuse-native
 * on libfuse2): the live lab. Any process — the real mdevctl, a shell
 * script, `ls` — sees the emulated /sys with sysfs's semantics:
 *
 *  - attribute files report size 4096 (as sysfs, whatever their contents),
 *    binary attributes their real size (a PCI function's `config`: 256 or
 *    4096, which libvirt reads to tell PCI Express); the mount uses direct
 *    I/O, so every read reaches the server and shows the current value (the
 *    page cache would keep the old size and bytes);
 *  - a read at offset 0 runs `show` afresh; later offsets read from that
 *    same rendering, as seq_file does for one open file;
 *  - one write(2) is one store; the store's errno goes back to the writer
 *    unchanged (bash prints "Invalid argument" for EINVAL);
 *  - open checks the sysfs mode even for root: reading `create` or writing
 *    `available_instances` is EACCES, as kernfs_fop_open decides;
 *  - a write through a descriptor whose file has gone (the device was
 *    removed meanwhile) is ENODEV, as kernfs_get_active failing gives;
 *  - links are symlinks with sysfs's relative targets;
 *  - directories list "." and ".." and give each entry's type with it, so
 *    readdir(withFileTypes) needs no lstat per entry.
 *
 * Entries and attributes are cached by the kernel for `cacheSeconds` (1 s by
 * default): mdevctl resolves every path component and would otherwise pay a
 * LOOKUP each time. Listings, reads and link targets always reach the server,
 * so a device created a moment ago is listed at once, and a removed one is
 * gone from listings and from link resolution at once.
 *
 * The tree's callbacks are synchronous and JavaScript runs one at a time,
 * so each store is atomic with respect to every other FUSE request — the
 * equivalent of the kernel's locks around create and remove.
 *
 * The process serving the mount must never make synchronous file-system
 * calls on its own mount: its event loop is the server, so it would wait for
 * itself. Code running in the server process uses the in-process port.
 */

export interface SysfsMountOptions {
  /** Kernel entry/attribute cache lifetime in seconds (default 1). */
  cacheSeconds?: number;
  /** Name shown in /proc/mounts (fsname); default "mdevkit-lab". */
  fsName?: string;
  /** Let users other than the mounter in (needs user_allow_other or root). */
  allowOther?: boolean;
}

export interface SysfsMount {
  readonly mountpoint: string;
  /** Requests served so far, by operation (for benchmarks and debugging). */
  readonly stats: Readonly<Record<string, number>>;
  /**
   * Unmount and let go of the mount. A mount that someone removed from
   * outside already (`fusermount -u`) is let go of too, without an error.
   */
  unmount(): Promise<void>;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const O_ACCMODE = 3;
const O_WRONLY = 1;
const O_RDWR = 2;

/** One open attribute file. */
interface OpenFile {
  readonly path: string;
  readonly node: SysfsAttr;
  /** What `show` gave at the last read from offset 0. */
  rendered: Buffer | undefined;
}

/** Negative errno for libfuse; anything that is not an ErrnoError is a bug: EIO, logged. */
function errnoReply(err: unknown, op: string, path: string): number {
  if (err instanceof ErrnoError) return -err.errno;
  process.stderr.write(`mdevkit lab: internal error in ${op} ${path}: ${String(err)}\n`);
  return -errnoNumber('EIO');
}

const neg = (code: ErrnoCode): number => -errnoNumber(code);

/** The FUSE operations over `tree`'s `/sys`, without mounting (testable alone). */
export function sysfsFuseOps(tree: SysfsTree, counters?: Record<string, number>): FuseOps {
  const bootTime = new Date();
  const files = new Map<number, OpenFile>();
  let nextHandle = 1;
  const count = counters
    ? (op: string): void => {
        counters[op] = (counters[op] ?? 0) + 1;
      }
    : (): void => {};

  const treePath = (fusePath: string): string => (fusePath === '/' ? '/sys' : `/sys${fusePath}`);

  const statOf = (node: SysfsNode): FuseStat => {
    const times = { mtime: bootTime, atime: bootTime, ctime: bootTime };
    switch (node.kind) {
      case 'dir':
        return { mode: S_IFDIR | node.mode, size: 0, nlink: 2, ...times };
      case 'file':
        return { mode: S_IFREG | node.mode, size: node.size, nlink: 1, ...times };
      case 'link':
        return { mode: S_IFLNK | 0o777, size: Buffer.byteLength(node.target), nlink: 1, ...times };
    }
  };

  return {
    getattr(path, cb) {
      count('getattr');
      try {
        cb(0, statOf(tree.node(treePath(path), false)));
      } catch (err) {
        cb(errnoReply(err, 'getattr', path));
      }
    },

    readdir(path, cb) {
      count('readdir');
      try {
        const dir = tree.dirAt(treePath(path));
        const names = ['.', '..'];
        const stats: FuseStat[] = [statOf(dir), statOf(dir)];
        for (const [name, child] of dir.children) {
          names.push(name);
          stats.push(statOf(child));
        }
        cb(0, names, stats);
      } catch (err) {
        cb(errnoReply(err, 'readdir', path));
      }
    },

    readlink(path, cb) {
      count('readlink');
      try {
        cb(0, tree.readlink(treePath(path)));
      } catch (err) {
        cb(errnoReply(err, 'readlink', path));
      }
    },

    open(path, flags, cb) {
      count('open');
      try {
        const p = treePath(path);
        const node = tree.node(p);
        if (node.kind === 'dir') return cb(neg('EISDIR'));
        if (node.kind !== 'file') return cb(neg('ELOOP'));
        const access = flags & O_ACCMODE;
        const wantsRead = access !== O_WRONLY;
        const wantsWrite = access === O_WRONLY || access === O_RDWR;
        // kernfs_fop_open: the mode bits and the presence of show/store decide.
        if (wantsRead && !node.readable) {
          return cb(neg('EACCES'));
        }
        if (wantsWrite && (node.ops.store === undefined || (node.mode & 0o222) === 0)) {
          return cb(neg('EACCES'));
        }
        const handle = nextHandle++;
        files.set(handle, { path: p, node, rendered: undefined });
        cb(0, handle);
      } catch (err) {
        cb(errnoReply(err, 'open', path));
      }
    },

    read(path, fd, buf, len, pos, cb) {
      count('read');
      const file = files.get(fd);
      if (file === undefined) return cb(neg('EBADF'));
      try {
        if (pos === 0 || file.rendered === undefined) {
          if (tree.lookup(file.path) !== file.node) return cb(neg('ENODEV'));
          file.rendered = tree.readBytes(file.path);
        }
        const n = Math.max(0, Math.min(len, file.rendered.length - pos));
        if (n > 0) file.rendered.copy(buf, 0, pos, pos + n);
        cb(n);
      } catch (err) {
        cb(errnoReply(err, 'read', path));
      }
    },

    write(path, fd, buf, len, _pos, cb) {
      count('write');
      const file = files.get(fd);
      if (file === undefined) return cb(neg('EBADF'));
      try {
        // The descriptor belongs to the node it opened; if that node left the
        // tree (its device was removed), the store is gone with it.
        if (tree.lookup(file.path) !== file.node) return cb(neg('ENODEV'));
        tree.write(file.path, buf.toString('utf8', 0, len));
        cb(len);
      } catch (err) {
        cb(errnoReply(err, 'write', path));
      }
    },

    release(_path, fd, cb) {
      count('release');
      files.delete(fd);
      cb(0);
    },

    // `echo x > attr` opens with O_TRUNC: libfuse2 asks for a truncate,
    // which sysfs accepts and ignores.
    truncate(path, _size, cb) {
      count('truncate');
      try {
        const node = tree.node(treePath(path));
        cb(node.kind === 'dir' ? neg('EISDIR') : 0);
      } catch (err) {
        cb(errnoReply(err, 'truncate', path));
      }
    },
    ftruncate(_path, _fd, _size, cb) {
      cb(0);
    },

    // access(2) on a path the kernel still has cached: say whether it is
    // still there (a device removed a moment ago is not), and otherwise
    // allow, as sysfs does for root (mode bits are enforced at open).
    access(path, _mode, cb) {
      count('access');
      try {
        tree.node(treePath(path), false);
        cb(0);
      } catch (err) {
        cb(errnoReply(err, 'access', path));
      }
    },

    // sysfs directories have no create: the VFS says EACCES.
    create(_path, _mode, cb) {
      cb(neg('EACCES'));
    },

    statfs(_path, cb) {
      cb(0, {
        bsize: PAGE_SIZE,
        frsize: PAGE_SIZE,
        blocks: 0,
        bfree: 0,
        bavail: 0,
        files: 0,
        ffree: 0,
        favail: 0,
        fsid: 0,
        flag: 0,
        namemax: 255,
      });
    },
  };
}

/**
 * Mount `tree`'s /sys at `mountpoint` (created if missing). Resolves once
 * the kernel has sent FUSE_INIT, i.e. the mount is usable.
 */
export async function mountSysfs(
  tree: SysfsTree,
  mountpoint: string,
  options: SysfsMountOptions = {},
): Promise<SysfsMount> {
  const { default: Fuse } = await import('fuse-native');
  const mnt = nodePath.resolve(mountpoint);
  fs.mkdirSync(mnt, { recursive: true });
  const stats: Record<string, number> = {};
  const cache = String(options.cacheSeconds ?? 1);
  const fuse = new Fuse(mnt, sysfsFuseOps(tree, stats), {
    // fuse-native has no switch for these libfuse options; riding on fsname
    // is the way in. direct_io: every read reaches us (no stale page cache).
    // big_writes: one write(2) arrives as one request even above 4 KiB (else
    // libfuse 2 cuts it into pages), so "more than a page is E2BIG" holds.
    fsname: `${options.fsName ?? 'mdevkit-lab'},direct_io,big_writes`,
    subtype: 'mdevkit',
    attrTimeout: cache,
    entryTimeout: cache,
    // Our handlers always answer at once; a per-request timer only costs.
    timeout: false,
    ...(options.allowOther ? { allowOther: true } : {}),
  });
  await new Promise<void>((resolve, reject) =>
    fuse.mount((err) => (err ? reject(err) : resolve())),
  );
  let unmounted: Promise<void> | undefined;
  return {
    mountpoint: mnt,
    stats,
    unmount() {
      unmounted ??= new Promise<void>((resolve, reject) =>
        fuse.unmount((err) => {
          if (!err) return resolve();
          if (isMountpoint(mnt)) return reject(err);
          // Removed from outside (fusermount -u): only our side is left.
          try {
            releaseGoneMount(fuse, mnt);
            resolve();
          } catch (releaseError) {
            reject(releaseError as Error);
          }
        }),
      );
      return unmounted;
    },
  };
}

/**
 * Let go of a mount that was removed from outside. fuse-native's unmount
 * runs `fusermount -uz` first and, when that fails because nothing is
 * mounted there any more, never takes its second step: releasing the
 * binding's handle on the event loop, which then keeps the process alive
 * however it is asked to stop (a `lab serve` ignored the first SIGTERM).
 * The binding's own call is that second step alone; it is the same native
 * module instance fuse-native loaded (Node caches addons by path).
 */
function releaseGoneMount(fuse: Fuse, mnt: string): void {
  const dir = nodePath.dirname(createRequire(import.meta.url).resolve('fuse-native'));
  const load = createRequire(nodePath.join(dir, 'index.js'))('node-gyp-build') as (d: string) => {
    fuse_native_unmount(mnt: string, thread: Buffer): void;
  };
  load(dir).fuse_native_unmount(mnt, (fuse as unknown as { _thread: Buffer })._thread);
}

/** What is at a path that should become a mountpoint. */
export type MountpointState = 'free' | 'live' | 'stale';

/**
 * Whether `dir` is a FUSE mount, and if so whether a server still answers
 * (`live`) or it was left by a process that died (`stale`: every access
 * fails with ENOTCONN). Uses only /proc and one asynchronous stat, so it is
 * safe to call from a process that serves other mounts.
 */
export async function mountpointState(dir: string): Promise<MountpointState> {
  const abs = nodePath.resolve(dir);
  if (!isMountpoint(abs)) return 'free';
  try {
    await fs.promises.stat(abs);
    return 'live';
  } catch (err) {
    const code = (err as { code?: string }).code;
    return code === 'ENOTCONN' || code === 'ECONNABORTED' ? 'stale' : 'live';
  }
}

/** True when `abs` is a mountpoint in this mount namespace (/proc/self/mountinfo). */
export function isMountpoint(abs: string): boolean {
  let info: string;
  try {
    info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return false;
  }
  for (const line of info.split('\n')) {
    const mountPoint = line.split(' ')[4];
    if (mountPoint !== undefined && unescapeMountinfo(mountPoint) === abs) return true;
  }
  return false;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Lazily detach a (stale) FUSE mount with fusermount -uz. */
export function detachMount(dir: string): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile('fusermount', ['-uz', nodePath.resolve(dir)], (err, _out, stderr) =>
      err ? reject(new Error(`fusermount -uz ${dir}: ${stderr.trim() || err.message}`)) : resolve(),
    ),
  );
}
