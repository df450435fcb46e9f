// Bundle the CLI (dist/mdevkit.mjs) with code splitting: the entry and what
// every command needs load as one chunk, and heavy parts (the agent's HTTP
// stack, FUSE, XML) load only when their command runs, via dynamic import()
// in src/cli/main.ts. Few files to load is the cheapest start-up a Node CLI
// can have. Native addons stay external.
import * as fs from 'node:fs';
import { build } from 'esbuild';
import { buildMdevctlExecutable } from './compile-mdevctl.mjs';

// Start from an empty dist/: chunk names carry content hashes, so chunks of
// earlier builds would otherwise pile up beside the current ones.
fs.rmSync('dist', { recursive: true, force: true });

await build({
  // The agent's operations worker (src/agent/operations.ts) is a module of its own.
  entryPoints: { mdevkit: 'src/cli/entry.ts', 'agent-ops-worker': 'src/agent/ops-worker.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  external: ['fuse-native', 'netlink', 'playwright-core'],
  banner: {
    // Bundled CommonJS dependencies may call require(); give them one.
    js: "import { createRequire as __mdevkitCreateRequire } from 'node:module'; const require = __mdevkitCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});

// bin/mdevctl (a link to dist/mdevctl): the mdevctl-compatible commands.
// libvirt and scripts run mdevctl often, and on a small host start-up is
// nearly all of its time (bench/mdevctl.bench.ts), so they get a program of
// their own rather than a command of the CLI bundle:
//  - dist/mdevctl.cjs, one standalone CommonJS file for Node: no chunks to
//    resolve and no ESM loader at start-up;
//  - dist/mdevctl, where Bun can be run: the same commands compiled into a
//    single executable with Bun's runtime and their bytecode inside (see
//    scripts/compile-mdevctl.mjs and docs/ARCHITECTURE.md for the choice);
//    elsewhere a small sh launcher that runs dist/mdevctl.cjs with Node.
await build({
  entryPoints: ['src/ctl/mdevctl/main.ts'],
  outfile: 'dist/mdevctl.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
});
await buildMdevctlExecutable('dist');

// The dashboard (dist/web): its TypeScript modules under src/web/dashboard
// bundled into one browser module, app.js, beside copies of the page and
// its stylesheet from src/web/static. The agent serves this folder
// (src/web/assets.ts finds it from the source tree and from the bundle).
// From src/agent it takes only event-kinds.ts (and types, which vanish);
// test/architecture checks that nothing else of the server gets in.
await build({
  entryPoints: { app: 'src/web/dashboard/main.ts' },
  outdir: 'dist/web',
  bundle: true,
  platform: 'browser',
  format: 'esm',
  target: 'es2022',
  sourcemap: 'linked',
  logLevel: 'warning',
});
for (const name of fs.readdirSync('src/web/static')) {
  fs.copyFileSync(`src/web/static/${name}`, `dist/web/${name}`);
}
