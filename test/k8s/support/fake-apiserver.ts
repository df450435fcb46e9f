import { EventEmitter } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

/**
 * A stand-in for the Kubernetes API server, for the official client
 * library (@kubernetes/client-node) to talk to over HTTP as it would to a
 * real one. It keeps objects in memory and serves the REST conventions the
 * client relies on (k8s.io/apiserver's behaviour):
 *
 * - paths /api/v1/[namespaces/NS/]RESOURCE[/NAME] and
 *   /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME], for the resources
 *   registered (`resources`: Nodes and Events by default; the DRA driver
 *   adds resource.k8s.io's);
 * - GET (one, or a list with `fieldSelector` metadata.name=/metadata.namespace=
 *   and equality `labelSelector`s), POST (create; `generateName`), PUT,
 *   PATCH (application/merge-patch+json, strategic-merge-patch+json — the
 *   same as a merge for the maps used here — and json-patch+json), DELETE;
 * - `metadata.resourceVersion` from one counter, `uid`, `creationTimestamp`;
 *   `metadata.resourceVersion` in a PUT must match (409 Conflict);
 * - `?watch=true`: newline-delimited JSON events (ADDED, MODIFIED,
 *   DELETED) after `resourceVersion` (410 Gone as an ERROR event when it is
 *   older than the kept history), or from the current state when it is
 *   empty or "0"; the stream stays open until the client goes;
 * - errors as `Status` objects (NotFound 404, AlreadyExists 409, Conflict
 *   409, Invalid 422, Unauthorized 401) and a bearer token check.
 *
 * Tests can make requests fail (`failNext`) and count them (`requests`).
 */

export interface ResourceType {
  readonly group: string; // '' for the core group
  readonly version: string;
  readonly resource: string; // plural: 'nodes'
  readonly kind: string;
  readonly namespaced: boolean;
}

export const CORE_RESOURCES: readonly ResourceType[] = [
  { group: '', version: 'v1', resource: 'nodes', kind: 'Node', namespaced: false },
  { group: '', version: 'v1', resource: 'events', kind: 'Event', namespaced: true },
];

/** Dynamic Resource Allocation's objects (resource.k8s.io/v1), for the DRA driver. */
export const RESOURCE_V1_RESOURCES: readonly ResourceType[] = [
  {
    group: 'resource.k8s.io',
    version: 'v1',
    resource: 'resourceslices',
    kind: 'ResourceSlice',
    namespaced: false,
  },
  {
    group: 'resource.k8s.io',
    version: 'v1',
    resource: 'resourceclaims',
    kind: 'ResourceClaim',
    namespaced: true,
  },
  {
    group: 'resource.k8s.io',
    version: 'v1',
    resource: 'deviceclasses',
    kind: 'DeviceClass',
    namespaced: false,
  },
];

export type KubeObject = {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name?: string;
    generateName?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    creationTimestamp?: string;
    [k: string]: unknown;
  };
  [k: string]: unknown;
};

interface WatchEvent {
  readonly rv: number;
  readonly key: string; // resource key: group/version/resource
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: KubeObject;
}

interface Route {
  readonly type: ResourceType;
  readonly namespace: string | undefined;
  readonly name: string | undefined;
}

export interface FakeApiServerOptions {
  readonly resources?: readonly ResourceType[];
  /**
   * The API server's validation of an object about to be stored (create,
   * update, patch): the causes of a 422 Invalid, empty when it is valid.
   */
  readonly validate?: (type: ResourceType, obj: KubeObject) => readonly string[];
  readonly token?: string;
  /** How many watch events to keep for resuming watches. */
  readonly history?: number;
}

export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  readonly contentType: string | undefined;
}

export class FakeApiServer extends EventEmitter {
  readonly token: string;
  readonly requests: RequestRecord[] = [];
  /** Objects refused by `validate`, with why. */
  readonly invalid: { resource: string; name: string; causes: readonly string[] }[] = [];
  readonly #types: ResourceType[];
  /** key `${typeKey}|${ns}|${name}` -> object */
  readonly #objects = new Map<string, KubeObject>();
  readonly #events: WatchEvent[] = [];
  readonly #watchers = new Set<(e: WatchEvent) => void>();
  readonly #watchResponses = new Set<http.ServerResponse>();
  readonly #failures: { match: (m: string, p: string) => boolean; status: number; left: number }[] =
    [];
  #rv = 1;
  #uid = 0;
  #server: http.Server | undefined;
  #url = '';

  private constructor(readonly options: FakeApiServerOptions) {
    super();
    this.token = options.token ?? 'fake-token';
    this.#types = [...(options.resources ?? CORE_RESOURCES)];
  }

  static async start(options: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const s = new FakeApiServer(options);
    const server = http.createServer((req, res) => s.#handle(req, res));
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    s.#server = server;
    s.#url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return s;
  }

  get url(): string {
    return this.#url;
  }

  /** A KubeConfig for this server (token auth), as a kubeconfig file would give. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: this.#url, skipTLSVerify: true }],
      users: [{ name: 'plugin', token: this.token }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'plugin' }],
      currentContext: 'fake',
    });
    return kc;
  }

  /** The kubeconfig YAML for this server (for a CLI's --kubeconfig). */
  kubeConfigYaml(): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: fake\n  cluster:\n    server: ${this.#url}\n    insecure-skip-tls-verify: true`,
      'users:',
      `- name: plugin\n  user:\n    token: ${this.token}`,
      'contexts:',
      '- name: fake\n  context:\n    cluster: fake\n    user: plugin',
      'current-context: fake',
      '',
    ].join('\n');
  }

  async stop(): Promise<void> {
    this.#watchers.clear();
    const server = this.#server;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** End every open watch, as an API server does at its watch timeout or when it restarts. */
  dropWatches(): number {
    const n = this.#watchResponses.size;
    for (const res of this.#watchResponses) res.end();
    return n;
  }

  /** Make the next `count` requests matching `method` and a path regexp fail with `status`. */
  failNext(method: string, path: RegExp, status: number, count = 1): void {
    this.#failures.push({ match: (m, p) => m === method && path.test(p), status, left: count });
  }

  // ---- direct access (what kubectl would do)

  typeOf(resource: string, group = ''): ResourceType {
    const t = this.#types.find((x) => x.resource === resource && x.group === group);
    if (t === undefined) throw new Error(`no resource ${group}/${resource}`);
    return t;
  }

  get(resource: string, name: string, namespace?: string, group = ''): KubeObject | undefined {
    const o = this.#objects.get(this.#key(this.typeOf(resource, group), namespace, name));
    return o === undefined ? undefined : structuredClone(o);
  }

  list(resource: string, namespace?: string, group = ''): KubeObject[] {
    const t = this.typeOf(resource, group);
    return [...this.#objects.entries()]
      .filter(
        ([k]) =>
          k.startsWith(`${typeKey(t)}|${namespace ?? ''}|`) ||
          (namespace === undefined && k.startsWith(`${typeKey(t)}|`)),
      )
      .map(([, o]) => structuredClone(o));
  }

  /** Create or replace an object as an admin would (`kubectl apply`). */
  put(resource: string, obj: KubeObject, group = ''): KubeObject {
    const t = this.typeOf(resource, group);
    const ns = t.namespaced ? (obj.metadata.namespace ?? 'default') : undefined;
    const name = obj.metadata.name!;
    const key = this.#key(t, ns, name);
    const old = this.#objects.get(key);
    const next = this.#stamp(t, structuredClone(obj), ns, old);
    this.#store(t, key, next, old === undefined ? 'ADDED' : 'MODIFIED');
    return structuredClone(next);
  }

  /** Delete an object as an admin would (`kubectl delete`); false when there was none. */
  remove(resource: string, name: string, namespace?: string, group = ''): boolean {
    const t = this.typeOf(resource, group);
    const key = this.#key(t, t.namespaced ? (namespace ?? 'default') : undefined, name);
    const old = this.#objects.get(key);
    if (old === undefined) return false;
    this.#rv++;
    this.#store(t, key, undefined, 'DELETED', {
      ...old,
      metadata: { ...old.metadata, resourceVersion: String(this.#rv) },
    });
    return true;
  }

  /** Change a node's labels as `kubectl label node` does (null removes). */
  labelNode(name: string, labels: Record<string, string | null>): void {
    const t = this.typeOf('nodes');
    const key = this.#key(t, undefined, name);
    const old = this.#objects.get(key);
    if (old === undefined) throw new Error(`no node ${name}`);
    const next = structuredClone(old);
    next.metadata.labels = mergePatch(next.metadata.labels ?? {}, labels) as Record<string, string>;
    this.#store(t, key, this.#stamp(t, next, undefined, old), 'MODIFIED');
  }

  // ---- the store

  #key(t: ResourceType, ns: string | undefined, name: string): string {
    return `${typeKey(t)}|${ns ?? ''}|${name}`;
  }

  #stamp(
    t: ResourceType,
    obj: KubeObject,
    ns: string | undefined,
    old: KubeObject | undefined,
  ): KubeObject {
    obj.apiVersion = t.group === '' ? t.version : `${t.group}/${t.version}`;
    obj.kind = t.kind;
    // UIDs are UUIDs, as the API server makes them (a DRA driver names devices after them).
    obj.metadata.uid =
      old?.metadata.uid ??
      `00000000-0000-4000-a000-${(++this.#uid).toString(16).padStart(12, '0')}`;
    obj.metadata.creationTimestamp = old?.metadata.creationTimestamp ?? new Date().toISOString();
    if (ns !== undefined) obj.metadata.namespace = ns;
    else delete obj.metadata.namespace;
    obj.metadata.resourceVersion = String(++this.#rv);
    return obj;
  }

  #store(
    t: ResourceType,
    key: string,
    obj: KubeObject | undefined,
    type: WatchEvent['type'],
    deleted?: KubeObject,
  ): void {
    if (obj !== undefined) this.#objects.set(key, obj);
    else this.#objects.delete(key);
    const e: WatchEvent = {
      rv: this.#rv,
      key: typeKey(t),
      type,
      object: structuredClone(obj ?? deleted!),
    };
    this.#events.push(e);
    const keep = this.options.history ?? 10_000;
    if (this.#events.length > keep) this.#events.splice(0, this.#events.length - keep);
    for (const w of this.#watchers) w(e);
    this.emit('change', e.type, t.resource, e.object);
  }

  // ---- HTTP

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const method = req.method ?? 'GET';
    this.requests.push({ method, path: url.pathname, contentType: req.headers['content-type'] });
    const fail = this.#failures.find((f) => f.left > 0 && f.match(method, url.pathname));
    if (fail !== undefined) {
      fail.left--;
      return status(
        res,
        fail.status,
        'InternalError',
        `injected failure of ${method} ${url.pathname}`,
      );
    }
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      return status(res, 401, 'Unauthorized', 'Unauthorized');
    }
    const route = this.#route(url.pathname);
    if (route === undefined)
      return status(res, 404, 'NotFound', `the server could not find the requested resource`);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        const body = chunks.length === 0 ? undefined : Buffer.concat(chunks).toString('utf8');
        this.#dispatch(method, route, url, body, req, res);
      } catch (err) {
        status(res, 500, 'InternalError', (err as Error).message);
      }
    });
  }

  #route(path: string): Route | undefined {
    const parts = path.split('/').filter((p) => p !== '');
    let group: string;
    let version: string;
    let rest: string[];
    if (parts[0] === 'api' && parts.length >= 3) {
      group = '';
      version = parts[1]!;
      rest = parts.slice(2);
    } else if (parts[0] === 'apis' && parts.length >= 4) {
      group = parts[1]!;
      version = parts[2]!;
      rest = parts.slice(3);
    } else return undefined;
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = decodeURIComponent(rest[1]!);
      rest = rest.slice(2);
    }
    const type = this.#types.find(
      (t) => t.group === group && t.version === version && t.resource === rest[0],
    );
    if (type === undefined || rest.length > 2) return undefined;
    if (type.namespaced !== (namespace !== undefined) && rest.length === 2) return undefined;
    return {
      type,
      namespace,
      name: rest[1] === undefined ? undefined : decodeURIComponent(rest[1]),
    };
  }

  #dispatch(
    method: string,
    r: Route,
    url: URL,
    body: string | undefined,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): void {
    const { type: t } = r;
    if (r.name === undefined) {
      if (method === 'GET' && url.searchParams.get('watch') === 'true')
        return this.#watch(r, url, req, res);
      if (method === 'GET') return this.#listHttp(r, url, res);
      if (method === 'POST') {
        const obj = JSON.parse(body ?? '{}') as KubeObject;
        const ns = t.namespaced ? (r.namespace ?? obj.metadata.namespace) : undefined;
        let name = obj.metadata?.name;
        if ((name === undefined || name === '') && obj.metadata?.generateName !== undefined) {
          name = `${obj.metadata.generateName}${Math.random().toString(36).slice(2, 7)}`;
        }
        if (name === undefined || name === '')
          return status(res, 422, 'Invalid', 'metadata.name: Required value');
        const key = this.#key(t, ns, name);
        if (this.#objects.has(key))
          return status(res, 409, 'AlreadyExists', `${t.resource} "${name}" already exists`);
        obj.metadata.name = name;
        delete obj.metadata.generateName;
        const invalid = this.#invalid(t, obj);
        if (invalid !== undefined) return status(res, 422, 'Invalid', invalid);
        const made = this.#stamp(t, obj, ns, undefined);
        this.#store(t, key, made, 'ADDED');
        return json(res, 201, made);
      }
      return status(res, 405, 'MethodNotAllowed', `${method} not allowed`);
    }
    const key = this.#key(t, r.namespace, r.name);
    const old = this.#objects.get(key);
    if (method === 'GET') {
      return old === undefined ? notFound(res, t, r.name) : json(res, 200, old);
    }
    if (old === undefined && method !== 'PUT') return notFound(res, t, r.name);
    if (method === 'DELETE') {
      this.#rv++;
      this.#store(t, key, undefined, 'DELETED', {
        ...old!,
        metadata: { ...old!.metadata, resourceVersion: String(this.#rv) },
      });
      return json(res, 200, old);
    }
    if (method === 'PUT') {
      const obj = JSON.parse(body ?? '{}') as KubeObject;
      const rv = obj.metadata?.resourceVersion;
      if (
        old !== undefined &&
        rv !== undefined &&
        rv !== '' &&
        rv !== old.metadata.resourceVersion
      ) {
        return status(
          res,
          409,
          'Conflict',
          `Operation cannot be fulfilled on ${t.resource} "${r.name}": the object has been modified; please apply your changes to the latest version and try again`,
        );
      }
      obj.metadata.name = r.name;
      const invalid = this.#invalid(t, obj);
      if (invalid !== undefined) return status(res, 422, 'Invalid', invalid);
      const next = this.#stamp(t, obj, r.namespace, old);
      this.#store(t, key, next, old === undefined ? 'ADDED' : 'MODIFIED');
      return json(res, old === undefined ? 201 : 200, next);
    }
    if (method === 'PATCH') {
      const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
      const patch = JSON.parse(body ?? 'null') as unknown;
      let next: KubeObject;
      if (
        type === 'application/merge-patch+json' ||
        type === 'application/strategic-merge-patch+json'
      ) {
        next = mergePatch(structuredClone(old!), patch) as KubeObject;
      } else if (type === 'application/json-patch+json') {
        try {
          next = jsonPatch(structuredClone(old!), patch as JsonPatchOp[]);
        } catch (err) {
          return status(res, 422, 'Invalid', (err as Error).message);
        }
      } else {
        return status(
          res,
          415,
          'UnsupportedMediaType',
          `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`,
        );
      }
      next.metadata.name = r.name;
      const invalid = this.#invalid(t, next);
      if (invalid !== undefined) return status(res, 422, 'Invalid', invalid);
      const stamped = this.#stamp(t, next, r.namespace, old);
      this.#store(t, key, stamped, 'MODIFIED');
      return json(res, 200, stamped);
    }
    return status(res, 405, 'MethodNotAllowed', `${method} not allowed`);
  }

  /** The 422 message when `validate` finds the object invalid. */
  #invalid(t: ResourceType, obj: KubeObject): string | undefined {
    const causes = this.options.validate?.(t, obj) ?? [];
    if (causes.length === 0) return undefined;
    this.invalid.push({ resource: t.resource, name: obj.metadata.name ?? '', causes });
    return `${t.kind}.${t.group === '' ? '' : `${t.group}`} "${obj.metadata.name ?? ''}" is invalid: ${causes.join(', ')}`;
  }

  #selected(r: Route, url: URL): (o: KubeObject) => boolean {
    const fields = parseSelector(url.searchParams.get('fieldSelector'));
    const labels = parseSelector(url.searchParams.get('labelSelector'));
    return (o) => {
      if (r.namespace !== undefined && o.metadata.namespace !== r.namespace) return false;
      for (const [k, v] of fields) {
        // metadata.name, metadata.namespace, and the fields a resource
        // offers for selection (spec.nodeName, spec.driver of ResourceSlices)
        let actual: unknown = o;
        for (const part of k.split('.'))
          actual = (actual as Record<string, unknown> | undefined)?.[part];
        if ((actual === undefined || actual === null ? '' : String(actual)) !== v) return false;
      }
      for (const [k, v] of labels) if (o.metadata.labels?.[k] !== v) return false;
      return true;
    };
  }

  #listHttp(r: Route, url: URL, res: http.ServerResponse): void {
    const match = this.#selected(r, url);
    const items = [...this.#objects.entries()]
      .filter(([k]) => k.startsWith(`${typeKey(r.type)}|`))
      .map(([, o]) => o)
      .filter(match);
    json(res, 200, {
      apiVersion: r.type.group === '' ? r.type.version : `${r.type.group}/${r.type.version}`,
      kind: `${r.type.kind}List`,
      metadata: { resourceVersion: String(this.#rv) },
      items,
    });
  }

  #watch(r: Route, url: URL, req: http.IncomingMessage, res: http.ServerResponse): void {
    const match = this.#selected(r, url);
    const tk = typeKey(r.type);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const send = (type: string, object: unknown): void => {
      res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const rvParam = url.searchParams.get('resourceVersion') ?? '';
    if (rvParam === '' || rvParam === '0') {
      for (const [k, o] of this.#objects) if (k.startsWith(`${tk}|`) && match(o)) send('ADDED', o);
    } else {
      const from = Number(rvParam);
      const oldest = this.#events[0]?.rv ?? this.#rv + 1;
      if (!Number.isFinite(from) || (from < oldest - 1 && from < this.#rv)) {
        send('ERROR', {
          kind: 'Status',
          apiVersion: 'v1',
          status: 'Failure',
          message: `too old resource version: ${from} (${oldest - 1})`,
          reason: 'Expired',
          code: 410,
        });
        res.end();
        return;
      }
      for (const e of this.#events)
        if (e.rv > from && e.key === tk && match(e.object)) send(e.type, e.object);
    }
    const watcher = (e: WatchEvent): void => {
      if (e.key === tk && match(e.object)) send(e.type, e.object);
    };
    this.#watchers.add(watcher);
    // The response's close is the client going away (the request's own
    // 'close' fires as soon as its body has been read).
    this.#watchResponses.add(res);
    res.on('close', () => {
      this.#watchers.delete(watcher);
      this.#watchResponses.delete(res);
    });
  }
}

function typeKey(t: ResourceType): string {
  return `${t.group}/${t.version}/${t.resource}`;
}

function parseSelector(s: string | null): [string, string][] {
  if (s === null || s === '') return [];
  return s.split(',').map((part) => {
    const [k, v] = part.split(/==?/) as [string, string | undefined];
    return [k.trim(), (v ?? '').trim()];
  });
}

function json(res: http.ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function status(res: http.ServerResponse, code: number, reason: string, message: string): void {
  json(res, code, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
  });
}

function notFound(res: http.ServerResponse, t: ResourceType, name: string): void {
  status(res, 404, 'NotFound', `${t.resource} "${name}" not found`);
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target !== null && typeof target === 'object' && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

interface JsonPatchOp {
  op: 'add' | 'replace' | 'remove' | 'test';
  path: string;
  value?: unknown;
}

/** RFC 6902, the operations label edits use. */
function jsonPatch(target: KubeObject, ops: JsonPatchOp[]): KubeObject {
  for (const op of ops) {
    const parts = op.path
      .split('/')
      .slice(1)
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop();
    if (last === undefined) throw new Error(`bad path ${op.path}`);
    let node: Record<string, unknown> = target;
    for (const p of parts) {
      const next = node[p];
      if (next === null || typeof next !== 'object')
        throw new Error(`path ${op.path} does not exist`);
      node = next as Record<string, unknown>;
    }
    if (op.op === 'add' || op.op === 'replace') {
      if (op.op === 'replace' && !(last in node)) throw new Error(`path ${op.path} does not exist`);
      node[last] = op.value;
    } else if (op.op === 'remove') {
      if (!(last in node)) throw new Error(`path ${op.path} does not exist`);
      delete node[last];
    } else if (op.op === 'test' && JSON.stringify(node[last]) !== JSON.stringify(op.value)) {
      throw new Error(`test of ${op.path} failed`);
    }
  }
  return target;
}
