import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { startAgent, type RunningAgent } from '../agent/running.js';
import { hasChromium, requires } from '../support/capabilities.js';
import { tmpDir } from '../support/tmp.js';

/**
 * The dashboard's desired-state view in headless Chromium against a running
 * `mdevkit agent` on the default lab: desired next to actual, capacity per
 * type with the vendors' reasons, owners on device rows, and a removal of
 * another owner's device that asks first.
 */
const ARTIFACTS = new URL('../../.artifacts/web/', import.meta.url).pathname;

const YAML = `version: 1
configs:
  default:
    entries:
      - parents: "0000:85:00.0"
        devices: [{ type: nvidia-16, count: 2 }]
      - parents: mtty
        devices: [{ type: mtty-1, count: 30 }]
`;

describe('the desired-state view in headless Chromium', () => {
  const stateDir = tmpDir('mdevkit-web-desired-');
  let agent: RunningAgent | undefined;
  let browser: Browser | undefined;
  let signedIn = '';

  before(async () => {
    if (!hasChromium) return;
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    agent = await startAgent(['--listen', '127.0.0.1:0', '--state-dir', stateDir]);
    signedIn = /^dashboard, signed in: (\S+)$/m.exec(agent.stdout())![1]!;
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
  });
  after(async () => {
    await browser?.close();
    await agent?.stop();
  });

  test('desired next to actual, capacity per type, owners; removing a configuration device asks', async (t) => {
    if (!requires(t, { chromium: hasChromium }, 'drives the dashboard in a browser')) return;
    const token = fs.readFileSync(nodePath.join(stateDir, 'agent-token'), 'utf8').trim();
    const res = await fetch(`${agent!.url}/api/v1/desired/apply`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ yaml: YAML }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(signedIn);
    await page.waitForSelector('#live.on');
    await page.waitForSelector('#desired-section:not([hidden])');
    const rows = await page.locator('#desired tr[data-config]').allInnerTexts();
    assert.deepEqual(
      rows.map((r) => r.split('\t').map((c) => c.trim())),
      [
        ['default', '0000:85:00.0', 'nvidia-16', '2', '2'],
        ['default', 'mtty', 'mtty-1', '24', '24'],
      ],
    );
    assert.match(await page.locator('#desired-blocked').innerText(), /mtty-1: 24 of 30 fit/);
    const n18 = await page.locator('#capacity tr[data-type="nvidia-18"]').innerText();
    assert.match(n18, /0000:85:00\.0: 0 — 0000:85:00\.0 runs nvidia-16; nvidia-18 needs a GPU/);
    assert.match(n18, /0000:86:00\.0: 1/);
    const row = page.locator('.device', { hasText: 'nvidia-16' }).first();
    assert.equal(await row.locator('.badge.owner').innerText(), 'config:default');
    await page.screenshot({ path: nodePath.join(ARTIFACTS, 'desired-state.png'), fullPage: true });

    // The configuration's device: the agent refuses, the page asks; "no" keeps it.
    const uuid = (await row.getAttribute('data-uuid'))!;
    const asked: string[] = [];
    page.once('dialog', (d) => {
      asked.push(d.message());
      void d.dismiss();
    });
    await row.locator('button', { hasText: 'remove' }).click();
    await page.waitForSelector('#toast.error');
    assert.match(asked[0]!, /belongs to config:default/);
    assert.equal(await page.locator(`.device[data-uuid="${uuid}"]`).count(), 1);
    // "Yes" removes it, and the view shows the configuration is one short.
    page.once('dialog', (d) => void d.accept());
    await row.locator('button', { hasText: 'remove' }).click();
    await page.waitForSelector(`.device[data-uuid="${uuid}"]`, { state: 'detached' });
    await page.waitForSelector('#desired tr.differs:has-text("nvidia-16")');
    assert.deepEqual(problems, []);
    await page.close();
  });
});
