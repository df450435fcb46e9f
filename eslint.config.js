// Lint: typescript-eslint's recommended rules plus the layering rule of
// docs/ARCHITECTURE.md. Each folder under src/ lists what it may import
// (scripts/eslint-plugin-layering.mjs checks every import form — static,
// dynamic, re-export, require — through TypeScript's own resolution), so
// "the management side never reaches into the emulator" is checked, not
// hoped. test/architecture checks the same rule transitively.
import tseslint from 'typescript-eslint';
import layering from './scripts/eslint-plugin-layering.mjs';

/**
 * What each layer may import: layers by folder name, single files by
 * path; `mayTypes` only with `import type`. A folder not listed here is
 * treated as management (anything but src/sim and src/cli).
 */
const LAYERS = {
  common: { may: [] },
  port: { may: ['common'] },
  sim: { may: ['common', 'port'] },
  host: { may: ['common', 'port'] },
  ctl: { may: ['common', 'port', 'host'] },
  libvirt: { may: ['common', 'port', 'host', 'ctl'] },
  agent: { may: ['common', 'port', 'host', 'ctl', 'libvirt', 'web'] },
  // Kubernetes integration (device plugin, node configuration): management.
  k8s: { may: ['common', 'port', 'host'] },
  // The dashboard runs in a browser: of the server it bundles only the
  // event kinds (a module that imports nothing) and borrows the API's types.
  web: { may: ['src/agent/event-kinds.ts'], mayTypes: ['agent'] },
  // The wiring: the one place that pairs the emulator with the management side.
  cli: { may: ['*'] },
};

export default tseslint.config(
  {
    ignores: ['dist/**', 'node_modules/**', '.artifacts/**', 'bench/*.bundle.mjs'],
  },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { layering },
    rules: { 'layering/imports': ['error', { layers: LAYERS }] },
  },
);
