import { loadDashboardAssets } from '../../web/assets.js';
import type { ApiApp } from '../server.js';

/** The dashboard: static files from memory, revalidated by ETag. */
export function registerWebRoutes(app: ApiApp): void {
  const assets = loadDashboardAssets();
  for (const [path, asset] of assets) {
    app.get(path, { schema: { hide: true } }, async (req, reply) => {
      reply
        .header('etag', asset.etag)
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer');
      if (path === '/' || path.endsWith('.html')) {
        reply
          .header(
            'content-security-policy',
            "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
          )
          .header('x-frame-options', 'DENY');
      }
      if (req.headers['if-none-match'] === asset.etag) return reply.code(304).send();
      return reply.type(asset.contentType).send(asset.body);
    });
  }
}
