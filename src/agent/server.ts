import fastifySwagger from '@fastify/swagger';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import {
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Environment } from '../host/environment.js';
import { ApiError, errnoOf, sendError } from './errors.js';
import type { HostEventSource } from './events.js';
import { EventHub } from './hub.js';
import { AgentMetrics } from './metrics.js';
import { registerRoutes } from './route.js';
import { apRoutes } from './routes/ap.js';
import { deviceRoutes } from './routes/devices.js';
import { eventRoutes } from './routes/events.js';
import { hostRoutes, registerMetrics } from './routes/host.js';
import { libvirtRoutes } from './routes/libvirt.js';
import { vfVgpuRoutes } from './routes/vf-vgpus.js';
import { registerWebRoutes } from './routes/web.js';
import { desiredRoutes } from './routes/desired.js';
import { DeviceView } from './device-view.js';
import { Operations, type WorkerPlan } from './operations.js';
import { MAX_PARAM_LENGTH, clientErrorHandler, frameworkErrors, installGuards } from './guard.js';

/**
 * The host agent: an HTTP API over one host's mdev state, its event stream,
 * its metrics and the dashboard. Everything it knows of the host comes
 * through the `Environment` (the sysfs port and the mdevctl config dir);
 * whether that is a real /sys or an in-process lab is decided by the caller
 * (src/cli/agent.ts), as is where change events come from.
 */
export interface AgentOptions {
  readonly env: Environment;
  /** Where host changes come from (lab uevents; or sysfs poller + config watcher). */
  readonly events: HostEventSource;
  /** The bearer token every write needs. */
  readonly token: string;
  /** Let writes through without the token (loopback or a unix socket only; the CLI checks). */
  readonly authDisabled?: boolean;
  /** Reads need the token too (listening beyond loopback). */
  readonly protectReads?: boolean;
  /**
   * Refuse requests whose Host header is not a loopback name: on a loopback
   * listener, anything else is DNS rebinding.
   */
  readonly loopbackOnly?: boolean;
  /** "lab" for the in-process emulated host, "host" for a real one. */
  readonly mode: 'lab' | 'host';
  /** Words for what the agent manages ("lab 'lab' (in-process)", "/"). */
  readonly hostLabel: string;
  /** Log requests (fastify's pino logger) — off in tests. */
  readonly logger?: boolean;
  /** Largest request body in bytes. */
  readonly bodyLimit?: number;
  /**
   * Who holds a device open (sysfs does not say): the lab's VMs, or this
   * machine's /dev/vfio users. Plans report such devices as blocked.
   */
  readonly inUse?: (uuid: string) => string | undefined;
  /**
   * Where writes that may wait (callouts, blocking sysfs stores) run off
   * the event loop (operations.ts); without it every write runs inline.
   */
  readonly worker?: WorkerPlan;
  /** Bytes one event-stream client may have waiting before it is dropped (default 1 MiB). */
  readonly streamBufferLimit?: number;
  /** Serve HTTPS with this certificate and key (PEM) instead of plain HTTP. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
}

/** What route modules share. */
export interface AgentContext {
  readonly options: AgentOptions;
  readonly env: Environment;
  readonly hub: EventHub;
  readonly metrics: AgentMetrics;
  readonly view: DeviceView;
  /** The open event streams, each as the bytes it has waiting. */
  readonly streams: Set<() => number>;
  /** The writes (mdevctl's operations), inline or in the operations worker. */
  readonly ops: Operations;
}

export type ApiApp = FastifyInstance;
export type TypedApp = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  ZodTypeProvider
>;

export const API_PREFIX = '/api/v1';
export const AGENT_VERSION = '0.1.0';

export interface Agent {
  readonly app: FastifyInstance;
  readonly context: AgentContext;
  close(): Promise<void>;
}

/** Names of query parameters whose values are secrets: never written to a log. */
const SECRET_NAME = /token|secret|passw|key|auth/i;

/**
 * Text as it may be logged: the values of secret-looking query parameters
 * (the event stream's `access_token`) replaced, wherever a request target
 * appears — the request line, and error messages that quote it. Names are
 * compared decoded, as the query parser decodes them (`access%5Ftoken`).
 */
export function redactSecrets(text: string): string {
  return text.replace(
    /([?&;])([^=&?#\s"'\\]*)=([^&#\s"'\\]*)/g,
    (whole, sep: string, name: string) => {
      let key = name;
      try {
        key = decodeURIComponent(name.replace(/\+/g, ' '));
      } catch {
        // not valid percent-encoding: compare it as it is
      }
      return SECRET_NAME.test(key) ? `${sep}${name}=[redacted]` : whole;
    },
  );
}

/**
 * The request log (MDEVKIT_AGENT_LOG=1): method, target with secrets
 * redacted, host and peer; error messages and stacks redacted the same
 * way. Headers are not logged, so neither is Authorization; should a
 * serializer ever add them, pino's redaction censors it.
 */
const REQUEST_LOG = {
  level: 'info',
  serializers: {
    req(req: FastifyRequest) {
      return {
        method: req.method,
        url: redactSecrets(req.url),
        host: req.host,
        remoteAddress: req.ip,
      };
    },
    err(err: Error & { code?: unknown }) {
      return {
        type: err.name,
        message: redactSecrets(err.message),
        ...(err.code === undefined ? {} : { code: String(err.code) }),
        stack: redactSecrets(err.stack ?? ''),
      };
    },
  },
  hooks: {
    logMethod(this: unknown, args: unknown[], method: (...a: unknown[]) => void): void {
      method.apply(
        this,
        args.map((a) => (typeof a === 'string' ? redactSecrets(a) : a)),
      );
    },
  },
  redact: {
    paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization'],
    censor: '[redacted]',
  },
};

export async function buildAgent(options: AgentOptions): Promise<Agent> {
  const app = Fastify({
    logger: options.logger === true ? REQUEST_LOG : false,
    bodyLimit: options.bodyLimit ?? 64 * 1024,
    // Paths carry UUIDs and sysfs names only; keep the router strict.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: MAX_PARAM_LENGTH },
    // Event streams never go idle; closing the agent must not wait for them.
    forceCloseConnections: true,
    // Refusals before routing get the API's error shape too (guard.ts).
    frameworkErrors,
    clientErrorHandler,
    ...(options.tls === undefined
      ? {}
      : { https: { cert: options.tls.cert, key: options.tls.key } }),
  }) as unknown as FastifyInstance;
  // Fastify hands a request without a body to the validator as null; to a
  // zod schema that is "no body" (undefined), so an optional body with a
  // default (POST .../start) takes it.
  app.setValidatorCompiler((route) => {
    const validate = validatorCompiler(route as Parameters<typeof validatorCompiler>[0]);
    return route.httpPart === 'body'
      ? (data: unknown) => validate(data === null ? undefined : data)
      : validate;
  });
  app.setSerializerCompiler(serializerCompiler);

  const metrics = new AgentMetrics();
  const hub = new EventHub(options.events);
  const view = new DeviceView(options.env, (s) =>
    hub.publish({ kind: 'definition-skipped', ...s }),
  );
  hub.subscribe(({ event }) => {
    metrics.event(event.kind);
    if (event.kind === 'parent-registered' || event.kind === 'parent-unregistered')
      view.forgetAll();
    // The view's own report of what it read: nothing changed on the host.
    else if (event.kind !== 'definition-skipped')
      view.invalidate('uuid' in event ? event.uuid : undefined);
  });
  const streams = new Set<() => number>();
  metrics.streamBufferedBytes = () => {
    let n = 0;
    for (const size of streams) n += size();
    return n;
  };
  const ops = new Operations(options.env, options.worker);
  const context: AgentContext = { options, env: options.env, hub, metrics, view, streams, ops };

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'mdevkit host agent',
        description:
          "Mediated devices (VFIO mdev) of one host: parents, types and capacity; devices and their lifecycle (as mdevctl); aggregation; change events; metrics. Writes need `Authorization: Bearer <token>` (the token is in the agent's state directory).",
        version: AGENT_VERSION,
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      },
    },
    transform: jsonSchemaTransform,
  });

  installGuards(app, options);
  app.setErrorHandler((err, req, reply) => {
    failures.set(req, errnoOf(err));
    return sendError(err, req, reply);
  });
  // Operations and their errors, for /metrics: routes name their operation in `config`.
  const failures = new WeakMap<FastifyRequest, string>();
  app.addHook('onResponse', async (req, reply) => {
    const op = (req.routeOptions.config as { operation?: string } | undefined)?.operation;
    if (op === undefined) return;
    metrics.operation(op, reply.statusCode >= 400 ? (failures.get(req) ?? 'unknown') : undefined);
  });
  app.setNotFoundHandler((req, reply) =>
    sendError(
      new ApiError('route-unknown', `no such resource: ${req.method} ${req.url.split('?')[0]}`),
      req,
      reply,
    ),
  );

  registerRoutes(app, [
    ...hostRoutes(context),
    ...deviceRoutes(context),
    ...libvirtRoutes(context),
    ...apRoutes(context),
    ...vfVgpuRoutes(context),
    ...desiredRoutes(context),
    ...eventRoutes(context),
  ]);
  registerMetrics(app, context);
  // The dashboard's files hold no host data: public, so a browser beyond
  // loopback can load the page that then asks for the token.
  await app.register(async (scope) => {
    scope.addHook('onRoute', (r) => {
      r.config = { ...r.config, public: true };
    });
    registerWebRoutes(scope);
  });

  app.get('/openapi.json', { schema: { hide: true }, config: { public: true } }, async () =>
    app.swagger(),
  );

  await app.ready();
  return {
    app,
    context,
    async close() {
      hub.close();
      await app.close();
      await ops.close();
    },
  };
}
