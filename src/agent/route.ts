import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ErrorBody } from './schemas.js';
import { API_PREFIX, type ApiApp } from './server.js';

/**
 * One route of the API, declared: method and path, what it is for (the
 * OpenAPI summary and tags), the zod schemas of its parameters, query,
 * body and answer, and a handler that gets them parsed. The rest is the
 * same for every route and done here once: the path below /api/v1, the
 * error answers every route may give, the bearer token (in the OpenAPI
 * document; guard.ts enforces it), and the operation name a
 * write carries into the metrics and error bodies.
 */

type Schema = z.ZodType;
type Out<S> = S extends Schema ? z.output<S> : undefined;
/**
 * What a handler answers with: the response schema's input (it is
 * serialized through it), read-only throughout, so the library's
 * read-only data goes out as it is.
 */
type Answer<R> = R extends Schema ? ReadOnlyDeep<z.input<R>> : void;
type ReadOnlyDeep<T> = T extends readonly (infer U)[]
  ? readonly ReadOnlyDeep<U>[]
  : T extends object
    ? { readonly [K in keyof T]: ReadOnlyDeep<T[K]> }
    : T;

export interface RouteInput<P, Q, B> {
  readonly params: Out<P>;
  readonly query: Out<Q>;
  readonly body: Out<B>;
  readonly req: FastifyRequest;
  readonly reply: FastifyReply;
}

export interface RouteSpec<
  P extends Schema | undefined,
  Q extends Schema | undefined,
  B extends Schema | undefined,
  R extends Schema | undefined,
> {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Below /api/v1 ("/devices/:uuid"); with `outsideApi`, the whole path ("/healthz"). */
  readonly path: string;
  readonly outsideApi?: boolean;
  readonly summary: string;
  readonly description?: string;
  readonly tag: string;
  /** A write's name in the metrics and in error bodies ("create", "ap-assign"). */
  readonly operation?: string;
  /**
   * Answers without the token even beyond loopback: only for what holds no
   * host data (health). Every other route needs the token beyond loopback,
   * and every write needs it everywhere (guard.ts decides on this flag of
   * the route the router chose, never on the URL's spelling).
   */
  readonly public?: true;
  /** Also takes the token as `?access_token=` (the event stream: EventSource sends no headers). */
  readonly queryToken?: true;
  readonly params?: P;
  readonly query?: Q;
  readonly body?: B;
  /** The success answer; absent when the handler answers itself (a stream). */
  readonly response?: R;
  /** The success status: 200 (default), 201 (created) or 204 (no body). */
  readonly status?: 200 | 201 | 204;
  /** Content types other than JSON the answer comes in (then the handler sends it). */
  readonly produces?: readonly string[];
  /**
   * The answer's data (sent with `status`), or the reply when the handler
   * has sent something else itself (a 304, XML, a pre-serialized page).
   */
  handler(input: RouteInput<P, Q, B>): Promise<Answer<R> | FastifyReply> | Answer<R> | FastifyReply;
}

/** A declared route, ready to register. */
export interface Route {
  register(app: ApiApp): void;
}

/** Every API route may answer with these, in the one error shape (errors.ts). */
const API_ERRORS = {
  400: ErrorBody,
  401: ErrorBody,
  403: ErrorBody,
  404: ErrorBody,
  409: ErrorBody,
  500: ErrorBody,
};

export function route<
  P extends Schema | undefined = undefined,
  Q extends Schema | undefined = undefined,
  B extends Schema | undefined = undefined,
  R extends Schema | undefined = undefined,
>(spec: RouteSpec<P, Q, B, R>): Route {
  const status = spec.status ?? 200;
  const ok = status === 204 ? z.null() : spec.response;
  const schema = {
    summary: spec.summary,
    ...(spec.description === undefined ? {} : { description: spec.description }),
    tags: [spec.tag],
    // Reads need the token beyond loopback, writes everywhere; public routes never.
    security: spec.public === true ? [] : [{ bearer: [] }],
    ...(spec.params === undefined ? {} : { params: spec.params }),
    ...(spec.query === undefined ? {} : { querystring: spec.query }),
    ...(spec.body === undefined ? {} : { body: spec.body }),
    ...(spec.produces === undefined ? {} : { produces: [...spec.produces] }),
    ...(ok === undefined
      ? {}
      : { response: { [status]: ok, ...(spec.outsideApi === true ? {} : API_ERRORS) } }),
  };
  return {
    register(app) {
      app.withTypeProvider<ZodTypeProvider>().route({
        method: spec.method,
        url: spec.outsideApi === true ? spec.path : `${API_PREFIX}${spec.path}`,
        schema,
        config: {
          ...(spec.operation === undefined ? {} : { operation: spec.operation }),
          ...(spec.public === true ? { public: true } : {}),
          ...(spec.queryToken === true ? { queryToken: true } : {}),
        },
        async handler(req, reply) {
          // Validated by the schemas above (fastify-type-provider-zod) before we get here.
          const out = spec.handler({
            params: req.params as Out<P>,
            query: req.query as Out<Q>,
            body: req.body as Out<B>,
            req,
            reply,
          });
          // A reply is a thenable (it settles when the answer has gone out),
          // so only a promise is awaited: awaiting a returned reply would wait
          // for an event stream to end and then answer it a second time.
          const result = out instanceof Promise ? await out : out;
          if (result === reply || reply.sent) return reply;
          if (status === 204) return reply.code(204).send(null);
          return reply.code(status).send(result);
        },
      });
    },
  };
}

/** Register routes on the app. */
export function registerRoutes(app: ApiApp, routes: readonly Route[]): void {
  for (const r of routes) r.register(app);
}
