import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { before, describe, test } from 'node:test';
import { build } from 'esbuild';
import { ESLint } from 'eslint';
import { tmpDir } from '../support/tmp.js';
import {
  describeReach,
  findReach,
  layerOf,
  managementReachingSim,
  moduleGraph,
  type EdgeKind,
} from './module-graph.js';

/**
 * The one rule of the architecture — the management side reaches the
 * kernel only through sysfs files, never through the emulator (src/sim) —
 * and its corollary for the browser: the dashboard bundles no server code.
 * Checked on this checkout, and shown to catch each way of breaking it on
 * a copy with violations planted in it.
 */
const ROOT = nodePath.resolve(import.meta.dirname, '../..');
const DASHBOARD_ENTRY = 'src/web/dashboard/main.ts';
/** The only module of the server the dashboard may bundle (it imports nothing). */
const SHARED_WITH_BROWSER = 'src/agent/event-kinds.ts';

const rel = (root: string, f: string): string =>
  nodePath.relative(root, f).split(nodePath.sep).join('/');

/** What the dashboard bundle is made of at run time, as TypeScript resolves its imports. */
function dashboardRuntimeFiles(root: string): string[] {
  const graph = moduleGraph(root);
  const seen: string[] = [];
  findReach(graph, nodePath.join(root, DASHBOARD_ENTRY), (f) => (seen.push(rel(root, f)), false), {
    runtimeOnly: true,
  });
  return seen.sort();
}
const browserSafe = (f: string): boolean =>
  f.startsWith('src/web/dashboard/') || f === SHARED_WITH_BROWSER;

describe('no management module reaches src/sim', () => {
  test('in this checkout, by any chain of imports', () => {
    const { reaches, computed } = managementReachingSim(ROOT);
    assert.deepEqual(
      reaches.map((r) => describeReach(ROOT, r)),
      [],
    );
    assert.deepEqual(computed, [], 'modules named by computed expressions cannot be checked');
  });

  test('src/cli, the wiring, does (so the walk is not blind)', () => {
    const graph = moduleGraph(ROOT);
    const r = findReach(
      graph,
      nodePath.join(ROOT, 'src/cli/agent.ts'),
      (f) => layerOf(ROOT, f) === 'sim',
    );
    assert.ok(r !== undefined);
  });
});

describe('the dashboard bundles no server code', () => {
  test('its run-time imports stay in src/web/dashboard, plus the event kinds', () => {
    const files = dashboardRuntimeFiles(ROOT);
    assert.ok(files.includes(SHARED_WITH_BROWSER), 'the event kinds come from the server');
    assert.deepEqual(
      files.filter((f) => !browserSafe(f)),
      [],
    );
  });

  test('what esbuild puts into app.js says the same', async () => {
    const result = await build({
      entryPoints: [nodePath.join(ROOT, DASHBOARD_ENTRY)],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      metafile: true,
      logLevel: 'silent',
      absWorkingDir: ROOT,
    });
    const inputs = Object.keys(result.metafile.inputs).sort();
    assert.ok(inputs.includes(SHARED_WITH_BROWSER));
    assert.deepEqual(
      inputs.filter((f) => !browserSafe(f)),
      [],
    );
  });
});

/**
 * A copy of the checkout (src, configs, the lint rule; node_modules
 * linked) with one violation planted per way of reaching src/sim. Each
 * planted module must be caught, by the walk and by eslint.
 */
describe('violations planted in a copy are caught', () => {
  const copy = tmpDir('mdevkit-layering-');
  const planted: { file: string; code: string; first: EdgeKind | 'computed'; lint: boolean }[] = [
    {
      file: 'src/host/planted-static.ts',
      code: "import { Lab } from '../sim/lab.js';\nexport const made = Lab;\n",
      first: 'import',
      lint: true,
    },
    {
      file: 'src/ctl/planted-dynamic.ts',
      code: "export const load = () => import('../sim/lab.js');\n",
      first: 'import()',
      lint: true,
    },
    {
      file: 'src/libvirt/planted-reexport.ts',
      code: "export * from '../sim/lab.js';\n",
      first: 'export from',
      lint: true,
    },
    {
      file: 'src/agent/planted-require.ts',
      code:
        "import { createRequire } from 'node:module';\n" +
        'const load = createRequire(import.meta.url);\n' +
        "export const lab: unknown = load('../sim/lab.js');\n" +
        "export const lab2: unknown = require('../sim/lab.js');\n",
      first: 'require()',
      lint: true,
    },
    {
      file: 'src/agent/planted-type.ts',
      code: "export type L = import('../sim/lab.js').Lab;\n",
      first: 'import() type',
      lint: true,
    },
    {
      file: 'src/web/planted-type-import.ts',
      code: "import type { Lab } from '../sim/lab.js';\nexport type L = Lab;\n",
      first: 'import type',
      lint: true,
    },
    {
      // Aliases: tsconfig `paths` and package.json `imports` (added to the copy's configs).
      file: 'src/host/planted-paths-alias.ts',
      code: "import { Lab } from '@emulator/lab.js';\nexport const made = Lab;\n",
      first: 'import',
      lint: true,
    },
    {
      file: 'src/ctl/planted-imports-alias.ts',
      code: "import { Lab } from '#emulator/lab.js';\nexport const made = Lab;\n",
      first: 'import',
      lint: true,
    },
    {
      // Through a folder management may use: common itself breaks the rule
      // (lint), and the host module that imports it reaches sim (the walk).
      file: 'src/common/planted-leak.ts',
      code: "export { Lab } from '../sim/lab.js';\n",
      first: 'export from',
      lint: true,
    },
    {
      file: 'src/host/planted-via-common.ts',
      code: "import { Lab } from '../common/planted-leak.js';\nexport const made = Lab;\n",
      first: 'import',
      lint: false, // host may import common: only the walk sees the chain
    },
    {
      // A management folder nobody has added to the layer table yet.
      file: 'src/k8s/planted.ts',
      code: "import { Lab } from '../sim/lab.js';\nexport const made = Lab;\n",
      first: 'import',
      lint: true,
    },
    {
      file: 'src/host/planted-computed.ts',
      code: "const where = ['..', 'sim', 'lab.js'].join('/');\nexport const load = () => import(where);\n",
      first: 'computed',
      lint: true,
    },
  ];

  before(() => {
    for (const p of [
      'src',
      'scripts/eslint-plugin-layering.mjs',
      'eslint.config.js',
      'tsconfig.json',
    ]) {
      fs.cpSync(nodePath.join(ROOT, p), nodePath.join(copy, p), { recursive: true });
    }
    fs.symlinkSync(nodePath.join(ROOT, 'node_modules'), nodePath.join(copy, 'node_modules'));
    const pkg = JSON.parse(fs.readFileSync(nodePath.join(ROOT, 'package.json'), 'utf8'));
    pkg.imports = { '#emulator/*': './src/sim/*' };
    fs.writeFileSync(nodePath.join(copy, 'package.json'), JSON.stringify(pkg));
    const tsconfig = fs
      .readFileSync(nodePath.join(ROOT, 'tsconfig.json'), 'utf8')
      .replace(
        '"compilerOptions": {',
        '"compilerOptions": {\n "paths": { "@emulator/*": ["./src/sim/*"] },',
      );
    fs.writeFileSync(nodePath.join(copy, 'tsconfig.json'), tsconfig);
    for (const p of planted) {
      fs.mkdirSync(nodePath.dirname(nodePath.join(copy, p.file)), { recursive: true });
      fs.writeFileSync(nodePath.join(copy, p.file), p.code);
    }
    // And a server module pulled into the dashboard at run time.
    fs.appendFileSync(
      nodePath.join(copy, 'src/web/dashboard/main.ts'),
      "import { EventHub } from '../../agent/hub.js';\nexport const planted = EventHub;\n",
    );
  });

  test('the walk reports each planted module, by the way it was planted', () => {
    const { reaches, computed } = managementReachingSim(copy);
    const byEntry = new Map(reaches.map((r) => [rel(copy, r.entry), r]));
    for (const p of planted) {
      if (p.first === 'computed') {
        assert.ok(
          computed.some((c) => c.includes(p.file)),
          `${p.file}: computed import() not reported`,
        );
        continue;
      }
      const r = byEntry.get(p.file);
      assert.ok(r !== undefined, `${p.file} reaches src/sim but was not reported`);
      assert.equal(r.chain[1]?.via?.kind, p.first, describeReach(copy, r));
      assert.equal(layerOf(copy, r.chain.at(-1)!.file), 'sim');
    }
    // Nothing else: the rest of the copy is this checkout, which is clean.
    assert.deepEqual(
      [...byEntry.keys()].filter((f) => !planted.some((p) => p.file === f)),
      [],
    );
  });

  test('the dashboard check sees the server module planted in main.ts', () => {
    const server = dashboardRuntimeFiles(copy).filter((f) => !browserSafe(f));
    assert.ok(server.includes('src/agent/hub.ts'), server.join(', '));
  });

  test("eslint, with this checkout's config, flags each planted import", async () => {
    const eslint = new ESLint({ cwd: copy });
    const files = planted.map((p) => p.file).concat('src/web/dashboard/main.ts');
    const results = await eslint.lintFiles(files);
    const flagged = new Map(
      results.map((r) => [
        rel(copy, r.filePath),
        r.messages.filter((m) => m.ruleId === 'layering/imports').map((m) => m.message),
      ]),
    );
    for (const p of planted) {
      const messages = flagged.get(p.file) ?? [];
      if (p.lint) assert.ok(messages.length > 0, `${p.file} passed the layering lint`);
      else assert.deepEqual(messages, [], p.file);
    }
    assert.ok(
      flagged.get('src/web/dashboard/main.ts')?.some((m) => /only types from src\/agent/.test(m)),
      'a run-time import of server code into the dashboard passed the lint',
    );
  });
});
