import * as fs from 'node:fs';
import { ErrnoError } from './errno.js';

/**
 * Reading what a user names — a JSON document, a profile, XML — to a
 * limit: /dev/zero, an endless pipe or a huge file end in an EFBIG
 * `ErrnoError` naming the file, instead of a process that reads until it
 * aborts (a bad_alloc in V8).
 */

/** Sleep a little without an event loop (a non-blocking standard input that has nothing yet). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** `limit` bytes in words: "1 MiB". */
export function sizeWords(limit: number): string {
  return limit % (1 << 20) === 0 ? `${limit >> 20} MiB` : `${limit} bytes`;
}

/** Read `fd` to its end, at most `limit` bytes (one more is read to know); `name` names it in the error. */
export function readFdLimited(fd: number, name: string, limit: number): string {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, limit + 1 - total));
    let got: number;
    try {
      got = fs.readSync(fd, chunk, 0, chunk.length, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      pause(5);
      continue;
    }
    if (got === 0) break;
    chunks.push(chunk.subarray(0, got));
    total += got;
    if (total > limit) {
      throw new ErrnoError('EFBIG', `${name} is larger than ${sizeWords(limit)}`, name);
    }
  }
  return Buffer.concat(chunks, total).toString('utf8');
}

/** The file at `path` (links followed: the user named it), at most `limit` bytes. */
export function readFileLimited(path: string, limit: number, name = path): string {
  const fd = fs.openSync(path, 'r');
  try {
    return readFdLimited(fd, name, limit);
  } finally {
    fs.closeSync(fd);
  }
}
