import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as nodePath from 'node:path';
import { describe, test } from 'node:test';
import { MDEVKIT_BIN } from '../support/cli.js';
import { tmpDir } from '../support/tmp.js';
import { startAgent } from '../agent/running.js';

/** GET over HTTPS trusting `ca` only; resolves status and body. */
function httpsGet(
  url: string,
  ca: Buffer,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, headers }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('TLS: --tls-cert and --tls-key', () => {
  const dir = tmpDir('mdevkit-sec-tls-');
  const cert = nodePath.join(dir, 'cert.pem');
  const key = nodePath.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );

  test('beyond loopback over HTTPS: reads need the token; plain HTTP gets no answer', async () => {
    const state = nodePath.join(dir, 'state');
    const a = await startAgent([
      '--listen',
      '0.0.0.0:0',
      '--state-dir',
      state,
      '--tls-cert',
      cert,
      '--tls-key',
      key,
    ]);
    try {
      assert.match(a.url, /^https:\/\/0\.0\.0\.0:\d+$/);
      assert.doesNotMatch(a.stdout(), /in the clear/);
      const port = a.url.split(':').pop()!;
      const token = fs.readFileSync(nodePath.join(state, 'agent-token'), 'utf8').trim();
      const ca = fs.readFileSync(cert);
      const base = `https://127.0.0.1:${port}`;
      assert.equal((await httpsGet(`${base}/api/v1/devices`, ca)).status, 401);
      const ok = await httpsGet(`${base}/api/v1/devices`, ca, { authorization: `Bearer ${token}` });
      assert.equal(ok.status, 200, ok.body);
      await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'plain HTTP is not served');
    } finally {
      await a.stop();
    }
  });

  test('beyond loopback without TLS: a warning; a half TLS pair: a usage error', async () => {
    const a = await startAgent([
      '--listen',
      '0.0.0.0:0',
      '--state-dir',
      nodePath.join(dir, 'plain'),
    ]);
    await a.stop();
    assert.match(
      a.stdout(),
      /warning: serving plain HTTP beyond loopback: the token travels in the clear/,
    );
    const r = spawn(
      process.execPath,
      [MDEVKIT_BIN, 'agent', '--tls-cert', cert, '--state-dir', nodePath.join(dir, 'x')],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    r.stderr.on('data', (d) => (err += d));
    const code = await new Promise((resolve) => r.once('exit', resolve));
    assert.equal(code, 2);
    assert.match(err, /--tls-cert and --tls-key go together/);
  });
});

describe('the request log (MDEVKIT_AGENT_LOG=1) holds no secrets', () => {
  test("the event stream's access_token and the Authorization header never reach the log", async () => {
    const state = tmpDir('mdevkit-sec-log-');
    // Made beforehand: the first start prints a new token once, on purpose.
    fs.writeFileSync(nodePath.join(state, 'agent-token'), `${'e0'.repeat(32)}\n`, { mode: 0o600 });
    const a = await startAgent(['--listen', '127.0.0.1:0', '--state-dir', state], {
      ...process.env,
      MDEVKIT_AGENT_LOG: '1',
    });
    let log = '';
    a.child.stdout!.on('data', (d: Buffer) => (log += d));
    const token = fs.readFileSync(nodePath.join(state, 'agent-token'), 'utf8').trim();
    try {
      const ctl = new AbortController();
      const stream = await fetch(`${a.url}/api/v1/events?since=0&access_token=${token}`, {
        signal: ctl.signal,
      });
      assert.equal(stream.status, 200);
      ctl.abort();
      await fetch(`${a.url}/api/v1/events?access%5Ftoken=${token}&x=1`, {
        signal: AbortSignal.timeout(500),
      }).catch(() => undefined);
      const r = await fetch(`${a.url}/api/v1/devices/11111111-1111-4111-8111-111111111111/stop`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(r.status, 404);
    } finally {
      await a.stop();
    }
    log = a.stdout() + log;
    assert.match(
      log,
      /"url":"\/api\/v1\/events\?since=0&access_token=\[redacted\]"/,
      'the request is logged',
    );
    assert.match(log, /access%5Ftoken=\[redacted\]&x=1/);
    assert.ok(!log.includes(token), `the token appears nowhere in the log:\n${log}`);
  });
});
