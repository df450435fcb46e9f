import { processIo } from '../ctl/io.js';
import { main } from './main.js';

// The bundled entry point (dist/mdevkit.mjs). Exit codes: 0, 1 runtime, 2 usage.
process.exitCode = await main(process.argv.slice(2), processIo());
