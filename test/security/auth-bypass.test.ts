import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { AgentOptions } from '../../src/agent/server.js';
import { Lab } from '../../src/sim/lab.js';
import { U1 } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { AUTH, TOKEN, labAgent, type LabAgent } from '../agent/support.js';
import {
  assertErrorShape,
  operationsOf,
  rawRequest,
  requestHead,
  type Operation,
  type RawAnswer,
} from './support.js';

/*
 * Authentication bypass attempts for every route of the OpenAPI document
 * (not a hand-made list: a route added tomorrow is attacked too), each
 * path spelled many ways — percent-encoded, double-encoded, overlong
 * UTF-8, mixed case, trailing and doubled slashes, `;` parameters, dot
 * segments, an absolute-form target — and sent over a real socket exactly
 * as written. Beyond loopback no read and no write may answer without the
 * token; on loopback no write may. Every refusal has the API's error shape,
 * and the host is unchanged afterwards.
 */

const pct = (c: string, lower = false): string => {
  const h = c.charCodeAt(0).toString(16).padStart(2, '0');
  return `%${lower ? h : h.toUpperCase()}`;
};
/** Overlong (2-byte) UTF-8 of an ASCII character: invalid, and once a classic filter bypass. */
const overlong = (c: string): string => {
  const n = c.charCodeAt(0);
  return pct(String.fromCharCode(0xc0 | (n >> 6))) + pct(String.fromCharCode(0x80 | (n & 0x3f)));
};
const firstLetters = (p: string, f: (c: string) => string): string =>
  p.replace(/\/([A-Za-z])/g, (_m, c: string) => `/${f(c)}`);

/** Ways of writing one path that a router might take for it, and a filter might not. */
function spellings(path: string): string[] {
  const segs = path.split('/').slice(1);
  const [first = '', ...rest] = segs;
  const tail = rest.join('/');
  const set = new Set<string>([
    path,
    `${path}/`,
    `${path}//`,
    `/${path}`,
    `${path.replace('/', '//')}`,
    path.replace(/\//g, '//'),
    `/${pct(first[0]!)}${first.slice(1)}/${tail}`,
    `/${pct(first[0]!, true)}${first.slice(1)}/${tail}`,
    firstLetters(path, (c) => pct(c)),
    firstLetters(path, (c) => pct(c, true)),
    path.replace(/[a-z]/gi, (c) => pct(c)),
    firstLetters(path, (c) => `%25${pct(c).slice(1)}`),
    firstLetters(path, (c) => `%25${pct(pct(c)).slice(1)}`),
    firstLetters(path, overlong),
    `/${first}${overlong('/')}${tail}`,
    path.toUpperCase(),
    `/${first.toUpperCase()}/${tail}`,
    firstLetters(path, (c) => c.toUpperCase()),
    `${path};x=1`,
    `/${first};x=1/${tail}`,
    `/${first};/${tail}`,
    `/${first}/./${tail}`,
    `/x/../${first}/${tail}`,
    `/${first}/x/..%2F${tail}`,
    `/x/%2e%2e/${first}/${tail}`,
    `/${first}%2F${tail.replace(/\//g, '%2F')}`,
    `/${first}%2f${tail}`,
    `/%2F${first}/${tail}`,
    `/${first}\\${tail.replace(/\//g, '\\')}`,
    `${path}%00`,
    `${path}%20`,
    `${path}%09`,
    `${path}#x`,
    `${path}?`,
    `${path}?access_token=${'b'.repeat(64)}`,
    `http://127.0.0.1${path}`,
    `http://evil.example${path}`,
    `${path}/..`,
    `${path}/.`,
  ]);
  return [...set];
}

/** The credentials an attacker can present: none, or wrong ones in several forms. */
const WRONG_AUTH: Record<string, string>[] = [
  {},
  { authorization: `Bearer ${'b'.repeat(64)}` },
  { authorization: 'Bearer' },
  { authorization: `Basic ${Buffer.from(`x:${'b'.repeat(64)}`).toString('base64')}` },
  { authorization: `Bearer ${TOKEN.slice(0, 63)}` },
];

async function listen(la: LabAgent): Promise<number> {
  await la.agent.app.listen({ host: '127.0.0.1', port: 0 });
  return (la.agent.app.server.address() as AddressInfo).port;
}

async function state(port: number): Promise<string> {
  const r = await rawRequest({ port }, requestHead('GET', '/api/v1/devices?limit=1000', AUTH));
  assert.equal(r.status, 200, r.body);
  return r.body;
}

function send(
  port: number,
  op: Operation,
  path: string,
  headers: Record<string, string>,
): Promise<RawAnswer> {
  const body = op.body ?? '';
  const h: Record<string, string> = { ...headers };
  if (body !== '') {
    h['content-type'] = 'application/json';
    h['content-length'] = String(Buffer.byteLength(body));
  }
  return rawRequest({ port }, requestHead(op.method, path, h), body, { maxBody: 4096 });
}

function assertRefused(a: RawAnswer, op: Operation, path: string, exact?: number): void {
  const what = `${op.method} ${path}`;
  if (exact !== undefined)
    assert.equal(a.status, exact, `${what}: ${a.status} ${a.body.slice(0, 200)}`);
  assert.ok(
    a.status >= 400 && a.status < 500,
    `${what} answered ${a.status}: ${a.body.slice(0, 200)}`,
  );
  if (op.method !== 'HEAD') assertErrorShape(a, what);
}

for (const where of ['beyond loopback', 'on loopback'] as const) {
  describe(`authentication bypass attempts, every route of the OpenAPI document, ${where}`, () => {
    const stateDir = tmpDir('mdevkit-sec-auth-');
    let la: LabAgent;
    let port = 0;
    let ops: Operation[] = [];
    const options: Partial<AgentOptions> =
      where === 'beyond loopback'
        ? { protectReads: true, loopbackOnly: false }
        : { protectReads: false, loopbackOnly: true };

    before(async () => {
      la = await labAgent(stateDir, Lab.fromProfile('lab'), options);
      port = await listen(la);
      // A device to read and to harm: a bypass would show it or change it.
      const body = JSON.stringify({ uuid: U1, parent: 'mdpy', type: 'mdpy-hd', activate: true });
      const r = await rawRequest(
        { port },
        requestHead('POST', '/api/v1/devices', {
          ...AUTH,
          'content-type': 'application/json',
          'content-length': String(body.length),
        }),
        body,
      );
      assert.equal(r.status, 201, r.body);
      const doc = await rawRequest({ port }, requestHead('GET', '/openapi.json', AUTH), '', {
        maxBody: 1 << 22,
      });
      assert.equal(doc.status, 200);
      ops = operationsOf(JSON.parse(doc.body), { uuid: U1, parent: 'mdpy', type: 'mdpy-hd' });
    });
    after(() => la.agent.close());

    test('the document lists the API, and only /healthz is public', () => {
      assert.ok(ops.length >= 20, `${ops.length} operations`);
      assert.deepEqual(
        [...new Set(ops.filter((o) => o.public).map((o) => o.template))],
        ['/healthz'],
      );
    });

    test('without the token, every spelling of every route is refused with the error shape; nothing changes', async (t) => {
      const before = await state(port);
      let attempts = 0;
      const targets = ops.filter((o) =>
        where === 'beyond loopback' ? !o.public : !['GET', 'HEAD'].includes(o.method),
      );
      assert.ok(targets.length > 0);
      for (const op of targets) {
        for (const path of spellings(op.path)) {
          for (const auth of WRONG_AUTH.slice(0, path === op.path ? WRONG_AUTH.length : 2)) {
            const a = await send(port, op, path, auth);
            attempts++;
            assertRefused(a, op, path, path === op.path ? 401 : undefined);
          }
        }
      }
      // The event stream takes the token in its query; a wrong one is refused too.
      const ev = await rawRequest(
        { port },
        requestHead('GET', `/api/v1/events?access_token=${'b'.repeat(64)}`),
      );
      if (where === 'beyond loopback') assertRefused(ev, ops[0]!, '/api/v1/events', 401);
      assert.equal(await state(port), before, 'the host is unchanged');
      t.diagnostic(`${attempts} attempts, ${targets.length} operations, all refused`);
    });

    test('the token in the query opens the event stream only', async () => {
      const q = `access_token=${TOKEN}`;
      const ev = await rawRequest({ port }, requestHead('GET', `/api/v1/events?${q}`));
      assert.equal(ev.status, 200);
      if (where !== 'beyond loopback') return;
      for (const path of [
        '/api/v1/devices',
        `/api/v1/devices/${U1}`,
        '/api/v1/parents',
        '/metrics',
      ]) {
        const a = await rawRequest({ port }, requestHead('GET', `${path}?${q}`));
        assert.equal(a.status, 401, `${path}?access_token: ${a.status}`);
      }
    });

    test('with the token, the same routes answer', async () => {
      const a = await rawRequest({ port }, requestHead('GET', `/api/v1/devices/${U1}`, AUTH));
      assert.equal(a.status, 200, a.body);
      const m = await rawRequest({ port }, requestHead('GET', '/metrics', AUTH));
      assert.equal(m.status, 200);
      const h = await rawRequest({ port }, requestHead('GET', '/healthz'));
      assert.equal(h.status, 200);
      const page = await rawRequest({ port }, requestHead('GET', '/'));
      assert.equal(
        page.status,
        200,
        'the dashboard page loads without the token (it holds no data)',
      );
    });
  });
}
