import { processIo } from '../io.js';
import { runMdevctl, type Prog } from './run.js';

/**
 * Entry point of the standalone `dist/mdevctl.mjs` (bin/mdevctl): the
 * mdevctl commands alone, in one file with no chunks to resolve, because
 * mdevctl is run often by libvirt and scripts and its start-up counts.
 * argv[2] may be "lsmdev" (inserted by bin/mdevctl when invoked under
 * that name).
 */
const args = process.argv.slice(2);
let prog: Prog = 'mdevctl';
if (args[0] === '--as-lsmdev') {
  args.shift();
  prog = 'lsmdev';
}
process.exitCode = runMdevctl(processIo(), args, prog);
