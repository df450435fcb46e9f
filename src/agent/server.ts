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
import { bearerToken, isLoopbackHostHeader, tokenMatches } from './auth.js';
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
import { registerWebRoutes } from './routes/web.js';
import { desiredRoutes } from './routes/desired.js';
import { DeviceView } from './device-view.js';

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
}

/** What route modules share. */
export interface AgentContext {
  readonly options: AgentOptions;
  readonly env: Environment;
  readonly hub: EventHub;
  readonly metrics: AgentMetrics;
  readonly view: DeviceView;
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

function isWrite(req: FastifyRequest): boolean {
  return req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'OPTIONS';
}

export interface Agent {
  readonly app: FastifyInstance;
  readonly context: AgentContext;
  close(): Promise<void>;
}

export async function buildAgent(options: AgentOptions): Promise<Agent> {
  const app = Fastify({
    logger: options.logger === true ? { level: 'info' } : false,
    bodyLimit: options.bodyLimit ?? 64 * 1024,
    // Paths carry UUIDs and sysfs names only; keep the router strict.
    routerOptions: { ignoreTrailingSlash: true },
    // Event streams never go idle; closing the agent must not wait for them.
    forceCloseConnections: true,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  const metrics = new AgentMetrics();
  const hub = new EventHub(options.events);
  const view = new DeviceView(options.env);
  hub.subscribe(({ event }) => {
    metrics.event(event.kind);
    if (event.kind === 'parent-registered' || event.kind === 'parent-unregistered')
      view.forgetAll();
    else view.invalidate('uuid' in event ? event.uuid : undefined);
  });
  const context: AgentContext = { options, env: options.env, hub, metrics, view };

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

  app.addHook('onRequest', async (req) => {
    if (options.loopbackOnly === true && !isLoopbackHostHeader(req.headers.host)) {
      throw new ApiError(
        'host-refused',
        `refused Host ${JSON.stringify(req.headers.host)}: this agent answers loopback names only`,
      );
    }
    const url = req.url;
    const needsToken =
      (isWrite(req) && options.authDisabled !== true) ||
      (options.protectReads === true && url.startsWith(API_PREFIX));
    if (!needsToken) return;
    let presented = bearerToken(req.headers.authorization);
    // EventSource cannot set headers; the stream alone takes the token in the query.
    if (presented === undefined && url.startsWith(`${API_PREFIX}/events`)) {
      presented =
        new URLSearchParams(url.slice(url.indexOf('?') + 1)).get('access_token') ?? undefined;
    }
    if (!tokenMatches(presented, options.token)) {
      throw new ApiError(
        'unauthorized',
        presented === undefined
          ? 'this request needs the agent token: Authorization: Bearer <token>'
          : 'wrong agent token',
      );
    }
  });

  registerRoutes(app, [
    ...hostRoutes(context),
    ...deviceRoutes(context),
    ...libvirtRoutes(context),
    ...apRoutes(context),
    ...desiredRoutes(context),
    ...eventRoutes(context),
  ]);
  registerMetrics(app, context);
  registerWebRoutes(app);

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.ready();
  return {
    app,
    context,
    async close() {
      hub.close();
      await app.close();
    },
  };
}
