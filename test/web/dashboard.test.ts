import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { startAgent, type RunningAgent } from '../agent/running.js';
import { hasChromium, requires } from '../support/capabilities.js';
import { tmpDir } from '../support/tmp.js';

/**
 * The dashboard in a real browser (Debian's chromium driven by
 * playwright-core) against a running `mdevkit agent` on the default lab.
 * Screenshots go to .artifacts/web/ (kept by CI as test artifacts).
 */
const ARTIFACTS = new URL('../../.artifacts/web/', import.meta.url).pathname;
const M60_GPU = '0000:85:00.0';

// playwright refuses --user-data-dir for launch(): it gives every launch a
// fresh profile directory of its own, which is what the flag was for.
async function launch(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A signed-in dashboard, live. `problems` collects uncaught errors and
 * console errors — among them the browser's reports of anything the CSP
 * refused — and `requests` every request the page makes (method and path).
 */
async function openDashboard(
  browser: Browser,
  url: string,
  options: Parameters<Browser['newPage']>[0] = { viewport: { width: 1280, height: 900 } },
): Promise<{ page: Page; problems: string[]; requests: string[] }> {
  const page = await browser.newPage(options);
  const problems: string[] = [];
  const requests: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${r.status()} ${r.request().method()} ${r.url()}`);
  });
  page.on('request', (r) => {
    const u = new URL(r.url());
    requests.push(`${r.method()} ${u.pathname}${u.search}`);
  });
  await page.goto(url);
  await page.waitForSelector('#live.on');
  return { page, problems, requests };
}

const used = (page: Page, parent: string, type: string) =>
  page.getAttribute(`[data-parent="${parent}"] [data-type="${type}"] .counts`, 'data-used');
const available = (page: Page, parent: string, type: string) =>
  page.getAttribute(`[data-parent="${parent}"] [data-type="${type}"] .counts`, 'data-available');

describe('the dashboard in headless Chromium', () => {
  const stateDir = tmpDir('mdevkit-web-');
  let agent: RunningAgent | undefined;
  let browser: Browser | undefined;
  let signedIn = '';

  before(async () => {
    if (!hasChromium) return;
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    agent = await startAgent(['--listen', '127.0.0.1:0', '--state-dir', stateDir]);
    signedIn = /^dashboard, signed in: (\S+)$/m.exec(agent.stdout())![1]!;
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await agent?.stop();
  });

  test('create a vGPU and watch the capacity change; remove it again', async (t) => {
    if (!requires(t, { chromium: hasChromium }, 'drives the dashboard in a browser')) return;
    const { page, problems } = await openDashboard(browser!, signedIn);
    assert.equal(await used(page, M60_GPU, 'nvidia-11'), '0');
    assert.equal(await available(page, M60_GPU, 'nvidia-12'), '16');
    await page.click(`[data-parent="${M60_GPU}"] [data-type="nvidia-11"] button`);
    // The event stream (or the action's own reload) redraws the card.
    await page.waitForSelector(
      `[data-parent="${M60_GPU}"] [data-type="nvidia-11"] .counts[data-used="1"]`,
    );
    // One GRID profile per GPU: the other types of this GPU have nothing left.
    assert.equal(await available(page, M60_GPU, 'nvidia-12'), '0');
    assert.equal(await available(page, '0000:86:00.0', 'nvidia-12'), '16');
    const row = page.locator('.device', { hasText: 'nvidia-11' });
    await row.waitFor();
    assert.match(await row.innerText(), /active/);
    await page.screenshot({ path: nodePath.join(ARTIFACTS, 'vgpu-created.png'), fullPage: true });
    await row.locator('button', { hasText: 'remove' }).click();
    await page.waitForSelector(
      `[data-parent="${M60_GPU}"] [data-type="nvidia-11"] .counts[data-used="0"]`,
    );
    assert.equal(await available(page, M60_GPU, 'nvidia-12'), '16');
    assert.deepEqual(problems, []);
    await page.close();
  });

  /** A write from another client (not the page). */
  async function apiWrite(method: string, path: string, body: unknown): Promise<Response> {
    const token = fs.readFileSync(nodePath.join(stateDir, 'agent-token'), 'utf8').trim();
    return fetch(`${agent!.url}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  test('changes made elsewhere arrive live (another client, the event stream)', async (t) => {
    if (!requires(t, { chromium: hasChromium }, 'drives the dashboard in a browser')) return;
    const page = await browser!.newPage();
    await page.goto(signedIn);
    await page.waitForSelector('#live.on');
    const token = fs.readFileSync(nodePath.join(stateDir, 'agent-token'), 'utf8').trim();
    const r = await fetch(`${agent!.url}/api/v1/devices`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ parent: 'mdpy', type: 'mdpy-hd', activate: true }),
    });
    assert.equal(r.status, 201);
    const { uuid } = (await r.json()) as { uuid: string };
    await page.waitForSelector(`.device[data-uuid="${uuid}"]`);
    await page.waitForSelector('#events li:has-text("device-created")');
    await page.close();
  });

  test('assign an AP queue and watch the grid change', async (t) => {
    if (!requires(t, { chromium: hasChromium }, 'drives the dashboard in a browser')) return;
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(signedIn);
    await page.waitForSelector('#live.on');
    // A matrix device, made from the parent's card like any other.
    await page.click('[data-parent="matrix"] [data-type="vfio_ap-passthrough"] button');
    await page.waitForSelector('#ap-section:not([hidden]) select.ap-device');
    const uuid = await page.inputValue('select.ap-device');
    const cell = 'td[data-queue="05.0047"]';
    assert.equal(await page.getAttribute(cell, 'data-owner'), 'free');
    assert.equal(await page.getAttribute('td[data-queue="03.0004"]', 'data-owner'), 'host');
    await page.selectOption('select.ap-adapter', '5');
    await page.selectOption('select.ap-domain', String(0x47));
    await page.click('button.ap-assign');
    await page.waitForSelector(`${cell}[data-owner="${uuid}"]`);
    await page.waitForSelector('#events li:has-text("matrix-changed")');
    await page.screenshot({ path: nodePath.join(ARTIFACTS, 'ap-assigned.png'), fullPage: true });
    // A queue of the host cannot be handed to a guest: the refusal is shown.
    await page.selectOption('select.ap-adapter', '3');
    await page.selectOption('select.ap-domain', '4');
    await page.click('button.ap-assign');
    await page.waitForSelector('#toast.error');
    assert.match(await page.innerText('#toast'), /EADDRNOTAVAIL/);
    assert.equal(await page.getAttribute('td[data-queue="03.0004"]', 'data-owner'), 'host');
    await page.close();
  });

  test('aggregation: raise a SIOV device to four queues and watch the capacity drop', async (t) => {
    if (!requires(t, { chromium: hasChromium }, 'drives the dashboard in a browser')) return;
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(signedIn);
    await page.waitForSelector('#live.on');
    const siov = '0000:6a:01.0';
    const free = Number(await available(page, siov, 'idxd-1wq'));
    await page.click(`[data-parent="${siov}"] [data-type="idxd-1wq"] button`);
    await page.waitForSelector(
      `[data-parent="${siov}"] [data-type="idxd-1wq"] .counts[data-available="${free - 1}"]`,
    );
    const row = page.locator('.device', { hasText: 'idxd-1wq' });
    const input = row.locator('input.agg-value');
    await input.waitFor();
    // Drawn with the row: the listing carries the device's aggregation.
    assert.equal(await input.inputValue(), '1');
    assert.match(await row.locator('.aggregation').innerText(), /\/ \d+/);
    await input.fill('4');
    await row.locator('.aggregation button').click();
    await page.waitForSelector(
      `[data-parent="${siov}"] [data-type="idxd-1wq"] .counts[data-available="${free - 4}"]`,
    );
    await page.close();
  });

  test('readable on a phone-sized screen (375 px)', async (t) => {
    if (!requires(t, { chromium: hasChromium }, 'drives the dashboard in a browser')) return;
    const context = await browser!.newContext({
      viewport: { width: 375, height: 812 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    const page = await context.newPage();
    await page.goto(signedIn);
    await page.waitForSelector('#live.on');
    await page.waitForSelector('.device');
    const width = Number(await page.evaluate('document.documentElement.scrollWidth'));
    assert.ok(width <= 375, `the page is ${width} px wide on a 375 px screen`);
    // Device rows stack: the actions are below the UUID, not beside it.
    const box = await page.locator('.device').first().boundingBox();
    assert.ok(box !== null && box.width <= 375);
    await page.screenshot({ path: nodePath.join(ARTIFACTS, 'phone-375.png'), fullPage: true });
    await context.close();
  });

  test('a redraw asks for the lists, never once per device', async (t) => {
    if (!requires(t, { chromium: hasChromium }, 'drives the dashboard in a browser')) return;
    const siov = '0000:6a:01.0';
    const made: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await apiWrite('POST', '/devices', {
        parent: siov,
        type: 'idxd-2wq',
        activate: true,
      });
      assert.equal(r.status, 201);
      made.push(((await r.json()) as { uuid: string }).uuid);
    }
    const raised = made[1]!;
    const put = await apiWrite('PUT', `/devices/${raised}/aggregation`, { value: 2 });
    assert.equal(put.status, 200);

    const { page, problems, requests } = await openDashboard(browser!, signedIn);
    const aggregationOf = (uuid: string) =>
      page.inputValue(`.device[data-uuid="${uuid}"] input.agg-value`);
    for (const uuid of made) assert.equal(await aggregationOf(uuid), uuid === raised ? '2' : '1');
    const perDevice = (list: string[]) =>
      list.filter((r) => /\/devices\/[0-9a-f]{8}-[0-9a-f-]{27}/.test(r));
    assert.deepEqual(perDevice(requests), [], 'the first drawing');

    // A change elsewhere: the event stream makes the page reload and redraw.
    requests.length = 0;
    const r = await apiWrite('POST', '/devices', {
      parent: 'mdpy',
      type: 'mdpy-hd',
      activate: true,
    });
    assert.equal(r.status, 201);
    const { uuid } = (await r.json()) as { uuid: string };
    await page.waitForSelector(`.device[data-uuid="${uuid}"]`);
    await page.waitForTimeout(500); // room for any request the redraw would make
    const lists = new Set([
      'GET /api/v1/parents',
      'GET /api/v1/devices?limit=500',
      'GET /api/v1/ap/matrix',
      'GET /api/v1/vf-vgpus',
      // the desired-state view: three lists, whatever the number of devices
      'GET /api/v1/desired/status',
      'GET /api/v1/desired/capacity',
      'GET /api/v1/owners',
    ]);
    assert.deepEqual(
      requests.filter((q) => !lists.has(q)),
      [],
      'a redraw asks for the lists only',
    );
    assert.ok(requests.includes('GET /api/v1/devices?limit=500'), 'the page did reload');
    // Still drawn from the listing after the redraw.
    for (const uuid of made) assert.equal(await aggregationOf(uuid), uuid === raised ? '2' : '1');
    await page.screenshot({ path: nodePath.join(ARTIFACTS, 'aggregation.png'), fullPage: true });
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('the event log shows definitions too (every kind the server sends)', async (t) => {
    if (!requires(t, { chromium: hasChromium }, 'drives the dashboard in a browser')) return;
    const { page, problems } = await openDashboard(browser!, signedIn);
    const r = await apiWrite('POST', '/devices', { parent: 'mtty', type: 'mtty-1' });
    assert.equal(r.status, 201);
    const { uuid } = (await r.json()) as { uuid: string };
    await page.waitForSelector(`#events li:has-text("device-defined mtty ${uuid}")`);
    await page.waitForSelector(`.device[data-uuid="${uuid}"] .badge.defined`);
    assert.deepEqual(problems, []);
    await page.close();
  });
});
