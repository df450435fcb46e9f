import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as nodePath from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { redactSecrets } from '../../src/agent/server.js';
import { Lab } from '../../src/sim/lab.js';
import { U1, U2 } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { AUTH, TOKEN, labAgent, type LabAgent } from '../agent/support.js';
import { assertErrorShape, rawRequest, requestHead } from './support.js';

/*
 * Hostile input to the API: path parameters in every encoding with
 * traversal and control characters, bodies of the wrong type, numbers out
 * of range, attribute names that try to leave the device directory, huge
 * and deeply nested JSON, bad query values. Every one must be refused with
 * a 4xx in the API's error shape — never a 5xx, never a crash — and leave
 * the host and every file exactly as they were: no write lands anywhere,
 * least of all outside the device's directory.
 */

interface Tally {
  attempts: number;
}

/** Everything the agent could have changed: its state dir's files and the host as the API shows it. */
async function snapshot(la: LabAgent, port: number): Promise<string> {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = nodePath.join(dir, e.name);
      const st = fs.lstatSync(p);
      // Files by size and time; directories by name only (a define that was
      // unwound leaves its directory's mtime changed, and nothing else).
      files.push(
        `${nodePath.relative(la.stateDir, p)}${e.isDirectory() ? '/' : ` ${st.size} ${st.mtimeMs}`}`,
      );
      if (e.isDirectory()) walk(p);
    }
  };
  walk(la.stateDir);
  const api = await Promise.all(
    ['/api/v1/devices?limit=1000', '/api/v1/parents', '/api/v1/ap/matrix'].map(async (u) => {
      const r = await rawRequest({ port }, requestHead('GET', u, AUTH), '', { maxBody: 1 << 22 });
      return r.body;
    }),
  );
  const sys = la.lab.port.list('/sys/bus/mdev/devices').sort().join(',');
  return [...files.sort(), ...api, sys].join('\n');
}

function refused(status: number, body: string, what: string, t: Tally, head = false): void {
  t.attempts++;
  assert.ok(status >= 400 && status < 500, `${what}: answered ${status} ${body.slice(0, 300)}`);
  if (!head) assertErrorShape({ status, body }, what);
}

/** Path parameter spellings: traversal, encodings, control characters, oddities. */
const HOSTILE_SEGMENTS: string[] = [
  '..',
  '.',
  '%2e%2e',
  '%2E%2E',
  '.%2e',
  '%2e.',
  '..%2F..%2Fetc%2Fpasswd',
  '..%5C..%5Cetc',
  '%2F',
  '%2Fetc%2Fpasswd',
  '%252e%252e',
  '%c0%ae%c0%ae',
  '%C0%AF',
  '%e0%80%ae',
  '%00',
  'mdpy%00x',
  'mdpy%0a',
  'mdpy%0d%0aX-Injected:%201',
  '%01',
  '%1b%5b31m',
  '%7f',
  '%20',
  'md%20py',
  '%09',
  '*',
  'mdpy*',
  '%3F',
  '%23',
  '%25',
  '~root',
  '%E2%80%AE',
  '%EF%BB%BF',
  '%F0%9F%92%A9',
  '%ED%A0%80',
  'x'.repeat(256),
  'mdpy;rm%20-rf',
  '%24(reboot)',
  '%60id%60',
  'CON',
  'mdpy%2F..%2F..%2F..%2Fetc',
];

/** Routes with path parameters, as templates; `{}` is the hostile segment. */
const PARAM_ROUTES: [string, string, string?][] = [
  ['GET', '/api/v1/parents/{}'],
  ['GET', '/api/v1/parents/{}/types/mdpy-hd'],
  ['GET', '/api/v1/parents/mdpy/types/{}'],
  ['GET', '/api/v1/devices/{}'],
  ['GET', '/api/v1/devices/{}/aggregation'],
  ['GET', '/api/v1/devices/{}/libvirt/nodedev'],
  ['GET', '/api/v1/devices/{}/qemu-args'],
  ['POST', '/api/v1/devices/{}/start', '{}'],
  ['POST', '/api/v1/devices/{}/stop'],
  ['DELETE', '/api/v1/devices/{}'],
  ['DELETE', '/api/v1/devices/{}/definition'],
  ['PUT', '/api/v1/devices/{}/aggregation', '{"value":2}'],
  ['PATCH', '/api/v1/devices/{}', '{"start":"auto"}'],
  ['POST', '/api/v1/ap/devices/{}/assign', '{"adapters":[3]}'],
];

describe('hostile input to the API: 4xx with the error shape, nothing written', () => {
  const stateDir = tmpDir('mdevkit-sec-hostile-');
  let la: LabAgent;
  let port = 0;
  let before_ = '';
  const tally: Tally = { attempts: 0 };
  const inject = (method: string, url: string, payload?: string, type = 'application/json') =>
    la.agent.app.inject({
      method: method as 'GET',
      url,
      headers: { ...AUTH, ...(payload === undefined ? {} : { 'content-type': type }) },
      ...(payload === undefined ? {} : { payload }),
    });

  before(async () => {
    la = await labAgent(stateDir, Lab.fromProfile('lab'));
    await la.agent.app.listen({ host: '127.0.0.1', port: 0 });
    port = (la.agent.app.server.address() as AddressInfo).port;
    // A real device to aim at: a write that escaped would change it or its neighbours.
    const made = await inject(
      'POST',
      '/api/v1/devices',
      JSON.stringify({ uuid: U1, parent: 'mdpy', type: 'mdpy-hd', activate: true }),
    );
    assert.equal(made.statusCode, 201, made.body);
    before_ = await snapshot(la, port);
  });
  after(() => la.agent.close());

  test('path parameters: traversal, encodings, control characters, over a real socket', async () => {
    for (const [method, template, body] of PARAM_ROUTES) {
      for (const seg of HOSTILE_SEGMENTS) {
        const path = template.replace('{}', seg);
        const headers: Record<string, string> = { ...AUTH };
        if (body !== undefined) {
          headers['content-type'] = 'application/json';
          headers['content-length'] = String(body.length);
        }
        const a = await rawRequest({ port }, requestHead(method, path, headers), body ?? '');
        refused(a.status, a.body, `${method} ${path}`, tally);
      }
    }
  });

  test('property: any string as a parent or type name is a 4xx or a real answer, never a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 300 }), async (name) => {
        const r = await inject('GET', `/api/v1/parents/mdpy/types/${encodeURIComponent(name)}`);
        tally.attempts++;
        if (r.statusCode === 200) return; // a type the lab really has
        assert.ok(
          r.statusCode >= 400 && r.statusCode < 500,
          `${JSON.stringify(name)}: ${r.statusCode} ${r.body}`,
        );
        assertErrorShape({ status: r.statusCode, body: r.body }, JSON.stringify(name));
      }),
      { numRuns: 150 },
    );
  });

  test('bodies: wrong types, out-of-range numbers, escaping attribute names', async () => {
    const good = { uuid: U2, parent: 'mdpy', type: 'mdpy-hd', activate: true };
    // Values of the wrong type for each field, and strings no field of that name may hold.
    const notString: unknown[] = [null, true, 0, -1, 1.5, [], {}, [1], { a: 1 }];
    const wrong: Record<string, unknown[]> = {
      uuid: [
        ...notString,
        'x',
        '',
        U2.slice(1),
        `${U2}0`,
        U2.replace(/-/g, ''),
        `{${U2}}`,
        'a'.repeat(5000),
      ],
      parent: [...notString, '', '..', '.', 'a/b', '/etc', 'a b', 'a\u0001', 'a'.repeat(256)],
      type: [...notString, '', '..', 'a/b', 'a\nb', 'a'.repeat(256)],
      start: [...notString, '', 'x', 'AUTO', 'auto '],
      attrs: [
        null,
        true,
        0,
        'x',
        {},
        [1],
        ['x'],
        [{}],
        [{ name: 'a' }],
        [{ value: 'a' }],
        [{ name: 1, value: 'a' }],
      ],
      define: [null, 0, 1, 'true', [], {}],
      activate: [null, 0, 1, 'false', [], {}],
    };
    for (const [field, values] of Object.entries(wrong)) {
      for (const v of values) {
        const r = await inject('POST', '/api/v1/devices', JSON.stringify({ ...good, [field]: v }));
        refused(r.statusCode, r.body, `create ${field}=${JSON.stringify(v).slice(0, 40)}`, tally);
      }
    }
    const names = [
      '../remove',
      '../../mdpy/remove',
      '/etc/passwd',
      '/sys/bus/mdev/devices/x',
      'a/../../../b',
      '..',
      '.',
      'mdev/../../remove',
      'x\0y',
      'x\ny',
      'x\ty',
      '\u001b[2J',
      'x\u007f',
      '',
      'a'.repeat(5000),
      'mdev/aggregation/../../../remove',
      '//',
      'mdev//value',
    ];
    for (const name of names) {
      for (const activate of [false, true]) {
        const r = await inject(
          'POST',
          '/api/v1/devices',
          JSON.stringify({ ...good, activate, attrs: [{ name, value: '1' }] }),
        );
        refused(r.statusCode, r.body, `attr name ${JSON.stringify(name)}`, tally);
      }
      const p = await inject(
        'PATCH',
        `/api/v1/devices/${U1}`,
        JSON.stringify({ attrs: [{ name, value: '1' }] }),
      );
      // U1 has no definition to modify... a definition would be needed: define one first below.
      refused(p.statusCode, p.body, `modify attr ${JSON.stringify(name)}`, tally);
    }
    // Odd names that stay inside the device directory: a definition may hold
    // them (mdevctl's rule), but a start fails on the missing file and unwinds.
    for (const name of ['%2e%2e/remove', '\\..\\remove', 'no-such-file']) {
      const r = await inject(
        'POST',
        '/api/v1/devices',
        JSON.stringify({ ...good, activate: true, attrs: [{ name, value: '1' }] }),
      );
      refused(r.statusCode, r.body, `start with attr ${JSON.stringify(name)}`, tally);
    }
    for (const value of ['x\0y', '\u0001', '\u001b[31m', 'a\u007f', 'a'.repeat(5000)]) {
      const r = await inject(
        'POST',
        '/api/v1/devices',
        JSON.stringify({ ...good, attrs: [{ name: 'x', value }] }),
      );
      refused(r.statusCode, r.body, `attr value ${JSON.stringify(value).slice(0, 30)}`, tally);
    }
    for (const v of [
      0,
      -1,
      1.5,
      2 ** 21,
      2 ** 53,
      -(2 ** 53),
      1e308,
      '2',
      null,
      [2],
      { v: 2 },
      true,
    ]) {
      const r = await inject(
        'PUT',
        `/api/v1/devices/${U1}/aggregation`,
        JSON.stringify({ value: v }),
      );
      refused(r.statusCode, r.body, `aggregation ${JSON.stringify(v)}`, tally);
    }
    for (const ids of [
      [-1],
      [256],
      [1e9],
      [1.5],
      ['3'],
      [null],
      3,
      'x',
      Array(300).fill(3),
      [[3]],
    ]) {
      for (const key of ['adapters', 'domains']) {
        const r = await inject('POST', '/api/v1/ap/reserve', JSON.stringify({ [key]: ids }));
        refused(
          r.statusCode,
          r.body,
          `ap reserve ${key}=${JSON.stringify(ids).slice(0, 30)}`,
          tally,
        );
      }
    }
    for (const body of ['{}', '[]', 'null', '1', '"x"', '{"adapters":[]}']) {
      const r = await inject('POST', '/api/v1/ap/release', body);
      refused(r.statusCode, r.body, `ap release ${body}`, tally);
    }
  });

  test('property: arbitrary JSON as a create body is refused (4xx with the shape) or creates nothing else', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), async (v) => {
        // Never a valid create: the parent does not exist whatever the rest says.
        const body =
          typeof v === 'object' && v !== null && !Array.isArray(v)
            ? { ...v, parent: 'no-such-parent' }
            : v;
        const r = await inject('POST', '/api/v1/devices', JSON.stringify(body));
        refused(r.statusCode, r.body, JSON.stringify(body).slice(0, 80), tally);
      }),
      { numRuns: 150 },
    );
  });

  test('huge, deep, malformed and poisoned JSON', async () => {
    const cases: [string, string][] = [
      [
        'over the body limit',
        JSON.stringify({ parent: 'mdpy', type: 'mdpy-hd', pad: 'a'.repeat(70 * 1024) }),
      ],
      ['1e5 nested arrays', '['.repeat(100_000) + ']'.repeat(100_000)],
      [
        'deeply nested attrs',
        JSON.stringify({ parent: 'mdpy', type: 'mdpy-hd', attrs: [[[[[[[[[[{}]]]]]]]]]] }),
      ],
      ['30k nested objects', '{"a":'.repeat(30_000) + '1' + '}'.repeat(30_000)],
      ['__proto__', '{"parent":"mdpy","type":"mdpy-hd","__proto__":{"define":false}}'],
      [
        'constructor.prototype',
        '{"parent":"mdpy","type":"mdpy-hd","constructor":{"prototype":{"x":1}}}',
      ],
      ['truncated', '{"parent":"mdpy","type":'],
      ['trailing garbage', '{"parent":"mdpy","type":"mdpy-hd"} x'],
      ['NaN', '{"parent":"mdpy","type":"mdpy-hd","attrs":NaN}'],
      ['single quotes', "{'parent':'mdpy'}"],
      ['lone surrogate', '{"parent":"\\ud800","type":"mdpy-hd"}'],
      ['duplicate keys', '{"parent":"mdpy","parent":"../x","type":"mdpy-hd"}'],
      [
        '10k attrs',
        JSON.stringify({
          parent: 'mdpy',
          type: 'mdpy-hd',
          attrs: Array(300).fill({ name: 'a', value: 'b' }),
        }),
      ],
    ];
    for (const [what, body] of cases) {
      const r = await inject('POST', '/api/v1/devices', body);
      refused(r.statusCode, r.body, what, tally);
    }
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/xml',
      'application/json-patch+json',
    ]) {
      const r = await inject('POST', '/api/v1/devices', '{"parent":"mdpy","type":"mdpy-hd"}', type);
      refused(r.statusCode, r.body, `content type ${type}`, tally);
    }
  });

  test('query values: out of range, wrong type, garbage cursors', async () => {
    const urls = [
      '/api/v1/devices?limit=0',
      '/api/v1/devices?limit=-1',
      '/api/v1/devices?limit=1e9',
      '/api/v1/devices?limit=abc',
      '/api/v1/devices?limit=1.5',
      '/api/v1/devices?limit=20001',
      '/api/v1/devices?state=bogus',
      '/api/v1/devices?parent=..',
      '/api/v1/devices?parent=a%2Fb',
      '/api/v1/devices?type=%00',
      '/api/v1/devices?cursor=!!!',
      '/api/v1/devices?cursor=' + Buffer.from('../../etc/passwd').toString('base64url'),
      '/api/v1/devices?cursor=' + 'A'.repeat(100),
      `/api/v1/devices/${U1}?parent=..`,
      `/api/v1/devices/${U1}?parent=%2Fetc`,
      '/api/v1/events?since=-1',
      '/api/v1/events?since=abc',
      '/api/v1/events?since=1.5',
    ];
    for (const u of urls) {
      const r = await inject('GET', u);
      refused(r.statusCode, r.body, u, tally);
    }
  });

  test('afterwards: every file and the whole host exactly as before', async (t) => {
    assert.equal(await snapshot(la, port), before_);
    assert.ok(tally.attempts >= 500, `${tally.attempts} hostile inputs`);
    t.diagnostic(
      `${tally.attempts} hostile inputs, every one refused with a 4xx in the error shape; nothing changed`,
    );
  });
});

describe('the log redaction, for any secret', () => {
  test('property: no access_token value survives redactSecrets, however the name is encoded', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[0-9a-zA-Z._~-]{8,80}$/),
        fc.constantFrom('access_token', 'access%5Ftoken', 'ACCESS_TOKEN', 'token', 'x_token'),
        fc.constantFrom('?', '?a=1&'),
        (secret, name, prefix) => {
          const out = redactSecrets(`GET /api/v1/events${prefix}${name}=${secret}&since=3 failed`);
          assert.ok(!out.includes(`=${secret}`), out);
          assert.match(out, /since=3/);
        },
      ),
      { numRuns: 300 },
    );
    assert.ok(!redactSecrets(`/api/v1/events?access_token=${TOKEN}`).includes(TOKEN));
  });
});
