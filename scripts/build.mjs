// Bundle the CLI into one ES module (dist/mdevkit.mjs): one file to load is
// the cheapest start-up a Node CLI can have. Native addons stay external.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/cli/entry.ts'],
  outfile: 'dist/mdevkit.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  external: ['fuse-native', 'playwright-core'],
  banner: {
    // Bundled CommonJS dependencies may call require(); give them one.
    js: "import { createRequire as __mdevkitCreateRequire } from 'node:module'; const require = __mdevkitCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
