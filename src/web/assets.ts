import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The dashboard is static: one HTML page, one stylesheet, one browser
 * module (plain JavaScript, no framework, no build step), all in
 * src/web/static. The agent reads them once at start and serves them from
 * memory with an ETag.
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
  '.svg': 'image/svg+xml',
};

/**
 * Where the static files are: beside this module in the source tree
 * (src/web/static), or — from the bundle in dist/ or dist/chunks/ — in the
 * checkout's src/web/static, found by walking up.
 */
export function findStaticDir(start = nodePath.dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = start, i = 0; i < 6; i++, dir = nodePath.dirname(dir)) {
    for (const candidate of [
      nodePath.join(dir, 'static'),
      nodePath.join(dir, 'src', 'web', 'static'),
    ]) {
      if (fs.existsSync(nodePath.join(candidate, 'index.html'))) return candidate;
    }
  }
  throw new Error(`dashboard files (src/web/static) not found above ${start}`);
}

/** URL path ("/", "/app.js") to asset. */
export function loadDashboardAssets(dir = findStaticDir()): Map<string, WebAsset> {
  const out = new Map<string, WebAsset>();
  for (const name of fs.readdirSync(dir)) {
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
