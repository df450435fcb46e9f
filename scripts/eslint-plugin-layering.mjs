// The layering rule of docs/ARCHITECTURE.md as an eslint rule, `layering/imports`.
//
// Every way one module can name another is checked: import and export ...
// from (static, type-only or not), import(), require() and createRequire()(),
// `import x = require()`, and `import('...')` types. Specifiers are resolved
// as TypeScript resolves them (the nearest tsconfig: relative paths, `paths`
// aliases, package.json `imports`), so an alias cannot hide a layer. The
// layer of a file is its folder under src/ (src/host/x.ts is in `host`).
//
// Options: { layers: { <layer>: { may: [...], mayTypes: [...] } } }
//   may       layers (or files, "src/agent/event-kinds.ts") the layer may import
//   mayTypes  layers it may import types from (`import type`, `export type`)
//   "*"       anything
// A folder under src/ missing from the table counts as management: it may
// import anything but src/sim and src/cli (and is told to join the table).
// A dynamic import() or require() of a computed name cannot be checked and
// is refused in src/.
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';

const UNLISTED = { may: ['*'], mayNot: ['sim', 'cli'] };

/** Per tsconfig file: its compiler options and a resolution cache. */
const configs = new Map();

function compilerFor(file) {
  const configPath = ts.findConfigFile(path.dirname(file), ts.sys.fileExists);
  if (configPath === undefined) return undefined;
  let c = configs.get(configPath);
  if (c === undefined) {
    const read = ts.readConfigFile(configPath, ts.sys.readFile);
    const parsed = ts.parseJsonConfigFileContent(
      read.config ?? {},
      ts.sys,
      path.dirname(configPath),
    );
    const options = parsed.options;
    c = {
      options,
      cache: ts.createModuleResolutionCache(path.dirname(configPath), (s) => s, options),
    };
    configs.set(configPath, c);
  }
  return c;
}

/** The project root of a file: the nearest folder above it with a package.json. */
const roots = new Map();
function projectRoot(file) {
  const start = path.dirname(file);
  if (roots.has(start)) return roots.get(start);
  let root;
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) {
      root = dir;
      break;
    }
    if (path.dirname(dir) === dir) break;
  }
  roots.set(start, root);
  return root;
}

/**
 * The file `specifier` names from `from`, as TypeScript resolves it; an
 * unresolvable relative one by its path (it may be about to be written);
 * undefined for packages and Node's built-ins.
 */
export function resolveSpecifier(specifier, from) {
  const c = compilerFor(from);
  if (c !== undefined) {
    const r = ts.resolveModuleName(specifier, from, c.options, ts.sys, c.cache).resolvedModule;
    if (r !== undefined) return r.isExternalLibraryImport ? undefined : r.resolvedFileName;
  }
  if (specifier.startsWith('.') || specifier.startsWith('/')) {
    return path.resolve(path.dirname(from), specifier);
  }
  return undefined;
}

/** "host" for <root>/src/host/..., undefined outside src/ (tests, benchmarks, scripts). */
export function layerOf(file, root) {
  const rel = path.relative(root, file).split(path.sep);
  return rel[0] === 'src' && rel.length > 2 ? rel[1] : undefined;
}

const literal = (node) =>
  node?.type === 'Literal' && typeof node.value === 'string'
    ? node.value
    : node?.type === 'TemplateLiteral' && node.expressions.length === 0
      ? node.quasis[0].value.cooked
      : undefined;

/** require(x), createRequire(...)(x), module.createRequire(...)(x) */
function isRequireCall(node) {
  const callee = node.callee;
  if (callee.type === 'Identifier' && callee.name === 'require') return true;
  if (callee.type !== 'CallExpression') return false;
  const inner = callee.callee;
  return (
    (inner.type === 'Identifier' && inner.name === 'createRequire') ||
    (inner.type === 'MemberExpression' &&
      inner.property.type === 'Identifier' &&
      inner.property.name === 'createRequire')
  );
}

const importsRule = {
  meta: {
    type: 'problem',
    docs: {
      description: 'each folder under src/ imports only the layers docs/ARCHITECTURE.md allows',
    },
    schema: [
      {
        type: 'object',
        properties: { layers: { type: 'object' } },
        required: ['layers'],
        additionalProperties: false,
      },
    ],
    messages: {
      forbidden: '{{from}} must not import {{to}} ({{what}}; see docs/ARCHITECTURE.md, "Layers")',
      typesOnly:
        '{{from}} may import only types from {{to}}: write `import type` / `export type` ({{what}})',
      unlisted:
        'src/{{from}} is not in the layer table of eslint.config.js; as management it must not import {{to}} ({{what}})',
      computed:
        'a module named by a computed expression cannot be checked against the layers; name it with a string literal',
    },
  },
  create(context) {
    const file = context.filename;
    const root = projectRoot(file);
    if (root === undefined) return {};
    const from = layerOf(file, root);
    if (from === undefined) return {};
    const table = context.options[0].layers;
    const rules = table[from] ?? UNLISTED;
    const listed = table[from] !== undefined;

    const allows = (list, target, layer) =>
      (list ?? []).some((m) => m === '*' || m === layer || m === target);

    function check(node, specifier, typeOnly) {
      const resolved = resolveSpecifier(specifier, file);
      if (resolved === undefined) return;
      const to = layerOf(resolved, root);
      if (to === undefined || to === from) return;
      const target = path.relative(root, resolved).split(path.sep).join('/');
      const what = `"${specifier}" is ${target}`;
      const data = { from: `src/${from}`, to: `src/${to}`, what };
      if (!listed) {
        if (rules.mayNot.includes(to))
          context.report({ node, messageId: 'unlisted', data: { ...data, from } });
        return;
      }
      if (allows(rules.may, target, to)) return;
      if (allows(rules.mayTypes, target, to)) {
        if (!typeOnly) context.report({ node, messageId: 'typesOnly', data });
        return;
      }
      context.report({ node, messageId: 'forbidden', data });
    }

    function checkDynamic(node, arg) {
      const specifier = literal(arg);
      if (specifier !== undefined) check(node, specifier, false);
      else context.report({ node, messageId: 'computed' });
    }

    return {
      ImportDeclaration(node) {
        // `import { type A }` keeps the import under verbatimModuleSyntax:
        // only `import type` is erased.
        check(node.source, node.source.value, node.importKind === 'type');
      },
      ExportNamedDeclaration(node) {
        if (node.source) check(node.source, node.source.value, node.exportKind === 'type');
      },
      ExportAllDeclaration(node) {
        check(node.source, node.source.value, node.exportKind === 'type');
      },
      ImportExpression(node) {
        checkDynamic(node, node.source);
      },
      CallExpression(node) {
        if (isRequireCall(node)) checkDynamic(node, node.arguments[0]);
      },
      TSImportEqualsDeclaration(node) {
        if (node.moduleReference.type === 'TSExternalModuleReference') {
          const s = literal(node.moduleReference.expression);
          if (s !== undefined) check(node.moduleReference, s, node.importKind === 'type');
        }
      },
      TSImportType(node) {
        // import('../x.js').T — a type; typescript-eslint puts the specifier
        // in `argument` (a literal type) or, in newer versions, `source`.
        const arg = node.source ?? node.argument;
        const s = literal(arg?.type === 'TSLiteralType' ? arg.literal : arg);
        if (s !== undefined) check(node, s, true);
      },
    };
  },
};

export default {
  meta: { name: 'layering' },
  rules: { imports: importsRule },
};
