import { main, processContext } from './main.js';

// The bundled entry point (dist/mdevkit.mjs). Exit codes: 0, 1 runtime, 2 usage.
const code = await main(process.argv.slice(2), processContext());
process.exitCode = code;
