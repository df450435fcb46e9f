import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { U1, U2 } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { AUTH, labAgent, type LabAgent } from '../agent/support.js';
import { assertErrorShape, rawRequest, requestHead } from './support.js';

const json = (body: string): any => JSON.parse(body); // eslint-disable-line @typescript-eslint/no-explicit-any

describe('with --no-auth on loopback, a web page cannot write (cross-site requests)', () => {
  const stateDir = tmpDir('mdevkit-sec-origin-');
  let la: LabAgent;
  let port = 0;
  const devices = async () => json((await la.agent.app.inject({ url: '/api/v1/devices' })).body);

  before(async () => {
    la = await labAgent(stateDir, undefined, { authDisabled: true, token: '' });
    await la.agent.app.listen({ host: '127.0.0.1', port: 0 });
    port = (la.agent.app.server.address() as AddressInfo).port;
    const made = await la.agent.app.inject({
      method: 'POST',
      url: '/api/v1/devices',
      payload: { uuid: U1, parent: 'mdpy', type: 'mdpy-hd', activate: true },
    });
    assert.equal(made.statusCode, 201, made.body);
  });
  after(() => la.agent.close());

  test("a simple cross-site POST (a form, or fetch in no-cors mode) is refused: Origin is not the agent's", async () => {
    const host = `127.0.0.1:${port}`;
    for (const headers of [
      { origin: 'https://evil.example' },
      { origin: 'null' },
      { origin: `http://localhost:${port}` },
      { origin: `https://${host}` },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site', origin: `http://${host}` },
      { origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
      { origin: 'https://evil.example', 'content-type': 'text/plain' },
    ]) {
      const a = await rawRequest(
        { port },
        requestHead(
          'POST',
          `/api/v1/devices/${U1}/stop`,
          { ...headers, 'content-length': '0' },
          host,
        ),
      );
      assert.equal(a.status, 403, `${JSON.stringify(headers)}: ${a.status} ${a.body}`);
      assertErrorShape(a, JSON.stringify(headers));
    }
    assert.equal((await devices()).devices[0].active, true, 'the device still runs');
  });

  test('a body must be JSON: text/plain and form bodies are 415, even from the own origin', async () => {
    const host = `127.0.0.1:${port}`;
    const body = JSON.stringify({ parent: 'mdpy', type: 'mdpy-hd', uuid: U2 });
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/jsonx',
    ]) {
      const a = await rawRequest(
        { port },
        requestHead(
          'POST',
          '/api/v1/devices',
          { 'content-type': type, 'content-length': String(body.length) },
          host,
        ),
        body,
      );
      assert.equal(a.status, 415, `${type}: ${a.status} ${a.body}`);
      assertErrorShape(a, type);
    }
    const noType = await rawRequest(
      { port },
      requestHead('POST', '/api/v1/devices', { 'content-length': String(body.length) }, host),
      body,
    );
    assert.ok([400, 415].includes(noType.status), `no content type: ${noType.status}`);
    assertErrorShape(noType, 'no content type');
    assert.equal((await devices()).total, 1, 'nothing was defined');
  });

  test("the agent's own page and tools (no Origin) still write", async () => {
    const host = `127.0.0.1:${port}`;
    const own = await rawRequest(
      { port },
      requestHead(
        'POST',
        `/api/v1/devices/${U1}/stop`,
        { origin: `http://${host}`, 'sec-fetch-site': 'same-origin', 'content-length': '0' },
        host,
      ),
    );
    assert.equal(own.status, 204, own.body);
    const tool = await rawRequest(
      { port },
      requestHead('POST', `/api/v1/devices/${U1}/start`, { 'content-length': '0' }, host),
    );
    assert.equal(tool.status, 200, tool.body);
  });
});

describe('POST /api/v1/devices/{uuid}/start: the body is optional', () => {
  const stateDir = tmpDir('mdevkit-sec-start-');
  let la: LabAgent;
  before(async () => {
    la = await labAgent(stateDir);
    const made = await la.agent.app.inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: AUTH,
      payload: { uuid: U1, parent: 'mdpy', type: 'mdpy-hd' },
    });
    assert.equal(made.statusCode, 201, made.body);
  });
  after(() => la.agent.close());

  const start = (headers: Record<string, string>, payload?: string) =>
    la.agent.app.inject({
      method: 'POST',
      url: `/api/v1/devices/${U1}/start`,
      headers: { ...AUTH, ...headers },
      ...(payload === undefined ? {} : { payload }),
    });
  const stop = () =>
    la.agent.app.inject({ method: 'POST', url: `/api/v1/devices/${U1}/stop`, headers: AUTH });

  test('no body, an empty JSON body, {} and {"parent"} all start it', async () => {
    for (const [headers, payload] of [
      [{}, undefined],
      [{ 'content-type': 'application/json' }, ''],
      [{ 'content-type': 'application/json' }, '  \n'],
      [{ 'content-type': 'application/json' }, '{}'],
      [{ 'content-type': 'application/json; charset=utf-8' }, '{"parent":"mdpy"}'],
    ] as const) {
      const r = await start(headers, payload);
      assert.equal(r.statusCode, 200, `${JSON.stringify(payload)}: ${r.body}`);
      assert.equal(json(r.body).active, true);
      assert.equal((await stop()).statusCode, 204);
    }
  });

  test('a body that is not an object is still refused, with the shape', async () => {
    for (const payload of ['[]', '"x"', '42', '{"parent":7}', '{']) {
      const r = await start({ 'content-type': 'application/json' }, payload);
      assert.equal(r.statusCode, 400, `${payload}: ${r.body}`);
      assertErrorShape({ status: r.statusCode, body: r.body }, payload);
    }
  });
});

describe("refusals before any route (414, 431, the HTTP parser's 400) have the API's shape", () => {
  const stateDir = tmpDir('mdevkit-sec-parser-');
  let la: LabAgent;
  let port = 0;
  before(async () => {
    la = await labAgent(stateDir);
    await la.agent.app.listen({ host: '127.0.0.1', port: 0 });
    port = (la.agent.app.server.address() as AddressInfo).port;
  });
  after(() => la.agent.close());

  test('a long request target is 414', async () => {
    const a = await rawRequest({ port }, requestHead('GET', `/api/v1/parents/${'a'.repeat(5000)}`));
    assert.equal(a.status, 414, a.body);
    assertErrorShape(a, '414');
    const p = await rawRequest({ port }, requestHead('GET', `/api/v1/parents/${'a'.repeat(1000)}`));
    assert.equal(p.status, 414, p.body);
    assertErrorShape(p, 'long parameter');
    const ok = await rawRequest({ port }, requestHead('GET', `/api/v1/parents/${'a'.repeat(255)}`));
    assert.equal(ok.status, 404, 'a 255-byte sysfs name is a fine parameter');
  });

  test('headers beyond 16 KiB are 431', async () => {
    const a = await rawRequest(
      { port },
      requestHead('GET', '/api/v1/parents', { 'x-big': 'a'.repeat(20_000) }),
    );
    assert.equal(a.status, 431);
    assertErrorShape(a, '431');
  });

  test('malformed HTTP and malformed percent-encoding are 400', async () => {
    for (const head of [
      'GET /api/v1/parents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x\r\n\r\n',
      'GET /api/v1/parents HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n',
      'GET\t/ HTTP/1.1\r\n\r\n',
      'GET /api/v1/parents HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n',
      'GET /api/v1/parents HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n',
      requestHead('GET', '/api/v1/parents/%'),
      requestHead('GET', '/api/v1/parents/%E0%A4%A'),
      requestHead('GET', '/api/v1/%C0%AFparents'),
    ]) {
      const a = await rawRequest({ port }, head);
      assert.equal(a.status, 400, `${JSON.stringify(head)}: ${a.status} ${a.body}`);
      assertErrorShape(a, JSON.stringify(head));
    }
  });
});
