/**
 * The sysfs port: the only way the management side (src/host, src/ctl,
 * src/libvirt, src/agent) reaches the kernel. Two implementations exist:
 * `FsSysfsPort` (node:fs under a root: a real /sys, a FUSE mount, a snapshot)
 * and the emulator's in-process binding (src/sim/sysfs/tree-port.ts), wired
 * together only at the edge (src/cli).
 *
 * Paths are absolute sysfs paths ("/sys/bus/mdev/devices"), as on a host;
 * each implementation maps them to its own storage. Every failure is an
 * `ErrnoError` with the code the kernel would give (ENOENT, EINVAL, EBUSY...)
 * and the path asked for, and nothing more: both implementations throw the
 * same error for the same failure (the kernel tells a writer only the errno;
 * why it refused goes to its log, which is not the port's business).
 *
 * The port is synchronous on purpose: sysfs show/store callbacks run at
 * memory speed in the kernel, mdevctl itself is synchronous, and a sync API
 * keeps the CLI's start-up and hot paths free of promise overhead.
 */
export type SysfsNodeKind = 'file' | 'dir' | 'link';

export interface SysfsPort {
  /** Human description of where this port reads ("/", "/tmp/lab", "in-process lab"). */
  readonly description: string;
  /** Contents of an attribute (follows links). */
  read(path: string): string;
  /**
   * Contents of an attribute as bytes, for binary attributes such as a PCI
   * function's `config`. Optional: a port without it (a test's wrapper)
   * makes callers treat binary attributes as unreadable.
   */
  readBytes?(path: string): Buffer;
  /** One store to an attribute: the whole string in one write(2). */
  write(path: string, data: string): void;
  /** Entry names of a directory (follows links), unsorted. */
  list(path: string): string[];
  /** Target of a symbolic link, as stored (usually relative). */
  readlink(path: string): string;
  /** What the path itself is (does not follow a final link), or null when absent. */
  kind(path: string): SysfsNodeKind | null;
  /** Canonical path with every link resolved (realpath(3)). */
  realpath(path: string): string;
}
