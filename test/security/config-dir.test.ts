import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigDirWatcher } from '../../src/agent/events.js';
import type { StampedEvent } from '../../src/agent/hub.js';
import { labWith, U1, U2, U3 } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { startAgent } from '../agent/running.js';
import { AUTH, labAgent, type LabAgent } from '../agent/support.js';

const json = (body: string): any => JSON.parse(body); // eslint-disable-line @typescript-eslint/no-explicit-any

const U4 = '44444444-4444-4444-8444-444444444444';
const U5 = '55555555-5555-4555-8555-555555555555';
const U6 = '66666666-6666-4666-8666-666666666666';
const SIOV = '0000:6a:01.0';
/** What a file outside the config dir holds; it must never reach a client. */
const SECRET = 'root:$y$j9T$not-for-your-eyes:19000:0:99999:7:::';

/**
 * Broken files in the config dir, as an unlucky operator or a crash leaves
 * them: empty, not JSON, not a definition, a symlink loop, a symlink to a
 * secret outside, a parent that is a symlink loop.
 */
function plantBrokenFiles(configDir: string, outside: string): string[] {
  const mdpy = nodePath.join(configDir, 'mdpy');
  fs.mkdirSync(mdpy, { recursive: true });
  fs.writeFileSync(nodePath.join(mdpy, U2), '');
  fs.writeFileSync(nodePath.join(mdpy, U3), '{"mdev_type": "mdpy-hd", "start": ');
  fs.writeFileSync(nodePath.join(mdpy, U4), '[1, 2, 3]');
  fs.symlinkSync(U5, nodePath.join(mdpy, U5)); // points at itself: ELOOP
  fs.writeFileSync(nodePath.join(outside, 'shadow'), `${SECRET}\n`);
  fs.symlinkSync(nodePath.join(outside, 'shadow'), nodePath.join(mdpy, U6));
  fs.symlinkSync('loop', nodePath.join(configDir, 'loop')); // a parent that loops
  // Every link is reported, the loop too: links in the config dir are never followed.
  return [U2, U3, U4, U5, U6];
}

describe('one bad definition does not blank the dashboard', () => {
  const stateDir = tmpDir('mdevkit-sec-baddef-');
  const outside = tmpDir('mdevkit-sec-outside-');
  let la: LabAgent;
  const events: StampedEvent[] = [];
  const get = (url: string) => la.agent.app.inject({ url, headers: AUTH });

  before(async () => {
    la = await labAgent(stateDir, labWith([{ driver: 'mdpy' }, { driver: 'siov' }]));
    la.agent.context.hub.subscribe((e) => events.push(e));
    for (const payload of [
      { uuid: U1, parent: 'mdpy', type: 'mdpy-hd', activate: true },
      { uuid: U5.replace(/5/g, '7'), parent: SIOV, type: 'idxd-1wq', activate: true },
    ]) {
      const r = await la.agent.app.inject({
        method: 'POST',
        url: '/api/v1/devices',
        headers: AUTH,
        payload,
      });
      assert.equal(r.statusCode, 201, r.body);
    }
    plantBrokenFiles(la.env.configDir, outside);
    la.agent.context.view.invalidate();
  });
  after(() => la.agent.close());

  test('the listing answers 200 with the good devices, and names the skipped files without their contents', async () => {
    const r = await get('/api/v1/devices');
    assert.equal(r.statusCode, 200, r.body);
    const body = json(r.body);
    assert.ok(body.devices.some((d: { uuid: string }) => d.uuid === U1));
    const skipped = body.skipped as { parent: string; uuid: string; reason: string }[];
    assert.deepEqual(
      skipped.map((s) => s.uuid).sort(),
      [U2, U3, U4, U5, U6].sort(),
      JSON.stringify(skipped),
    );
    for (const s of skipped) {
      assert.equal(s.parent, 'mdpy');
      assert.equal(typeof s.reason, 'string');
    }
    assert.ok(!r.body.includes('not-for-your-eyes'), 'the secret is not quoted');
    assert.ok(!r.body.includes('"start": '), 'broken contents are not quoted');
  });

  test('per-device reads, aggregation and /metrics answer 200; the metric counts the skipped files', async () => {
    assert.equal((await get(`/api/v1/devices/${U1}`)).statusCode, 200);
    const agg = U5.replace(/5/g, '7');
    assert.equal((await get(`/api/v1/devices/${agg}/aggregation`)).statusCode, 200);
    const put = await la.agent.app.inject({
      method: 'PUT',
      url: `/api/v1/devices/${agg}/aggregation`,
      headers: AUTH,
      payload: { value: 2 },
    });
    assert.equal(put.statusCode, 200, put.body);
    const m = await get('/metrics');
    assert.equal(m.statusCode, 200, m.body);
    assert.match(m.body, /^mdevkit_definitions_skipped 5$/m);
    assert.ok(!m.body.includes('not-for-your-eyes'));
  });

  test('each skipped file is reported once as an event', () => {
    const skippedEvents = events.filter((e) => e.event.kind === 'definition-skipped');
    assert.deepEqual(
      skippedEvents.map((e) => ('uuid' in e.event ? e.event.uuid : '')).sort(),
      [U2, U3, U4, U5, U6].sort(),
    );
  });

  test('deleting a good device works; deleting a broken definition removes the file', async () => {
    const del = await la.agent.app.inject({
      method: 'DELETE',
      url: `/api/v1/devices/${U1}`,
      headers: AUTH,
    });
    assert.equal(del.statusCode, 204, del.body);
    const bad = await la.agent.app.inject({
      method: 'DELETE',
      url: `/api/v1/devices/${U2}/definition`,
      headers: AUTH,
    });
    assert.equal(bad.statusCode, 204, bad.body);
    assert.equal(fs.existsSync(nodePath.join(la.env.configDir, 'mdpy', U2)), false);
    const list = json((await get('/api/v1/devices')).body);
    assert.equal(list.skipped.length, 4);
    assert.match((await get('/metrics')).body, /^mdevkit_definitions_skipped 4$/m);
  });
});

describe('a symlink loop in the config dir neither crashes nor stops the agent', () => {
  test('the watcher scans and rescans past ELOOP', () => {
    const dir = tmpDir('mdevkit-sec-loop-');
    plantBrokenFiles(dir, tmpDir('mdevkit-sec-outside-'));
    const w = new ConfigDirWatcher(dir, 0);
    const seen: string[] = [];
    w.subscribe((e) => seen.push(e.kind));
    w.rescan();
    fs.writeFileSync(
      nodePath.join(dir, 'mdpy', U1),
      '{"mdev_type":"mdpy-hd","start":"manual","attrs":[]}',
    );
    w.rescan();
    w.close();
    assert.deepEqual(seen, ['device-defined']);
  });

  test('the agent starts with loops and broken files in its lab config dir, and lists the rest', async () => {
    const state = tmpDir('mdevkit-sec-loopstate-');
    const config = nodePath.join(state, 'etc/mdevctl.d');
    fs.mkdirSync(config, { recursive: true });
    plantBrokenFiles(config, tmpDir('mdevkit-sec-outside-'));
    fs.writeFileSync(
      nodePath.join(config, 'mdpy', U1),
      '{"mdev_type":"mdpy-hd","start":"auto","attrs":[]}',
    );
    const a = await startAgent(['--listen', '127.0.0.1:0', '--state-dir', state]);
    try {
      const r = await fetch(`${a.url}/api/v1/devices`);
      assert.equal(r.status, 200);
      const body = (await r.json()) as {
        devices: { uuid: string; active: boolean }[];
        skipped: unknown[];
      };
      assert.deepEqual(
        body.devices.map((d) => [d.uuid, d.active]),
        [[U1, true]],
        'the good start=auto definition started at boot, beside the broken ones',
      );
      assert.equal(body.skipped.length, 5);
      assert.equal((await fetch(`${a.url}/metrics`)).status, 200);
    } finally {
      assert.equal(await a.stop(), 0);
    }
  });
});
