import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as nodePath from 'node:path';
import { after, before, describe, test } from 'node:test';
import { U1, U2 } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { AUTH, labAgent, type LabAgent } from '../agent/support.js';

/*
 * A slow or hung callout script must not freeze the agent: /healthz, reads
 * and the event stream keep answering while the write waits for the
 * script. No timed assertion: the script blocks on a FIFO this test holds,
 * and the test checks that /healthz answers *while* the script is still
 * blocked (the write's promise still pending), then lets it go.
 */

describe('slow and hung callouts keep /healthz answering', () => {
  const stateDir = tmpDir('mdevkit-sec-callout-');
  const fifo = nodePath.join(stateDir, 'gate');
  const calloutDir = nodePath.join(stateDir, 'etc/mdevctl.d/scripts.d/callouts');
  const script = nodePath.join(calloutDir, 'gate');
  const inGate = nodePath.join(stateDir, 'in-gate');
  let la: LabAgent;
  let base = '';

  /** A callout that waits until the test writes to the FIFO (each call reads it once). */
  const installGate = (): void => {
    fs.mkdirSync(calloutDir, { recursive: true });
    fs.writeFileSync(
      `${script}.new`,
      `#!/bin/sh\ntouch ${inGate}\ncat ${fifo} > /dev/null\nrm -f ${inGate}\nexit 0\n`,
      { mode: 0o755 },
    );
    fs.renameSync(`${script}.new`, script);
  };
  /** Replace the gate by a script that answers at once (the next calls don't wait). */
  const openGate = (): void => {
    fs.writeFileSync(`${script}.new`, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    fs.renameSync(`${script}.new`, script);
  };
  /** Let a blocked `cat` finish: open for writing (non-blocking: ENXIO when nobody reads) and close. */
  const release = (): void => {
    try {
      fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
    } catch {
      // nobody is reading (yet, or any more)
    }
  };
  /** Is a script in the gate right now? */
  const blocked = (): boolean => fs.existsSync(inGate);
  const waitUntil = async (cond: () => boolean): Promise<void> => {
    while (!cond()) await new Promise((r) => setTimeout(r, 20));
  };

  // Were a write to block the event loop again, this very process would hang
  // (the test could not open the gate): a watchdog ends it so that the
  // regression fails instead of stalling the suite.
  let watchdog: ChildProcess | undefined;

  before(async () => {
    watchdog = spawn('sh', ['-c', `sleep 120; kill -9 ${process.pid}`], { stdio: 'ignore' });
    execFileSync('mkfifo', [fifo]);
    la = await labAgent(stateDir, undefined, {
      worker: { root: stateDir, bridge: true, always: false },
    });
    await la.agent.app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(la.agent.app.server.address() as AddressInfo).port}`;
  });
  after(async () => {
    openGate();
    for (let i = 0; i < 100 && blocked(); i++) {
      release();
      await new Promise((r) => setTimeout(r, 20));
    }
    await la.agent.close();
    watchdog?.kill();
  });

  const create = (uuid: string) =>
    fetch(`${base}/api/v1/devices`, {
      method: 'POST',
      headers: { ...AUTH, 'content-type': 'application/json' },
      body: JSON.stringify({ uuid, parent: 'mdpy', type: 'mdpy-hd', activate: true }),
    });

  test('while a callout is blocked, /healthz, the listing and metrics answer; then the write completes', async () => {
    installGate();
    let settled = false;
    const pending = create(U1).then((r) => {
      settled = true;
      return r;
    });
    await waitUntil(blocked);
    for (let i = 0; i < 5; i++) {
      const h = await fetch(`${base}/healthz`);
      assert.equal(h.status, 200);
      assert.equal((await fetch(`${base}/api/v1/devices`)).status, 200);
      assert.equal((await fetch(`${base}/api/v1/parents`)).status, 200);
    }
    assert.equal((await fetch(`${base}/metrics`)).status, 200);
    assert.ok(blocked() && !settled, 'the callout is still blocked and the create still pending');
    openGate();
    await waitUntil(() => {
      release();
      return !blocked();
    });
    const r = await pending;
    assert.equal(r.status, 201, await r.text());
    const d = (await (await fetch(`${base}/api/v1/devices/${U1}`)).json()) as { active: boolean };
    assert.equal(d.active, true);
  });

  test('a hung callout: the agent keeps answering, writes queue behind it in order', async () => {
    installGate();
    const first = fetch(`${base}/api/v1/devices/${U1}/stop`, { method: 'POST', headers: AUTH });
    await waitUntil(blocked);
    const second = create(U2);
    for (let i = 0; i < 5; i++) assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.ok(blocked(), 'still hung');
    assert.equal(la.agent.context.ops.inWorker, 2, 'the second write waits behind the first');
    openGate();
    await waitUntil(() => {
      release();
      return !blocked();
    });
    assert.equal((await first).status, 204);
    assert.equal((await second).status, 201);
  });

  test('a refusing callout still maps to the same error as inline', async () => {
    fs.writeFileSync(`${script}.new`, '#!/bin/sh\n[ "$4" = pre ] && exit 1\nexit 0\n', {
      mode: 0o755,
    });
    fs.renameSync(`${script}.new`, script);
    const r = await fetch(`${base}/api/v1/devices/${U2}/stop`, { method: 'POST', headers: AUTH });
    const body = (await r.json()) as { error: { errno: string; message: string } };
    assert.equal(r.status, 409, JSON.stringify(body));
    assert.equal(body.error.errno, 'ECANCELED');
    assert.match(body.error.message, /^Script '".*gate"' failed with status '1'$/);
  });
});
