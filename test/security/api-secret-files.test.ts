/**
 * Issue 12, item 7, at the API: a definition that is a link to a secret
 * outside the config dir (or a copy of one) must not put a byte of it into
 * any answer of the agent. Every operation of the OpenAPI document is sent
 * for each planted UUID — reads, writes, the node device XML, metrics —
 * and every answer, header and event is searched for the secret's markers.
 * (The CLI's side is test/security/host-config-files.test.ts.)
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StampedEvent } from '../../src/agent/hub.js';
import { labWith, uuidN } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { AUTH, labAgent, type LabAgent } from '../agent/support.js';
import { SECRET, assertNoSecret } from './host-support.js';
import { operationsOf } from './support.js';

const GOOD = uuidN(1);
/** What the config dir holds for parent mtty besides GOOD, each one running too. */
const PLANTED = {
  linkToShadow: uuidN(2),
  linkToSecretDefinition: uuidN(3),
  copiedShadow: uuidN(4),
  copiedJsonSecret: uuidN(5),
  truncatedSecret: uuidN(6),
} as const;

/** Writes that would leave nothing to probe for the next operation: sent last. */
const DESTRUCTIVE = new Set(['DELETE']);

describe('a definition linked or copied to a secret: no byte of it in any API answer', () => {
  const stateDir = tmpDir('mdevkit-sec-api-secret-');
  const outside = tmpDir('mdevkit-sec-api-secret-outside-');
  let la: LabAgent;
  const events: StampedEvent[] = [];

  before(async () => {
    la = await labAgent(stateDir, labWith([{ driver: 'mdpy' }, { driver: 'mtty' }]));
    la.agent.context.hub.subscribe((e) => events.push(e));
    const shadow = path.join(outside, 'shadow');
    fs.writeFileSync(shadow, `${SECRET}\n`, { mode: 0o600 });
    // A valid definition whose words are secret: a link to it must not be followed.
    const secretDefinition = path.join(outside, 'definition');
    fs.writeFileSync(
      secretDefinition,
      JSON.stringify({ mdev_type: 'mtty-1', start: 'manual', attrs: [{ zq9: SECRET }] }),
    );
    const mtty = path.join(la.env.configDir, 'mtty');
    fs.mkdirSync(mtty, { recursive: true });
    fs.writeFileSync(
      path.join(mtty, GOOD),
      JSON.stringify({ mdev_type: 'mtty-1', start: 'manual', attrs: [] }),
    );
    fs.symlinkSync(shadow, path.join(mtty, PLANTED.linkToShadow));
    fs.symlinkSync(secretDefinition, path.join(mtty, PLANTED.linkToSecretDefinition));
    fs.copyFileSync(shadow, path.join(mtty, PLANTED.copiedShadow));
    fs.writeFileSync(path.join(mtty, PLANTED.copiedJsonSecret), JSON.stringify({ zq9: SECRET }));
    fs.writeFileSync(
      path.join(mtty, PLANTED.truncatedSecret),
      `{"mdev_type": "zq9-S3CR3T", "start": "manual", "attrs": [{"j9T": "${SECRET}"`,
    );
    // A linked parent directory, holding a definition of secrets.
    fs.mkdirSync(path.join(outside, 'mdpy'));
    fs.writeFileSync(
      path.join(outside, 'mdpy', GOOD),
      JSON.stringify({ mdev_type: 'zq9', start: 'auto', attrs: [{ S3CR3T: 'j9T' }] }),
    );
    fs.symlinkSync(path.join(outside, 'mdpy'), path.join(la.env.configDir, 'mdpy'));
    // Every planted UUID also runs, so the routes that read an active device reach it.
    for (const u of [GOOD, ...Object.values(PLANTED)]) {
      la.lab.port.write('/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1/create', u);
    }
    la.agent.context.view.invalidate();
  });
  after(() => la.agent.close());

  it('every operation of the OpenAPI document, for every planted UUID', async (t) => {
    const doc = await la.agent.app.inject({ url: '/openapi.json', headers: AUTH });
    assert.equal(doc.statusCode, 200);
    const answered = new Map<string, number>();
    let requests = 0;
    for (const uuid of Object.values(PLANTED)) {
      const ops = operationsOf(JSON.parse(doc.body), { uuid, parent: 'mtty', type: 'mtty-1' })
        // The event stream never ends; its events are searched below.
        .filter((o) => o.template !== '/api/v1/events')
        .sort((a, b) => Number(DESTRUCTIVE.has(a.method)) - Number(DESTRUCTIVE.has(b.method)));
      assert.ok(ops.length >= 20, `${ops.length} operations`);
      for (const op of ops) {
        for (const query of ['', '?parent=mtty', '?parent=mdpy']) {
          const r = await la.agent.app.inject({
            method: op.method as 'GET',
            url: `${op.path}${query}`,
            headers: {
              ...AUTH,
              ...(op.body === undefined ? {} : { 'content-type': 'application/json' }),
            },
            ...(op.body === undefined ? {} : { payload: op.body }),
          });
          requests++;
          const what = `${op.method} ${op.path}${query} (${uuid})`;
          assert.ok(r.statusCode < 500, `${what}: ${r.statusCode} ${r.body}`);
          assertNoSecret(r.body, what);
          assertNoSecret(JSON.stringify(r.headers), `${what}, headers`);
          answered.set(String(r.statusCode), (answered.get(String(r.statusCode)) ?? 0) + 1);
        }
      }
    }
    t.diagnostic(
      `${requests} requests, by status: ${JSON.stringify(Object.fromEntries(answered))}`,
    );
  });

  it('the listing reports the planted files by name, the events and metrics quote none', async () => {
    // The sweep above removed some: plant a fresh link and look again.
    const again = uuidN(9);
    fs.symlinkSync(path.join(outside, 'shadow'), path.join(la.env.configDir, 'mtty', again));
    la.agent.context.view.invalidate();
    const list = await la.agent.app.inject({ url: '/api/v1/devices', headers: AUTH });
    assert.equal(list.statusCode, 200, list.body);
    assertNoSecret(list.body, 'the listing');
    const skipped = (JSON.parse(list.body) as { skipped: { uuid: string }[] }).skipped;
    assert.ok(
      skipped.some((s) => s.uuid === again),
      JSON.stringify(skipped),
    );
    const metrics = await la.agent.app.inject({ url: '/metrics', headers: AUTH });
    assertNoSecret(metrics.body, '/metrics');
    assert.ok(events.some((e) => e.event.kind === 'definition-skipped'));
    assertNoSecret(JSON.stringify(events), 'the events');
  });
});
