import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import ts from 'typescript';

/**
 * The module graph of a checkout's src/, as TypeScript sees it: every file
 * and every way it names another — static imports and re-exports (type-only
 * or not), import(), require() (also through createRequire), `import x =
 * require()`, and `import('...')` types — resolved with the nearest
 * tsconfig (relative paths, `paths` aliases, package.json `imports`).
 *
 * This is the transitive half of the layering check: eslint's layering
 * rule looks at one file's imports; this follows chains, so a management
 * module that reaches src/sim through src/common, through an alias or
 * through a folder nobody has listed yet is caught too.
 */

export type EdgeKind =
  | 'import'
  | 'import type'
  | 'export from'
  | 'export type from'
  | 'import()'
  | 'require()'
  | 'import = require()'
  | 'import() type';

export interface Edge {
  readonly specifier: string;
  readonly kind: EdgeKind;
  /** The file it names; undefined for packages and Node's built-ins. */
  readonly to: string | undefined;
}

export interface ModuleInfo {
  readonly file: string;
  readonly edges: readonly Edge[];
  /** import() or require() of a computed name: nobody can tell where it leads. */
  readonly computed: readonly string[];
}

const isTypeKind = (k: EdgeKind): boolean =>
  k === 'import type' || k === 'export type from' || k === 'import() type';

function isRequireCallee(e: ts.Expression): boolean {
  if (ts.isIdentifier(e)) return e.text === 'require';
  if (!ts.isCallExpression(e)) return false;
  const inner = e.expression;
  return (
    (ts.isIdentifier(inner) && inner.text === 'createRequire') ||
    (ts.isPropertyAccessExpression(inner) && inner.name.text === 'createRequire')
  );
}

const literalText = (e: ts.Node | undefined): string | undefined =>
  e !== undefined && (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e))
    ? e.text
    : undefined;

/** The specifiers a source text names, with how. */
export function specifiersOf(
  fileName: string,
  text: string,
): { specifiers: { specifier: string; kind: EdgeKind }[]; computed: string[] } {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const specifiers: { specifier: string; kind: EdgeKind }[] = [];
  const computed: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const s = literalText(node.moduleSpecifier);
      // Under verbatimModuleSyntax only `import type` is erased; an import
      // of inline `type` names stays as a (side-effect) import.
      if (s !== undefined)
        specifiers.push({
          specifier: s,
          kind: node.importClause?.isTypeOnly ? 'import type' : 'import',
        });
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier !== undefined) {
      const s = literalText(node.moduleSpecifier);
      if (s !== undefined)
        specifiers.push({
          specifier: s,
          kind: node.isTypeOnly ? 'export type from' : 'export from',
        });
    } else if (
      ts.isImportEqualsDeclaration(node) &&
      ts.isExternalModuleReference(node.moduleReference)
    ) {
      const s = literalText(node.moduleReference.expression);
      if (s !== undefined) specifiers.push({ specifier: s, kind: 'import = require()' });
    } else if (ts.isImportTypeNode(node)) {
      const arg = node.argument;
      const s = ts.isLiteralTypeNode(arg) ? literalText(arg.literal) : undefined;
      if (s !== undefined) specifiers.push({ specifier: s, kind: 'import() type' });
    } else if (ts.isCallExpression(node)) {
      const dynamic = node.expression.kind === ts.SyntaxKind.ImportKeyword;
      if (dynamic || isRequireCallee(node.expression)) {
        const s = literalText(node.arguments[0]);
        if (s !== undefined)
          specifiers.push({ specifier: s, kind: dynamic ? 'import()' : 'require()' });
        else {
          const { line } = sf.getLineAndCharacterOfPosition(node.getStart(sf));
          computed.push(`${fileName}:${line + 1}: ${node.getText(sf).slice(0, 80)}`);
        }
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return { specifiers, computed };
}

/** Resolution as TypeScript does it for a file, with the tsconfig nearest to it. */
class Resolver {
  readonly #configs = new Map<
    string,
    { options: ts.CompilerOptions; cache: ts.ModuleResolutionCache }
  >();

  resolve(specifier: string, from: string): string | undefined {
    const configPath = ts.findConfigFile(nodePath.dirname(from), ts.sys.fileExists);
    let c = configPath === undefined ? undefined : this.#configs.get(configPath);
    if (configPath !== undefined && c === undefined) {
      const read = ts.readConfigFile(configPath, ts.sys.readFile);
      const options = ts.parseJsonConfigFileContent(
        read.config ?? {},
        ts.sys,
        nodePath.dirname(configPath),
      ).options;
      c = {
        options,
        cache: ts.createModuleResolutionCache(nodePath.dirname(configPath), (s) => s, options),
      };
      this.#configs.set(configPath, c);
    }
    if (c !== undefined) {
      const r = ts.resolveModuleName(specifier, from, c.options, ts.sys, c.cache).resolvedModule;
      if (r !== undefined)
        return r.isExternalLibraryImport ? undefined : nodePath.resolve(r.resolvedFileName);
    }
    // Unresolvable: a relative path still says where it points.
    if (specifier.startsWith('.')) return nodePath.resolve(nodePath.dirname(from), specifier);
    return undefined;
  }
}

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = nodePath.join(dir, e.name);
    if (e.isDirectory()) sourceFiles(p, out);
    else if (/\.(ts|mts|cts|js|mjs|cjs)$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Every module under `<root>/src` with its edges. */
export function moduleGraph(root: string): Map<string, ModuleInfo> {
  const resolver = new Resolver();
  const graph = new Map<string, ModuleInfo>();
  for (const file of sourceFiles(nodePath.join(root, 'src'))) {
    const { specifiers, computed } = specifiersOf(file, fs.readFileSync(file, 'utf8'));
    graph.set(file, {
      file,
      computed,
      edges: specifiers.map((s) => ({ ...s, to: resolver.resolve(s.specifier, file) })),
    });
  }
  return graph;
}

/** "host" for <root>/src/host/...; undefined outside src/. */
export function layerOf(root: string, file: string): string | undefined {
  const rel = nodePath.relative(root, file).split(nodePath.sep);
  return rel[0] === 'src' && rel.length > 2 ? rel[1] : undefined;
}

export interface Reach {
  /** The file the walk started from. */
  readonly entry: string;
  /** entry, ..., the file reached — each step with the edge that took it. */
  readonly chain: readonly { readonly file: string; readonly via?: Edge }[];
}

/**
 * The shortest chain from `entry` to a file `target` accepts, following
 * every edge (or only those that exist at run time), or undefined.
 */
export function findReach(
  graph: Map<string, ModuleInfo>,
  entry: string,
  target: (file: string) => boolean,
  { runtimeOnly = false } = {},
): Reach | undefined {
  const cameFrom = new Map<string, { file: string; via: Edge } | null>([[entry, null]]);
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (file !== entry && target(file)) {
      const chain: { file: string; via?: Edge }[] = [];
      for (let f: string | undefined = file; f !== undefined;) {
        const step = cameFrom.get(f);
        chain.unshift(step ? { file: f, via: step.via } : { file: f });
        f = step?.file;
      }
      return { entry, chain };
    }
    for (const edge of graph.get(file)?.edges ?? []) {
      if (edge.to === undefined || cameFrom.has(edge.to)) continue;
      if (runtimeOnly && isTypeKind(edge.kind)) continue;
      cameFrom.set(edge.to, { file, via: edge });
      queue.push(edge.to);
    }
  }
  return undefined;
}

/** The layers that pair the emulator with the management side: the emulator itself, and the wiring. */
export const NOT_MANAGEMENT = new Set(['sim', 'cli']);

/**
 * Every module outside src/sim and src/cli that reaches src/sim by any
 * path (a folder nobody has listed yet counts as management), and every
 * such module that names a module by a computed expression.
 */
export function managementReachingSim(root: string): { reaches: Reach[]; computed: string[] } {
  const graph = moduleGraph(root);
  const inSim = (f: string): boolean => layerOf(root, f) === 'sim';
  const reaches: Reach[] = [];
  const computed: string[] = [];
  for (const [file, info] of graph) {
    const layer = layerOf(root, file);
    if (layer === undefined || NOT_MANAGEMENT.has(layer)) continue;
    computed.push(...info.computed);
    const r = findReach(graph, file, inSim);
    if (r !== undefined) reaches.push(r);
  }
  return { reaches, computed };
}

/** "src/host/a.ts -(import)-> src/common/b.ts -(import())-> src/sim/lab.ts" */
export function describeReach(root: string, r: Reach): string {
  return r.chain
    .map((step) => {
      const rel = nodePath.relative(root, step.file);
      return step.via === undefined ? rel : `-(${step.via.kind} '${step.via.specifier}')-> ${rel}`;
    })
    .join(' ');
}
