import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { toErrnoError } from '../common/errno.js';
import type { SysfsNodeKind, SysfsPort } from './sysfs-port.js';

/**
 * Bun's readdirSync gives the names in readdir(3)'s order in one call (the
 * compiled bin/mdevctl runs on Bun); Node's sorts them (libuv's scandir), so
 * there a directory is read entry by entry through opendir. On a host with
 * 10k devices the one call saves about a microsecond per entry of the bus
 * and of each type's devices/ (bench/mdevctl.bench.ts).
 */
const READDIR_KEEPS_ORDER = process.versions['bun'] !== undefined;

/**
 * The sysfs port over node:fs, under a root directory: "/" on a real host,
 * a FUSE mount of the live lab, or a static snapshot. sysfs paths are
 * prefixed with the root; results are mapped back so callers never see it.
 */
export class FsSysfsPort implements SysfsPort {
  readonly description: string;
  readonly #prefix: string;

  constructor(readonly root: string = '/') {
    this.#prefix = nodePath.resolve(root) === '/' ? '' : nodePath.resolve(root);
    this.description = nodePath.resolve(root);
  }

  #host(path: string): string {
    return this.#prefix + path;
  }

  read(path: string): string {
    try {
      return readWhole(this.#host(path));
    } catch (err) {
      throw toErrnoError(err, path);
    }
  }

  readBytes(path: string): Buffer {
    try {
      return fs.readFileSync(this.#host(path));
    } catch (err) {
      throw toErrnoError(err, path);
    }
  }

  write(path: string, data: string): void {
    // One write(2) of the whole buffer, as `echo x > attr` does: sysfs hands
    // each write to the store callback separately, so it must not be split.
    let fd: number | undefined;
    try {
      fd = fs.openSync(this.#host(path), fs.constants.O_WRONLY);
      fs.writeSync(fd, data);
    } catch (err) {
      throw toErrnoError(err, path);
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  /**
   * In the directory's own order (what readdir(3) gives, which is what
   * libvirt and other C tools show): fs.readdirSync would sort the names
   * (libuv's scandir does).
   */
  list(path: string): string[] {
    if (READDIR_KEEPS_ORDER) {
      try {
        return fs.readdirSync(this.#host(path));
      } catch (err) {
        throw toErrnoError(err, path);
      }
    }
    let dir: fs.Dir | undefined;
    try {
      dir = fs.opendirSync(this.#host(path), { bufferSize: 256 });
      const names: string[] = [];
      for (let e = dir.readSync(); e !== null; e = dir.readSync()) names.push(e.name);
      return names;
    } catch (err) {
      throw toErrnoError(err, path);
    } finally {
      dir?.closeSync();
    }
  }

  readlink(path: string): string {
    try {
      return fs.readlinkSync(this.#host(path));
    } catch (err) {
      throw toErrnoError(err, path);
    }
  }

  kind(path: string): SysfsNodeKind | null {
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(this.#host(path), { throwIfNoEntry: false });
    } catch (err) {
      // A walk through a file is as absent as a missing name.
      if ((err as { code?: unknown }).code === 'ENOTDIR') return null;
      throw toErrnoError(err, path);
    }
    if (st === undefined) return null;
    if (st.isSymbolicLink()) return 'link';
    return st.isDirectory() ? 'dir' : 'file';
  }

  realpath(path: string): string {
    let real: string;
    try {
      real = fs.realpathSync(this.#host(path));
    } catch (err) {
      throw toErrnoError(err, path);
    }
    if (this.#prefix === '') return real;
    return real.startsWith(this.#prefix + '/') ? real.slice(this.#prefix.length) : real;
  }
}

/**
 * A file's contents with one open, read(2) and close where readFileSync
 * makes five calls (fstat, and a last read that returns 0): a sysfs
 * attribute, at most a page, comes whole from its first read, and a regular
 * file reads short only at its end, so a read that does not fill the buffer
 * was the last. Over FUSE each call saved is a round trip to the server.
 */
let readBuffer: Buffer | undefined;
function readWhole(file: string): string {
  let buf = (readBuffer ??= Buffer.allocUnsafe(16 * 1024));
  const fd = fs.openSync(file, 'r');
  try {
    let n = 0;
    for (;;) {
      const got = fs.readSync(fd, buf, n, buf.length - n, null);
      n += got;
      if (n < buf.length) break;
      const bigger = Buffer.allocUnsafe(buf.length * 2);
      buf.copy(bigger);
      buf = readBuffer = bigger;
    }
    return buf.toString('utf8', 0, n);
  } finally {
    fs.closeSync(fd);
  }
}
