import { processFdIo } from '../io.js';
import { runMdevctl, type Prog } from './run.js';

/**
 * Entry point of bin/mdevctl: the mdevctl commands alone, built as the
 * standalone dist/mdevctl.cjs (run by Node) and, where Bun is available,
 * compiled into the single executable dist/mdevctl (scripts/build.mjs).
 * mdevctl is run often by libvirt and scripts, so its start-up counts:
 * output goes out by write(2) (processFdIo), not through process.stdout.
 * Invoked as lsmdev it behaves as lsmdev: the compiled program sees the
 * name it was run by in process.argv0; Node's launcher passes "--as-lsmdev".
 */
const args = process.argv.slice(2);
let prog: Prog = 'mdevctl';
if (args[0] === '--as-lsmdev') {
  args.shift();
  prog = 'lsmdev';
} else if (process.argv0.slice(process.argv0.lastIndexOf('/') + 1) === 'lsmdev') {
  prog = 'lsmdev';
}
process.exitCode = runMdevctl(processFdIo(), args, prog);
