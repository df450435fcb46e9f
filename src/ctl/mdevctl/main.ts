import * as fs from 'node:fs';
import { runMdevctl, type Prog } from './run.js';

/**
 * Entry point of bin/mdevctl: the mdevctl commands alone, built as the
 * standalone dist/mdevctl.cjs (run by Node) and, where Bun is available,
 * compiled into the single executable dist/mdevctl (see scripts/build.mjs).
 * mdevctl is run often by libvirt and scripts, so its start-up counts.
 * Invoked as lsmdev it behaves as lsmdev: the compiled program sees the
 * name it was run by in process.argv0; Node's launcher passes "--as-lsmdev".
 */

/**
 * Output goes straight to the file descriptor with write(2), not through
 * process.stdout: the stream machinery is the largest module graph this
 * program would otherwise load (in Bun most of a small command's time), and
 * a synchronous write leaves nothing buffered when the process exits, in
 * either runtime and on any kind of stdout (pipe, file, terminal).
 */
function fdWriter(fd: number): { write(s: string): void } {
  let closed = false;
  return {
    write(s: string): void {
      if (closed || s === '') return;
      const buf = Buffer.from(s, 'utf8');
      let off = 0;
      while (off < buf.length) {
        try {
          off += fs.writeSync(fd, buf, off);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          // A non-blocking descriptor handed to us full: wait for the reader.
          if (code === 'EAGAIN') {
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
            continue;
          }
          // The reader went away (`mdevctl list | head -1`): nothing more to say.
          if (code === 'EPIPE') {
            closed = true;
            return;
          }
          throw err;
        }
      }
    },
  };
}

const args = process.argv.slice(2);
let prog: Prog = 'mdevctl';
if (args[0] === '--as-lsmdev') {
  args.shift();
  prog = 'lsmdev';
} else if (process.argv0.slice(process.argv0.lastIndexOf('/') + 1) === 'lsmdev') {
  prog = 'lsmdev';
}
process.exitCode = runMdevctl(
  {
    stdout: fdWriter(1),
    stderr: fdWriter(2),
    env: process.env,
    cwd: process.cwd(),
    readStdin: () => fs.readFileSync(0, 'utf8'),
  },
  args,
  prog,
);
