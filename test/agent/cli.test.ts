import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as nodePath from 'node:path';
import { describe, test } from 'node:test';
import { runMdevkit } from '../support/cli.js';
import { startAgent } from './running.js';
import { tmpDir } from '../support/tmp.js';

describe('mdevkit agent, as a process', () => {
  const stateDir = tmpDir('mdevkit-agent-cli-');

  test('first start: prints the URL and the token once; serves the lab; writes need the token', async () => {
    const a = await startAgent(['--listen', '127.0.0.1:0', '--state-dir', stateDir]);
    try {
      const token = /^token \(created now.*\n {2}([0-9a-f]{64})$/m.exec(a.stdout())?.[1];
      assert.ok(token, a.stdout());
      assert.equal(fs.readFileSync(nodePath.join(stateDir, 'agent-token'), 'utf8').trim(), token);
      assert.equal(fs.statSync(nodePath.join(stateDir, 'agent-token')).mode & 0o777, 0o600);
      assert.match(a.stdout(), new RegExp(`^dashboard, signed in: ${a.url}/#token=${token}$`, 'm'));
      const health = (await (await fetch(`${a.url}/healthz`)).json()) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
      assert.equal(health.mode, 'lab');
      const page = await fetch(`${a.url}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<title>mdevkit/);
      const body = JSON.stringify({
        parent: 'mdpy',
        type: 'mdpy-hd',
        activate: true,
        start: 'auto',
      });
      const headers = { 'content-type': 'application/json' };
      const denied = await fetch(`${a.url}/api/v1/devices`, { method: 'POST', headers, body });
      assert.equal(denied.status, 401);
      const created = await fetch(`${a.url}/api/v1/devices`, {
        method: 'POST',
        headers: { ...headers, authorization: `Bearer ${token}` },
        body,
      });
      assert.equal(created.status, 201);
    } finally {
      assert.equal(await a.stop(), 0);
    }
  });

  test('second start: the token is not printed again; auto definitions start with the lab', async () => {
    const a = await startAgent(['--listen', '127.0.0.1:0', '--state-dir', stateDir]);
    try {
      assert.doesNotMatch(a.stdout(), /[0-9a-f]{64}/);
      assert.match(a.stdout(), /^token: in .*agent-token$/m);
      // The lab booted afresh; the start=auto definition made above came back.
      const list = (await (await fetch(`${a.url}/api/v1/devices`)).json()) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
      assert.equal(list.total, 1);
      assert.equal(list.devices[0].active, true);
      assert.equal(list.devices[0].start, 'auto');
    } finally {
      await a.stop();
    }
  });

  test('a unix socket, mode 0600, removed on exit', async () => {
    const sock = nodePath.join(stateDir, 'agent.sock');
    const a = await startAgent(['--socket', sock, '--state-dir', stateDir]);
    try {
      assert.equal(a.url, `unix:${sock}`);
      assert.equal(fs.statSync(sock).mode & 0o777, 0o600);
      const body = await new Promise<string>((resolve, reject) => {
        http
          .get({ socketPath: sock, path: '/api/v1/parents' }, (res) => {
            let t = '';
            res.on('data', (d) => (t += d));
            res.on('end', () => resolve(t));
          })
          .on('error', reject);
      });
      assert.ok(JSON.parse(body).parents.some((p: { name: string }) => p.name === 'mdpy'));
    } finally {
      await a.stop();
    }
    assert.equal(fs.existsSync(sock), false);
  });

  test('refusals: no token beyond loopback, bad options', () => {
    const open = runMdevkit([
      'agent',
      '--listen',
      '0.0.0.0:0',
      '--no-auth',
      '--state-dir',
      stateDir,
    ]);
    assert.equal(open.status, 2);
    assert.match(open.stderr, /refusing to listen on 0\.0\.0\.0 without a token/);
    const both = runMdevkit(['agent', '--profile', 'lab', '--root', '/']);
    assert.equal(both.status, 2);
    assert.match(both.stderr, /exclude each other/);
    const listen = runMdevkit(['agent', '--listen', 'nowhere']);
    assert.equal(listen.status, 2);
    assert.match(listen.stderr, /--listen takes HOST:PORT/);
    const help = runMdevkit(['agent', '--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /usage: mdevkit agent/);
  });

  test('beyond loopback, reads need the token too', async () => {
    const a = await startAgent(['--listen', '0.0.0.0:0', '--state-dir', stateDir]);
    try {
      const port = new URL(a.url).port;
      const token = fs.readFileSync(nodePath.join(stateDir, 'agent-token'), 'utf8').trim();
      assert.equal((await fetch(`http://127.0.0.1:${port}/api/v1/parents`)).status, 401);
      const ok = await fetch(`http://127.0.0.1:${port}/api/v1/parents`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(ok.status, 200);
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
      // The event stream takes the token in its URL (EventSource cannot send headers).
      assert.equal((await fetch(`http://127.0.0.1:${port}/api/v1/events`)).status, 401);
      const stream = new AbortController();
      const events = await fetch(`http://127.0.0.1:${port}/api/v1/events?access_token=${token}`, {
        signal: stream.signal,
      });
      assert.equal(events.status, 200);
      assert.match(events.headers.get('content-type') ?? '', /^text\/event-stream/);
      stream.abort();
    } finally {
      await a.stop();
    }
  });

  test('--root: a host through its sysfs files (a snapshot of the lab)', async () => {
    const root = tmpDir('mdevkit-agent-root-');
    const snap = runMdevkit(['lab', 'snapshot', root]);
    assert.equal(snap.status, 0, snap.stderr);
    const a = await startAgent([
      '--root',
      root,
      '--listen',
      '127.0.0.1:0',
      '--state-dir',
      stateDir,
    ]);
    try {
      const health = (await (await fetch(`${a.url}/healthz`)).json()) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
      assert.deepEqual(health, { status: 'ok', host: root, mode: 'host' });
      const { parents } = (await (await fetch(`${a.url}/api/v1/parents`)).json()) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
      assert.ok(parents.some((p: { name: string }) => p.name === 'mdpy'));
    } finally {
      await a.stop();
    }
  });
});
