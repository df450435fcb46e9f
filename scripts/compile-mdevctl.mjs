// dist/mdevctl, the program bin/mdevctl links to. Called by scripts/build.mjs
// after it wrote dist/mdevctl.cjs; `node scripts/compile-mdevctl.mjs` redoes
// only this step.
//
// Where Bun runs, dist/mdevctl is src/ctl/mdevctl compiled into one
// executable: Bun's runtime with the commands' bytecode inside. mdevctl's
// own start-up is a few milliseconds; Node's alone is 40-100 (measured in
// bench/mdevctl.bench.ts, trade-offs in docs/ARCHITECTURE.md). Elsewhere
// (no Bun, a platform it has no build for, `npm ci --ignore-scripts` leaving
// its placeholder) dist/mdevctl is a small sh launcher running
// dist/mdevctl.cjs with Node, and the build says so.
//
// Bun is found as $MDEVKIT_BUN (a path; empty or 0 turns compiling off), the
// devDependency in node_modules/.bin, or `bun` on PATH.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build } from 'esbuild';

// Bun's compiled program starts with JavaScriptCore's tier-up thresholds
// scaled by this: a command that runs for a few milliseconds gains nothing
// from the JIT, yet would start its compiler threads. Long listings (10k
// devices) are syscall-bound and measured no slower with it.
const JIT_POLICY = 64;

function findBun() {
  const chosen = process.env['MDEVKIT_BUN'];
  if (chosen === '' || chosen === '0') return { skip: `MDEVKIT_BUN=${chosen}` };
  const candidates =
    chosen !== undefined ? [chosen] : [path.resolve('node_modules/.bin/bun'), 'bun'];
  for (const bun of candidates) {
    const r = spawnSync(bun, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return { bun, version: r.stdout.trim() };
  }
  if (chosen !== undefined) throw new Error(`MDEVKIT_BUN=${chosen} does not run`);
  return { skip: 'no runnable Bun (node_modules/.bin/bun, PATH)' };
}

const LAUNCHER = `#!/bin/sh
# mdevctl through Node: written by scripts/build.mjs where Bun could not
# compile dist/mdevctl. Runs dist/mdevctl.cjs beside this file; invoked as
# lsmdev (through a link of that name), it behaves as lsmdev.
self=$0
if [ -L "$self" ]; then self=$(readlink -f "$self") || self=$0; fi
bundle="\${self%/*}/mdevctl.cjs"
case "$0" in
  *lsmdev) exec node "$bundle" --as-lsmdev "$@" ;;
  *) exec node "$bundle" "$@" ;;
esac
`;

function writeLauncher(out) {
  fs.writeFileSync(out, LAUNCHER, { mode: 0o755 });
}

/**
 * Write `${dist}/mdevctl`: the compiled program, or the Node launcher.
 * Returns what was written ("bun <version>" or "node").
 */
export async function buildMdevctlExecutable(dist) {
  const out = path.join(dist, 'mdevctl');
  fs.rmSync(out, { force: true });
  const found = findBun();
  if (found.bun === undefined) {
    writeLauncher(out);
    console.log(`dist/mdevctl runs dist/mdevctl.cjs with Node (${found.skip})`);
    return 'node';
  }
  // Bun compiles what esbuild bundled, so both runtimes run the same code.
  // ES module form: a CommonJS bundle would copy every export of node:fs
  // and node:path into namespace objects at start-up (esbuild's interop),
  // which in Bun also loads node:fs/promises.
  const entry = path.join(dist, 'mdevctl.mjs');
  await build({
    entryPoints: ['src/ctl/mdevctl/main.ts'],
    outfile: entry,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
  });
  const tmp = `${out}.tmp-${process.pid}`;
  const r = spawnSync(
    found.bun,
    [
      'build',
      entry,
      '--compile',
      '--bytecode',
      '--format=esm',
      '--target=bun',
      '--minify-syntax',
      '--minify-whitespace',
      // A drop-in must not read .env or bunfig.toml from wherever it runs.
      '--no-compile-autoload-dotenv',
      '--no-compile-autoload-bunfig',
      `--compile-jit-policy=${JIT_POLICY}`,
      '--outfile',
      tmp,
    ],
    { encoding: 'utf8' },
  );
  // A binary that cannot run here (a CPU its build does not support) is no
  // better than none.
  const check = r.status === 0 ? spawnSync(tmp, ['--version'], { encoding: 'utf8' }) : undefined;
  if (check?.status !== 0 || !check.stdout.startsWith('mdevctl ')) {
    fs.rmSync(tmp, { force: true });
    writeLauncher(out);
    const why =
      r.status !== 0 ? `bun build failed:\n${r.stderr}` : 'the compiled program does not run';
    console.log(`dist/mdevctl runs dist/mdevctl.cjs with Node (${why})`);
    return 'node';
  }
  fs.renameSync(tmp, out);
  return `bun ${found.version}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(`dist/mdevctl: ${await buildMdevctlExecutable('dist')}`);
}
