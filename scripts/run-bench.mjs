// `npm run bench [NAME...]`: runs bench/*.bench.ts (all, or those whose file
// name contains one of NAMEs) one after another, each in its own process so
// one benchmark's heap does not skew the next. Each prints its own table of
// figures against its baseline.
//
// Each benchmark is bundled with esbuild first, as the shipped CLI is
// (scripts/build.mjs), so it measures the code users run rather than the
// test loader's transform; npm packages stay external.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { build } from 'esbuild';

const filters = process.argv.slice(2);
const files = fs
  .readdirSync('bench')
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filters.length === 0 || filters.some((n) => f.includes(n)))
  .sort();
if (files.length === 0) {
  console.error(`run-bench: no benchmark matches ${filters.join(', ') || '(any)'}`);
  process.exit(1);
}
let failed = 0;
for (const f of files) {
  console.log(`\n=== ${f}`);
  // Beside the source, so import.meta.url-relative paths stay valid.
  const out = `bench/${f.replace(/\.ts$/, '.bundle.mjs')}`;
  await build({
    entryPoints: [`bench/${f}`],
    outfile: out,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'warning',
  });
  const r = spawnSync(process.execPath, ['--expose-gc', out], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
