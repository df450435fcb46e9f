import assert from 'node:assert/strict';
import * as net from 'node:net';

/**
 * A raw HTTP/1.1 exchange over a socket: the request line goes out exactly
 * as written (fetch and undici normalize `/./`, `..` and some escapes, which
 * would hide what an attacker can send). Reads the status line, the headers
 * and up to `maxBody` bytes of body, then closes — so an event stream that
 * never ends answers too.
 */
export interface RawAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export type Target = { readonly port: number; readonly host?: string } | { readonly path: string };

export function rawRequest(
  target: Target,
  head: string,
  body: string | Buffer = '',
  opts: { maxBody?: number; timeoutMs?: number } = {},
): Promise<RawAnswer> {
  const maxBody = opts.maxBody ?? 64 * 1024;
  return new Promise((resolve, reject) => {
    const socket =
      'path' in target
        ? net.connect(target.path)
        : net.connect(target.port, target.host ?? '127.0.0.1');
    let data = Buffer.alloc(0);
    let settled = false;
    const timer = setTimeout(
      () => finish(new Error(`no answer to ${head.split('\r\n')[0]}`)),
      opts.timeoutMs ?? 10_000,
    );
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err !== undefined) return reject(err);
      const text = data.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const lines = text.slice(0, end < 0 ? text.length : end).split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
      if (m === null)
        return reject(new Error(`not an HTTP answer: ${JSON.stringify(text.slice(0, 200))}`));
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const c = l.indexOf(':');
        if (c > 0) headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
      }
      let b =
        end < 0
          ? ''
          : data.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1')).toString('utf8');
      if (headers['transfer-encoding'] === 'chunked') b = unchunk(b);
      resolve({ status: Number(m[1]), headers, body: b });
    };
    const complete = (): boolean => {
      const text = data.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return false;
      const head = text.slice(0, end).toLowerCase();
      const bodyLen = data.length - (end + 4);
      const cl = /\r\ncontent-length: *(\d+)/.exec(head);
      if (cl !== null) return bodyLen >= Number(cl[1]);
      if (/^http\/1\.[01] (1\d\d|204|304)/.test(head) || /^head /i.test(headLine)) return true;
      if (head.includes('text/event-stream')) return bodyLen > 0;
      if (head.includes('transfer-encoding: chunked')) return text.endsWith('\r\n0\r\n\r\n');
      return bodyLen >= maxBody;
    };
    const headLine = head;
    socket.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d]);
      if (complete() || data.length > maxBody + 16 * 1024) finish();
    });
    socket.on('end', () => finish());
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // The server may answer and close before it read all we sent.
      if (data.length > 0 && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) finish();
      else finish(err);
    });
    socket.write(head);
    if (body.length > 0) socket.write(body);
  });
}

function unchunk(s: string): string {
  let out = '';
  for (;;) {
    const nl = s.indexOf('\r\n');
    if (nl < 0) return out + s;
    const n = parseInt(s.slice(0, nl), 16);
    if (!(n > 0)) return out;
    out += s.slice(nl + 2, nl + 2 + n);
    s = s.slice(nl + 2 + n + 2);
  }
}

/** `METHOD PATH HTTP/1.1` with Host, Connection: close and the given headers. */
export function requestHead(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  host = '127.0.0.1',
): string {
  const lines = [`${method} ${path} HTTP/1.1`, `Host: ${host}`, 'Connection: close'];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return lines.join('\r\n') + '\r\n\r\n';
}

/**
 * The API's one error shape (src/agent/errors.ts): `{ error: { errno,
 * errnoNumber, strerror, message, ... } }`, as JSON.
 */
export function assertErrorShape(
  a: RawAnswer | { status: number; body: string },
  what: string,
): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(a.body);
  } catch {
    assert.fail(`${what}: answer ${a.status} is not JSON: ${JSON.stringify(a.body.slice(0, 200))}`);
  }
  const e = (parsed as { error?: Record<string, unknown> }).error;
  assert.ok(
    e !== undefined && typeof e === 'object',
    `${what}: no "error" object in ${a.body.slice(0, 200)}`,
  );
  assert.match(String(e['errno']), /^E[A-Z0-9]+$/, `${what}: errno in ${a.body.slice(0, 200)}`);
  assert.equal(typeof e['errnoNumber'], 'number', `${what}: errnoNumber`);
  assert.equal(typeof e['message'], 'string', `${what}: message`);
}

/** One operation of the OpenAPI document, with its parameters filled in. */
export interface Operation {
  readonly method: string;
  readonly template: string;
  readonly path: string;
  readonly public: boolean;
  readonly body: string | undefined;
}

type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  enum?: unknown[];
  items?: JsonSchema;
  minimum?: number;
  default?: unknown;
  anyOf?: JsonSchema[];
};

/** The path parameters' values (parent and type are also those of bodies). */
export interface OperationValues {
  readonly uuid: string;
  readonly parent: string;
  readonly type: string;
  /** A VF's PCI address (the VF vGPU routes). */
  readonly address?: string;
}

/** A smallest valid value for a JSON schema (required properties only). */
function sample(values: OperationValues, s: JsonSchema | undefined, name = ''): unknown {
  // Values a request could really carry, by property name: a bypass must be
  // able to succeed (a create's uuid is a fresh one).
  const known: Record<string, unknown> = {
    parent: values.parent,
    type: values.type,
    value: 1,
    uuid: '44444444-4444-4444-8444-444444444444',
  };
  if (s === undefined) return undefined;
  if (name in known) return known[name];
  if (s.enum !== undefined) return s.enum[0];
  if (s.default !== undefined) return s.default;
  if (s.anyOf !== undefined) return sample(values, s.anyOf[0], name);
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case 'object': {
      const o: Record<string, unknown> = {};
      for (const k of s.required ?? []) o[k] = sample(values, s.properties?.[k], k);
      return o;
    }
    case 'array':
      return [];
    case 'integer':
    case 'number':
      return s.minimum ?? 1;
    case 'boolean':
      return false;
    default:
      return 'x';
  }
}

/**
 * Every operation of an OpenAPI document (GETs also as HEAD), its path
 * parameters set to `values` and its body the smallest valid one: so a
 * suite attacks the routes added tomorrow too, not a hand-made list.
 */
export function operationsOf(
  doc: {
    paths: Record<
      string,
      Record<
        string,
        { security?: unknown[]; requestBody?: { content: Record<string, { schema: JsonSchema }> } }
      >
    >;
  },
  values: OperationValues,
): Operation[] {
  const out: Operation[] = [];
  for (const [template, methods] of Object.entries(doc.paths)) {
    const path = template
      .replace('{uuid}', values.uuid)
      .replace('{parent}', values.parent)
      .replace('{type}', values.type)
      .replace('{address}', values.address ?? '0000:41:00.4');
    assert.doesNotMatch(path, /[{}]/, `a sample value for every parameter of ${template}`);
    for (const [method, op] of Object.entries(methods)) {
      const schema = op.requestBody?.content['application/json']?.schema;
      const body = schema === undefined ? undefined : JSON.stringify(sample(values, schema));
      const isPublic = Array.isArray(op.security) && op.security.length === 0;
      out.push({ method: method.toUpperCase(), template, path, public: isPublic, body });
      if (method === 'get') out.push({ method: 'HEAD', template, path, public: isPublic, body });
    }
  }
  return out;
}
