import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { bearerToken, isLoopbackHostHeader, tokenMatches } from './auth.js';
import { ApiError, apiErrorAnswer, sendError } from './errors.js';
import type { AgentOptions, ApiApp } from './server.js';

/*
 * What a request must be before any route sees it: from a loopback name on
 * a loopback listener, carrying the token where one is needed, from the
 * agent's own origin when it writes, with a JSON body if any, and small.
 * Refusals made here, and those made by the router and the HTTP parser
 * before a request exists (a malformed URL, a 414, a 431), all get the
 * API's error shape.
 *
 * The token decision is made on the route the router chose, never on the
 * raw URL: the router decodes percent-escapes, so a check of `req.url`
 * against "/api/v1" let `/%61pi/v1/devices` through (issue 12). Access is
 * deny-by-default: beyond loopback every request needs the token unless
 * its route is declared public (health, the dashboard's static files, the
 * OpenAPI document), and a request no route matched is not public either.
 */

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A write's name in the metrics and error bodies ("create", "ap-assign"). */
    operation?: string;
    /** Answers without the token beyond loopback (holds no host data). */
    public?: boolean;
    /** Takes the token from `?access_token=` too: EventSource cannot send headers. */
    queryToken?: boolean;
  }
}

/** Longest request target; a sysfs path is at most a few hundred bytes. */
export const MAX_URL_LENGTH = 4096;
/** Longest path parameter before percent-decoding: a 255-byte sysfs name, every byte escaped. */
export const MAX_PARAM_LENGTH = 3 * 255;

function isWrite(method: string): boolean {
  return method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS';
}

function presentedToken(req: FastifyRequest): string | undefined {
  const fromHeader = bearerToken(req.headers.authorization);
  if (fromHeader !== undefined || req.routeOptions.config.queryToken !== true) return fromHeader;
  const q = (req.query as Record<string, unknown> | undefined)?.['access_token'];
  return typeof q === 'string' ? q : undefined;
}

/**
 * A write from a browser must come from the agent's own page. Browsers
 * send Origin with every cross-origin POST/PUT/PATCH/DELETE, including the
 * "simple" ones that need no CORS preflight (a form, or fetch without a
 * body) — the ones that, with `--no-auth` on loopback, let any web page
 * stop a device. Sec-Fetch-Site says the same where the browser sends it.
 * Tools (curl, scripts, mdevctl-like clients) send neither and pass.
 */
function refusedOrigin(req: FastifyRequest, scheme: 'http' | 'https'): string | undefined {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    return `refused a ${site} write: writes come from the agent's own page or from tools`;
  }
  const origin = req.headers.origin;
  if (origin === undefined) return undefined;
  const own = req.headers.host === undefined ? undefined : `${scheme}://${req.headers.host}`;
  if (own !== undefined && origin.toLowerCase() === own.toLowerCase()) return undefined;
  return `refused a write from origin ${JSON.stringify(origin)}: writes come from the agent's own page (${own ?? 'no Host'}) or from tools`;
}

export function installGuards(app: ApiApp, options: AgentOptions): void {
  const scheme = options.tls === undefined ? 'http' : 'https';
  app.addHook('onRequest', async (req) => {
    if (options.loopbackOnly === true && !isLoopbackHostHeader(req.headers.host)) {
      throw new ApiError(
        'host-refused',
        `refused Host ${JSON.stringify(req.headers.host)}: this agent answers loopback names only`,
      );
    }
    if (req.url.length > MAX_URL_LENGTH) {
      throw new ApiError('uri-too-long', `request target longer than ${MAX_URL_LENGTH} bytes`);
    }
    const write = isWrite(req.method);
    const needsToken =
      (write && options.authDisabled !== true) ||
      (options.protectReads === true && req.routeOptions.config.public !== true);
    if (needsToken) {
      const presented = presentedToken(req);
      if (!tokenMatches(presented, options.token)) {
        throw new ApiError(
          'unauthorized',
          presented === undefined
            ? 'this request needs the agent token: Authorization: Bearer <token>'
            : 'wrong agent token',
        );
      }
    }
    if (write) {
      const why = refusedOrigin(req, scheme);
      if (why !== undefined) throw new ApiError('origin-refused', why);
    }
  });

  // Bodies are JSON or nothing. Fastify also parses text/plain by default,
  // the one body type a cross-site form or a no-cors fetch can send without
  // a preflight; without that parser such a body is a 415. An empty JSON
  // body is no body (POST .../start takes an optional one).
  app.removeContentTypeParser('text/plain');
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, text, done) => {
    if (String(text).trim() === '') {
      done(null, undefined);
      return;
    }
    parseJson(req, String(text), done);
  });
}

/**
 * Fastify's refusals before a request reaches a route (a URL that is not
 * valid percent-encoding, a path parameter over MAX_PARAM_LENGTH), in the
 * API's shape.
 */
export function frameworkErrors(
  error: FastifyError,
  req: FastifyRequest,
  reply: FastifyReply,
): void {
  const err =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new ApiError('uri-too-long', `a path parameter is longer than ${MAX_PARAM_LENGTH} bytes`)
      : new ApiError(
          'invalid-request',
          'malformed request target (invalid percent-encoding or UTF-8)',
        );
  void sendError(err, req, reply);
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};

/**
 * The HTTP parser's refusals (malformed request, headers too large, too
 * slow), which come before fastify has a request: answered on the socket
 * in the API's shape, then the connection is closed as Node would.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const refusal =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new ApiError('headers-too-large', 'request headers too large')
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new ApiError('request-timeout', 'the request took too long to arrive')
        : new ApiError('invalid-request', 'malformed HTTP request');
  const { status, body } = apiErrorAnswer(refusal);
  const text = JSON.stringify(body);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}
