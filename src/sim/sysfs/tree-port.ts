import { ErrnoError } from '../../common/errno.js';
import type { SysfsNodeKind, SysfsPort } from '../../port/sysfs-port.js';
import type { SysfsTree } from './tree.js';

/**
 * The sysfs port bound in process to the emulator's tree: the fast path for
 * tests and for the embedded default (no root, no FUSE). It gives exactly
 * the results the node:fs port gives over a FUSE mount, failures included:
 * an `ErrnoError` with the code and the path asked for, and nothing else.
 * A real kernel tells a writer only the errno (its explanation goes to
 * dmesg), so the emulator's `detail` stays behind; the lab's control
 * socket (src/sim/control.ts, op dmesg) is where it can be read.
 */
export class TreeSysfsPort implements SysfsPort {
  readonly description = 'in-process lab';
  constructor(private readonly tree: SysfsTree) {}

  read(path: string): string {
    try {
      return this.tree.read(path);
    } catch (err) {
      throw asPortError(err, path);
    }
  }
  readBytes(path: string): Buffer {
    try {
      return this.tree.readBytes(path);
    } catch (err) {
      throw asPortError(err, path);
    }
  }
  write(path: string, data: string): void {
    try {
      this.tree.write(path, data);
    } catch (err) {
      throw asPortError(err, path);
    }
  }
  list(path: string): string[] {
    try {
      return this.tree.list(path);
    } catch (err) {
      throw asPortError(err, path);
    }
  }
  readlink(path: string): string {
    try {
      return this.tree.readlink(path);
    } catch (err) {
      throw asPortError(err, path);
    }
  }
  kind(path: string): SysfsNodeKind | null {
    try {
      return this.tree.node(path, false).kind;
    } catch (err) {
      // lstat(2): a missing component or a walk through a file is "absent".
      if (err instanceof ErrnoError && (err.code === 'ENOENT' || err.code === 'ENOTDIR'))
        return null;
      throw asPortError(err, path);
    }
  }
  realpath(path: string): string {
    try {
      return this.tree.realpath(path);
    } catch (err) {
      throw asPortError(err, path);
    }
  }
}

/**
 * What FsSysfsPort makes of the same failure (toErrnoError): code and the
 * path asked for. Anything that is not an errno is the emulator's bug and
 * goes through unchanged.
 */
function asPortError(err: unknown, path: string): unknown {
  return err instanceof ErrnoError ? new ErrnoError(err.code, undefined, path) : err;
}
