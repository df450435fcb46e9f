import type { SysfsNodeKind, SysfsPort } from '../../port/sysfs-port.js';
import type { SysfsTree } from './tree.js';

/**
 * The sysfs port bound in process to the emulator's tree: the fast path for
 * tests and for the embedded default (no root, no FUSE). It gives exactly
 * the results and errno codes the node:fs port gives over a FUSE mount.
 */
export class TreeSysfsPort implements SysfsPort {
  readonly description = 'in-process lab';
  constructor(private readonly tree: SysfsTree) {}

  read(path: string): string {
    return this.tree.read(path);
  }
  readBytes(path: string): Buffer {
    return this.tree.readBytes(path);
  }
  write(path: string, data: string): void {
    this.tree.write(path, data);
  }
  list(path: string): string[] {
    return this.tree.list(path);
  }
  readlink(path: string): string {
    return this.tree.readlink(path);
  }
  kind(path: string): SysfsNodeKind | null {
    return this.tree.lookup(path, false)?.kind ?? null;
  }
  realpath(path: string): string {
    return this.tree.realpath(path);
  }
}
