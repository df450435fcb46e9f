import { z } from 'zod';
import { readCapacity, readParentCapacity, readTypeCapacity } from '../../host/capacity.js';
import { desiredMetricsLines } from '../desired-metrics.js';
import { ApiError } from '../errors.js';
import { METRICS_CONTENT_TYPE, type TypeCapacity } from '../metrics.js';
import { route, type Route } from '../route.js';
import { Health, ParentInfo, ParentParams, TypeInfo, TypeParams } from '../schemas.js';
import type { AgentContext, ApiApp } from '../server.js';

/** Health, and the host's parents and types with their capacity (src/host/capacity.ts). */
export function hostRoutes(ctx: AgentContext): Route[] {
  const port = ctx.env.port;
  return [
    route({
      method: 'GET',
      path: '/healthz',
      outsideApi: true,
      public: true,
      tag: 'agent',
      summary: 'liveness',
      response: Health,
      handler: () => ({
        status: 'ok' as const,
        host: ctx.options.hostLabel,
        mode: ctx.options.mode,
      }),
    }),
    route({
      method: 'GET',
      path: '/parents',
      tag: 'parents',
      summary: 'registered mdev parents with their types and capacity',
      response: z.object({ parents: z.array(ParentInfo) }),
      handler: () => ({ parents: readCapacity(port) }),
    }),
    route({
      method: 'GET',
      path: '/parents/:parent',
      tag: 'parents',
      summary: 'one parent with its types',
      params: ParentParams,
      response: ParentInfo,
      handler({ params: { parent } }) {
        const p = readParentCapacity(port, parent);
        if (p !== undefined) return p;
        throw new ApiError(
          'parent-missing',
          `no registered mdev parent ${JSON.stringify(parent)}`,
          {
            parent,
          },
        );
      },
    }),
    route({
      method: 'GET',
      path: '/parents/:parent/types/:type',
      tag: 'parents',
      summary: 'one type of a parent',
      params: TypeParams,
      response: TypeInfo,
      handler({ params: { parent, type } }) {
        const t = readTypeCapacity(port, parent, type);
        if (t !== undefined) return t;
        throw new ApiError('type-unsupported', `parent ${parent} has no mdev type ${type}`, {
          parent,
          type,
        });
      },
    }),
  ];
}

/** Prometheus metrics: capacity per type, devices, operations, events (not in the API document). */
export function registerMetrics(app: ApiApp, ctx: AgentContext): void {
  const port = ctx.env.port;
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    const capacity: TypeCapacity[] = [];
    for (const p of readCapacity(port)) {
      for (const t of p.types) {
        capacity.push({
          parent: p.name,
          type: t.id,
          available: t.availableInstances,
          used: t.activeDevices,
        });
      }
    }
    let defined = 0;
    for (const d of ctx.view.all()) if (d.defined) defined++;
    const text =
      ctx.metrics.render(capacity, defined, ctx.view.skipped().length) +
      desiredMetricsLines(ctx.env).join('\n') +
      '\n';
    return reply.type(METRICS_CONTENT_TYPE).send(text);
  });
}
