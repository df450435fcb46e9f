// Lint: typescript-eslint's recommended rules plus the layering rule of
// docs/ARCHITECTURE.md. Each layer lists the layers it must never import, so
// "the management side never reaches into the emulator" is checked, not hoped.
import tseslint from 'typescript-eslint';

const forbid = (...layers) => ({
  'no-restricted-imports': [
    'error',
    {
      patterns: layers.map((l) => ({
        group: [`**/${l}/**`, `**/${l}`],
        message: `this layer must not import src/${l} (see docs/ARCHITECTURE.md)`,
      })),
    },
  ],
});

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      '.artifacts/**',
      'src/web/static/**',
      'bench/*.bundle.mjs',
    ],
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
    files: ['src/common/**/*.ts'],
    rules: forbid('sim', 'host', 'ctl', 'libvirt', 'agent', 'cli', 'port', 'web'),
  },
  {
    files: ['src/port/**/*.ts'],
    rules: forbid('sim', 'host', 'ctl', 'libvirt', 'agent', 'cli', 'web'),
  },
  { files: ['src/sim/**/*.ts'], rules: forbid('host', 'ctl', 'libvirt', 'agent', 'cli', 'web') },
  { files: ['src/host/**/*.ts'], rules: forbid('sim', 'ctl', 'libvirt', 'agent', 'cli', 'web') },
  { files: ['src/ctl/**/*.ts'], rules: forbid('sim', 'libvirt', 'agent', 'cli', 'web') },
  { files: ['src/libvirt/**/*.ts'], rules: forbid('sim', 'agent', 'cli', 'web') },
  { files: ['src/agent/**/*.ts'], rules: forbid('sim', 'cli') },
);
