import { processIo } from '../ctl/io.js';
import { main } from './main.js';

// The bundled entry point (dist/mdevkit.mjs). Exit codes: 0, 1 runtime, 2 usage.
process.exitCode = await main(process.argv.slice(2), processIo());

// When main returns, the command is finished: the long-running ones (agent,
// lab serve, k8s plugins, lab shell) return only after their stop signal or
// their child's exit. A handle a native addon fails to release must not keep
// a finished process alive: once, `lab serve` unmounted on SIGTERM and then
// lingered for 15 minutes. The timer is unref'd, so a clean exit is not
// delayed by it; it only fires when something else still holds the loop.
setTimeout(() => {
  process.stderr.write('mdevkit: exiting; a handle was still open after the command finished\n');
  process.exit();
}, 5000).unref();
