import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The dashboard as the agent serves it: the built folder dist/web — one
 * HTML page and one stylesheet (copied from src/web/static) and one browser
 * module, app.js, that scripts/build.mjs bundles from the TypeScript under
 * src/web/dashboard (with its source map). The agent reads the files once
 * at start and serves them from memory with an ETag.
 */
export interface WebAsset {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Thrown when the checkout has no built dashboard (dist/web). */
export class DashboardNotBuiltError extends Error {
  override readonly name = 'DashboardNotBuiltError';
}

/**
 * Where the built dashboard is: `dist/web` of the checkout (or installed
 * package) this module runs from — found by walking up from src/web when
 * run from the sources (tsx), from dist/ or dist/chunks/ when run from the
 * CLI bundle. Both layouts meet at `<package>/dist/web`.
 */
export function findDashboardDir(start = nodePath.dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = start, i = 0; i < 6; i++, dir = nodePath.dirname(dir)) {
    const candidate = nodePath.join(dir, 'dist', 'web');
    if (fs.existsSync(nodePath.join(candidate, 'index.html'))) return candidate;
  }
  throw new DashboardNotBuiltError(
    `the dashboard is not built (no dist/web above ${start}): run \`npm run build\``,
  );
}

/** URL path ("/", "/app.js") to asset. */
export function loadDashboardAssets(dir = findDashboardDir()): Map<string, WebAsset> {
  const out = new Map<string, WebAsset>();
  for (const name of fs.readdirSync(dir).sort()) {
    const type = TYPES[nodePath.extname(name)];
    if (type === undefined) continue;
    const body = fs.readFileSync(nodePath.join(dir, name));
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"`;
    const asset = { body, contentType: type, etag };
    out.set(`/${name}`, asset);
    if (name === 'index.html') out.set('/', asset);
  }
  return out;
}
