import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { startAgent, type RunningAgent } from '../agent/running.js';
import { FUSE_NEEDS, serveLab, type ServedLab } from '../fuse/served-lab.js';
import { assertValidXml, domainXml } from '../libvirt/support.js';
import { hasChromium, hasLibvirtSchemas, requires } from '../support/capabilities.js';
import { runMdevkit } from '../support/cli.js';
import { tmpDir } from '../support/tmp.js';

/**
 * Issue 16's "done": on the live lab a person enables VFs, puts four vGPUs
 * of one size on the L40S with one `mdevkit apply`, sees them in the dashboard (and changes them
 * there), gets the hostdev XML and QEMU arguments of one, and has them come
 * back after `lab reboot` — every step as a user takes it: bin/mdevkit,
 * a FUSE-served lab, `mdevkit agent --root`, Chromium.
 */

const ARTIFACTS = new URL('../../.artifacts/web/', import.meta.url).pathname;
const GPU = '0000:41:00.0';
const EXAMPLE = new URL('../../examples/vf-vgpus.yaml', import.meta.url).pathname;
const NEEDS = { ...FUSE_NEEDS, chromium: hasChromium };

describe('NVIDIA VF vGPUs on the lab, end to end', () => {
  const stateDir = tmpDir('mdevkit-vf-web-');
  let lab: ServedLab | undefined;
  let agent: RunningAgent | undefined;
  let browser: Browser | undefined;
  const run = (...args: string[]) => runMdevkit([...args, '--root', lab!.dir]);
  const active = (): string[] => {
    const r = run('vf', 'list', '--json');
    assert.equal(r.status, 0, r.stderr);
    const { vgpus } = JSON.parse(r.stdout) as { vgpus: { uuid: string; state: string }[] };
    return vgpus.filter((v) => v.state === 'active').map((v) => v.uuid);
  };

  before(async () => {
    if (!NEEDS.root || !NEEDS.fuse || !NEEDS.chromium) return;
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    lab = await serveLab();
  });
  after(async () => {
    await browser?.close();
    await agent?.stop();
    await lab?.close();
  });

  test('enable VFs, four vGPUs of one size, the dashboard, hostdev XML and QEMU args, a reboot', async (t) => {
    if (!requires(t, NEEDS, 'a FUSE-served lab, the agent on it and Chromium')) return;
    // 0. Before the VFs are enabled, the plan says what to do.
    const early = run('plan', '-f', EXAMPLE);
    assert.match(early.stdout, /VFs are not enabled on 0000:41:00\.0: run sriov-manage -e/);
    // 1. VFs: a machine action, here and at every boot.
    const on = runMdevkit(['lab', 'sriov-manage', '-e', 'ALL', '--boot', '--lab', lab!.dir]);
    assert.equal(on.status, 0, on.stderr);
    assert.equal(on.stdout, `Enabling VFs on ${GPU}\n`);
    // 2. Four vGPUs of 12 GB with one apply of a desired state; a size
    //    that does not fit is refused in words (by apply's plan and by vf create).
    // (the README's example, copied: the test adds to it below)
    const config = nodePath.join(stateDir, 'host.yaml');
    fs.copyFileSync(EXAMPLE, config);
    const applied = run('apply', '-f', config);
    assert.equal(applied.status, 0, applied.stderr);
    assert.equal(
      applied.stdout,
      'Applied "default": 4 created, 0 removed, 0 modified, 0 started, 0 adopted, 0 kept.\n',
    );
    const four = active();
    assert.equal(four.length, 4);
    const listed = run('vf', 'list');
    assert.equal(listed.stdout.match(/ L40S-12Q /g)?.length, 4, listed.stdout);
    const again = run('apply', '-f', config);
    assert.match(again.stdout, / 0 created, .* 4 kept\.$/m);
    fs.appendFileSync(config, '          - { type: L40S-24Q, count: 1 }\n');
    const bigger = run('plan', '-f', config);
    assert.match(bigger.stdout, /L40S-24Q does not fit: this GPU runs 12 GB types/);
    const cap = run('capacity', '--type', 'L40S-24Q');
    assert.equal(cap.status, 0, cap.stderr);
    assert.equal(
      cap.stdout,
      'nvidia-1155 (L40S-24Q, 24576M): 0 more\n' +
        '  0000:41:00.0      0  nvidia-vf: L40S-24Q does not fit: this GPU runs 12 GB types\n',
    );
    const no = run('vf', 'create', '--gpu', GPU, '--type', 'L40S-24Q');
    assert.equal(no.stderr, 'mdevkit: L40S-24Q does not fit: this GPU runs 12 GB types\n');

    // 3. The dashboard shows them with the GPU's capacity, and changes them.
    agent = await startAgent([
      '--root',
      lab!.dir,
      '--listen',
      '127.0.0.1:0',
      '--state-dir',
      stateDir,
      '--poll-interval',
      '200',
    ]);
    const signedIn = /^dashboard, signed in: (\S+)$/m.exec(agent.stdout())![1]!;
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    await page.goto(signedIn);
    await page.waitForSelector('#live.on');
    await page.waitForSelector('#vgpu-section:not([hidden])');
    const card = `[data-gpu="${GPU}"] .counts`;
    assert.equal(await page.getAttribute(card, 'data-used-gb'), '48');
    assert.equal(await page.getAttribute(card, 'data-vgpus'), '4');
    for (const uuid of four) await page.waitForSelector(`.vgpu[data-uuid="${uuid}"]`);
    assert.match(await page.innerText(`.vgpu[data-uuid="${four[0]}"]`), /active/);
    assert.match(await page.innerText(`.vgpu[data-uuid="${four[0]}"]`), /NVIDIA L40S-12Q/);
    assert.match(await page.innerText(`.vgpu[data-uuid="${four[0]}"]`), /config:default/);
    // The desired-state view: what "default" wants on the GPU, all running.
    await page.waitForSelector('#desired-section:not([hidden])');
    const wanted = await page.innerText(`#desired tr[data-config="default"]`);
    assert.match(wanted, new RegExp(`${GPU}\\s+nvidia-1153\\s+4\\s+4`));
    // The hostdev XML and QEMU arguments of one, in the page.
    await page.click(`.vgpu[data-uuid="${four[0]}"] button:has-text("hostdev")`);
    const pre = `.vgpu[data-uuid="${four[0]}"] pre.hostdev`;
    await page.waitForSelector(`${pre}:not([hidden])`);
    assert.match(await page.innerText(pre), /<hostdev mode='subsystem' type='pci' managed='no'>/);
    assert.match(await page.innerText(pre), new RegExp(`-uuid ${four[0]} -device vfio-pci,host=`));
    await page.screenshot({ path: nodePath.join(ARTIFACTS, 'vf-vgpus.png'), fullPage: true });
    // Remove one (made by config:default, not the dashboard: the page asks first).
    page.once('dialog', (d) => void d.accept());
    await page.click(`.vgpu[data-uuid="${four[3]}"] button:has-text("remove")`);
    await page.waitForSelector(`${card}[data-vgpus="3"]`);
    // And make one from the form: 12A fits beside 12Q.
    await page.selectOption('#vgpu-type', `${GPU}\u0000${1163}`);
    await page.check('#vgpu-auto'); // start=auto: back whenever the VFs are
    await page.click('#vgpu-create button[type=submit]');
    await page.waitForSelector(`${card}[data-vgpus="4"]`);
    assert.match(await page.innerText('#vgpus'), /NVIDIA L40S-12A/);
    // A change made elsewhere (the CLI) arrives through the agent's poller.
    const stop = run('vf', 'stop', four[1]!);
    assert.equal(stop.status, 0, stop.stderr);
    await page.waitForSelector(`${card}[data-vgpus="3"]`);
    const start = run('vf', 'start', four[1]!);
    assert.equal(start.status, 0, start.stderr);
    await page.waitForSelector(`${card}[data-vgpus="4"]`);
    // The one refusal on the way was the removal's first answer (another owner's: 403, then confirmed).
    assert.deepEqual(
      problems.filter((p) => !/status of 403/.test(p)),
      [],
    );
    assert.equal(problems.length, 1);

    // 4. The hostdev XML and QEMU arguments of one, from the CLI.
    const xml = run('hostdev-xml', four[0]!);
    assert.equal(xml.status, 0, xml.stderr);
    const q = run('qemu-args', four[0]!);
    assert.match(
      q.stdout,
      new RegExp(`^-uuid ${four[0]} -device '\\{"driver":"vfio-pci","host":"0000:41:00\\.\\d"`),
    );
    if (hasLibvirtSchemas)
      assertValidXml(domainXml('vm', xml.stdout.replace(/^/gm, '    ')), 'domain');

    // 5. A reboot: VFs come back through the boot unit, the vGPUs with them.
    const before = active().sort();
    const reboot = runMdevkit(['lab', 'reboot', '--mount', lab!.dir]);
    assert.equal(reboot.status, 0, reboot.stderr);
    assert.deepEqual(active().sort(), before);
    await page.waitForSelector(`${card}[data-vgpus="4"]`);
    await page.close();
  });
});
