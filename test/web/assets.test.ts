import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HOST_EVENT_KINDS } from '../../src/agent/event-kinds.js';
import { DashboardNotBuiltError, findDashboardDir } from '../../src/web/assets.js';
import { labAgent, type LabAgent } from '../agent/support.js';
import { tmpDir } from '../support/tmp.js';

/**
 * How the agent serves the built dashboard (dist/web): the page under a
 * strict CSP, one bundled module, its source map, ETags.
 */
describe('the dashboard files', () => {
  const stateDir = tmpDir('mdevkit-web-assets-');
  let la: LabAgent;
  before(async () => {
    la = await labAgent(stateDir);
  });
  after(() => la.agent.close());
  const get = (url: string, headers: Record<string, string> = {}) =>
    la.agent.app.inject({ url, headers });

  test('the page, under a CSP that allows only its own script, style and API', async () => {
    const r = await get('/');
    assert.equal(r.statusCode, 200);
    assert.match(String(r.headers['content-type']), /^text\/html/);
    const csp = String(r.headers['content-security-policy']);
    for (const directive of [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "connect-src 'self'",
      "frame-ancestors 'none'",
    ]) {
      assert.ok(csp.includes(directive), `${directive} in ${csp}`);
    }
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match(r.body, /<script type="module" src="\/app.js"><\/script>/);
    // Nothing inline that the CSP would have to allow.
    assert.doesNotMatch(r.body, /<script>|<style>| style=| on[a-z]+=/);
  });

  test("app.js is one module: the dashboard and the server's event kinds, nothing to fetch", async () => {
    const r = await get('/app.js');
    assert.equal(r.statusCode, 200);
    assert.match(String(r.headers['content-type']), /^text\/javascript/);
    // Bundled: no import of another file is left for the browser to fetch.
    assert.doesNotMatch(r.body, /^\s*import\s|\bimport\(/m);
    for (const kind of HOST_EVENT_KINDS) assert.ok(r.body.includes(`"${kind}"`), kind);
    const map = JSON.parse((await get('/app.js.map')).body) as { sources: string[] };
    assert.ok(
      map.sources.some((s) => s.endsWith('src/web/dashboard/main.ts')),
      map.sources.join(),
    );
  });

  test('revalidated by ETag', async () => {
    const first = await get('/app.css');
    const etag = String(first.headers.etag);
    assert.equal((await get('/app.css', { 'if-none-match': etag })).statusCode, 304);
  });

  test('a checkout without a build says how to make one', () => {
    const bare = tmpDir('mdevkit-web-bare-');
    fs.mkdirSync(nodePath.join(bare, 'src', 'web'), { recursive: true });
    assert.throws(
      () => findDashboardDir(nodePath.join(bare, 'src', 'web')),
      (err: unknown) => err instanceof DashboardNotBuiltError && /npm run build/.test(err.message),
    );
  });
});
