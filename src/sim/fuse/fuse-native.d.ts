// Types for the parts of fuse-native (2.2.x, CommonJS, no bundled types)
// that the lab's FUSE server uses. Errors are negative errno numbers, as
// libfuse expects them; a handler answers through its callback, once.
declare module 'fuse-native' {
  export interface FuseStat {
    mode: number;
    size?: number;
    nlink?: number;
    uid?: number;
    gid?: number;
    mtime?: Date | number;
    atime?: Date | number;
    ctime?: Date | number;
    blksize?: number;
    blocks?: number;
  }

  export interface FuseStatfs {
    bsize: number;
    frsize: number;
    blocks: number;
    bfree: number;
    bavail: number;
    files: number;
    ffree: number;
    favail: number;
    fsid: number;
    flag: number;
    namemax: number;
  }

  type Done = (code: number) => void;

  export interface FuseOps {
    init?: (cb: Done) => void;
    getattr?: (path: string, cb: (code: number, stat?: FuseStat) => void) => void;
    fgetattr?: (path: string, fd: number, cb: (code: number, stat?: FuseStat) => void) => void;
    statfs?: (path: string, cb: (code: number, statfs?: FuseStatfs) => void) => void;
    readdir?: (
      path: string,
      cb: (code: number, names?: string[], stats?: FuseStat[]) => void,
    ) => void;
    readlink?: (path: string, cb: (code: number, target?: string) => void) => void;
    open?: (path: string, flags: number, cb: (code: number, fd?: number) => void) => void;
    opendir?: (path: string, flags: number, cb: (code: number, fd?: number) => void) => void;
    create?: (path: string, mode: number, cb: (code: number, fd?: number) => void) => void;
    read?: (
      path: string,
      fd: number,
      buf: Buffer,
      len: number,
      pos: number,
      cb: (bytesOrCode: number) => void,
    ) => void;
    write?: (
      path: string,
      fd: number,
      buf: Buffer,
      len: number,
      pos: number,
      cb: (bytesOrCode: number) => void,
    ) => void;
    release?: (path: string, fd: number, cb: Done) => void;
    releasedir?: (path: string, fd: number, cb: Done) => void;
    truncate?: (path: string, size: number, cb: Done) => void;
    ftruncate?: (path: string, fd: number, size: number, cb: Done) => void;
    flush?: (path: string, fd: number, cb: Done) => void;
    fsync?: (path: string, fd: number, datasync: boolean, cb: Done) => void;
    utimens?: (path: string, atime: number, mtime: number, cb: Done) => void;
    access?: (path: string, mode: number, cb: Done) => void;
  }

  export interface FuseOptions {
    /** false: no per-operation JavaScript timer (fuse-native's default is 15 s). */
    timeout?: number | false;
    /** libfuse options (strings, because fuse-native drops falsy values). */
    attrTimeout?: string | number;
    entryTimeout?: string | number;
    fsname?: string;
    subtype?: string;
    allowOther?: boolean;
    debug?: boolean;
    mkdir?: boolean;
    force?: boolean;
  }

  export default class Fuse {
    constructor(mnt: string, ops: FuseOps, opts?: FuseOptions);
    readonly mnt: string;
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
  }
}
