// `npm run bench [NAME...]`: runs bench/*.bench.ts (all, or those whose file
// name contains one of NAMEs) one after another, each in its own process so
// one benchmark's heap does not skew the next. Each prints its own table of
// figures against its baseline.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

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
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', `bench/${f}`], {
    stdio: 'inherit',
  });
  if (r.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
