import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { applyJson, planJson } from '../../ctl/desired/render.js';
import { parseConfigText } from '../../host/desired/config.js';
import {
  applyHost,
  desiredStatus,
  drainParent,
  hostCapacity,
  ownershipEntries,
  planHost,
} from '../../host/desired/engine.js';
import { route, type Route } from '../route.js';
import { ParentParams, SysfsName } from '../schemas.js';
import type { AgentContext } from '../server.js';

/**
 * The desired-state engine over HTTP (src/host/desired): plan and apply a
 * configuration sent in the body (YAML text: a request never names a file
 * on the agent's host), the desired state next to the actual one,
 * capacity per type by the vendors' rules, the ownership record, and
 * drain. Apply and drain hold the host's apply lock; apply's steps go out
 * on the event stream as `apply-progress`, its end as `apply-finished`.
 */

/** Who asks, as an owner name: `api:<client>` from X-Mdevkit-Client, else `api:agent`. */
export function clientOwner(req: FastifyRequest): string {
  const h = req.headers['x-mdevkit-client'];
  const client = typeof h === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(h) ? h : 'agent';
  return `api:${client}`;
}

const ConfigBody = z.object({
  yaml: z.string().min(1).max(60_000).describe('the host configuration file, as YAML text'),
  config: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/)
    .default('default')
    .describe('which configuration of the file'),
  prune: z
    .boolean()
    .default(false)
    .describe("remove this configuration's devices it no longer wants"),
  adopt: z.boolean().default(false).describe('take over matching devices no one recorded'),
});

const ApplyBody = ConfigBody.extend({
  dryRun: z.boolean().default(false),
  wait: z.boolean().default(false).describe('wait for another apply instead of answering 409'),
});

const PlanItem = z
  .object({
    action: z.string(),
    reason: z.string(),
    uuid: z.string().optional(),
    parent: z.string().optional(),
    type: z.string().optional(),
    field: z.string().optional(),
    owner: z.string().optional(),
  })
  .passthrough();

const Plan = z.object({
  file: z.string(),
  config: z.string(),
  owner: z.string(),
  policy: z.string(),
  prune: z.boolean(),
  adopt: z.boolean(),
  counts: z.record(z.string(), z.number()),
  items: z.array(PlanItem),
});

const ApplyResult = z.object({
  plan: Plan,
  result: z
    .object({
      created: z.number(),
      removed: z.number(),
      modified: z.number(),
      started: z.number(),
      adopted: z.number(),
      forgotten: z.number(),
      kept: z.number(),
      blocked: z.number(),
      failed: z.number(),
      stale: z.number(),
      foreign: z.number(),
      steps: z.array(z.object({}).passthrough()),
    })
    .nullable(),
});

export const Owner = z.object({
  uuid: z.string(),
  parent: z.string(),
  type: z.string(),
  owner: z.string().describe('config:NAME (apply) or api:CLIENT (this API)'),
  state: z.enum(['creating', 'owned']),
  since: z.string(),
});

const CapacityCell = z.object({
  parent: z.string(),
  model: z.string(),
  more: z.number(),
  why: z.string().optional(),
  drained: z.boolean().optional(),
});

export const Capacity = z.object({
  types: z.array(
    z.object({
      type: z.string(),
      name: z.string().optional(),
      framebufferMb: z.number().optional(),
      more: z.number(),
      parents: z.array(CapacityCell),
    }),
  ),
  parents: z.array(
    z.object({
      parent: z.string(),
      model: z.string(),
      devices: z.number(),
      counters: z.array(z.object({ name: z.string(), capacity: z.number(), used: z.number() })),
      fragmentation: z.number(),
    }),
  ),
});

export const Status = z.object({
  configs: z.array(
    z.object({
      config: z.string(),
      owner: z.string(),
      file: z.string(),
      at: z.string(),
      wanted: z.array(z.object({ parent: z.string(), type: z.string(), count: z.number() })),
      blocked: z.array(z.string()),
      failed: z.number(),
    }),
  ),
  rows: z.array(
    z.object({
      config: z.string(),
      parent: z.string(),
      type: z.string(),
      wanted: z.number(),
      actual: z.number(),
    }),
  ),
});

const Drain = z.object({
  parent: z.string(),
  removed: z.array(z.string()),
  open: z.array(z.object({ uuid: z.string(), why: z.string() })),
  foreign: z.array(z.string()),
  failed: z.array(z.object({ uuid: z.string(), error: z.string() })),
});

/** undefined fields out: the response schemas describe absent, not undefined. */
const plain = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

export function desiredRoutes(ctx: AgentContext): Route[] {
  const env = ctx.env;
  const hostOptions = () => ({
    ...(ctx.options.inUse !== undefined && { inUse: ctx.options.inUse }),
  });
  const file = (yaml: string) => parseConfigText(yaml, 'request body');
  return [
    route({
      method: 'POST',
      path: '/desired/plan',
      tag: 'desired state',
      operation: 'plan',
      summary: 'what applying a host configuration would change (changes nothing)',
      description:
        'The body carries the configuration file as YAML text. Every item says its action (create, keep, modify, start, adopt, remove, stale, blocked, foreign, forget) and why.',
      body: ConfigBody,
      response: Plan,
      handler({ body }) {
        const { plan } = planHost(env, file(body.yaml), {
          ...hostOptions(),
          config: body.config,
          prune: body.prune,
          adopt: body.adopt,
        });
        return plain(planJson(plan)) as z.input<typeof Plan>;
      },
    }),
    route({
      method: 'POST',
      path: '/desired/apply',
      tag: 'desired state',
      operation: 'apply',
      summary: 'make the host match a host configuration (one apply at a time)',
      description:
        "Idempotent: matching devices and their UUIDs are kept. Removes only this configuration's devices (with prune), never an open one. Steps are sent on the event stream as apply-progress. 409 EBUSY while another apply runs (unless wait).",
      body: ApplyBody,
      response: ApplyResult,
      async handler({ body }) {
        const { plan, summary } = await applyHost(env, file(body.yaml), {
          ...hostOptions(),
          config: body.config,
          prune: body.prune,
          adopt: body.adopt,
          dryRun: body.dryRun,
          wait: body.wait,
          onEvent(e) {
            if (e.kind === 'step') {
              const r = e.result;
              ctx.hub.publish({
                kind: 'apply-progress',
                config: body.config,
                done: e.done,
                total: e.total,
                action: r.item.action,
                ...(r.item.parent !== undefined && { parent: r.item.parent }),
                ...(r.uuid !== undefined && { uuid: r.uuid }),
                ok: r.ok,
                ...(r.error !== undefined && { error: r.error }),
              });
            } else if (e.kind === 'end') {
              const s = e.summary;
              ctx.hub.publish({
                kind: 'apply-finished',
                config: body.config,
                created: s.created,
                removed: s.removed,
                kept: s.kept,
                blocked: s.blocked,
                failed: s.failed,
              });
            }
          },
        });
        ctx.view.invalidate();
        return plain(applyJson(plan, summary)) as z.input<typeof ApplyResult>;
      },
    }),
    route({
      method: 'GET',
      path: '/desired/status',
      tag: 'desired state',
      summary:
        'desired next to actual: what the last apply of each configuration wanted, and what runs',
      response: Status,
      handler: () => plain(desiredStatus(env)),
    }),
    route({
      method: 'GET',
      path: '/desired/capacity',
      tag: 'desired state',
      summary:
        "how many more devices of each type fit, by the vendors' rules, and why none where none",
      description:
        'Per type and parent; per parent its counters (framebuffer, aperture, queues, instances: capacity and used) and fragmentation (the share of free capacity no single type can use).',
      query: z.object({ type: SysfsName.optional() }),
      response: Capacity,
      handler: ({ query }) =>
        plain(
          hostCapacity(env, {
            ...hostOptions(),
            ...(query.type !== undefined && { type: query.type }),
          }),
        ),
    }),
    route({
      method: 'GET',
      path: '/owners',
      tag: 'desired state',
      summary: 'the ownership record: who made each device mdevkit made',
      response: z.object({ owners: z.array(Owner) }),
      handler: () => ({ owners: ownershipEntries(env) }),
    }),
    route({
      method: 'POST',
      path: '/parents/:parent/drain',
      tag: 'desired state',
      operation: 'drain',
      summary: "stop placing devices on a parent and remove mdevkit's idle devices there",
      params: ParentParams,
      query: z.object({ undo: z.coerce.boolean().default(false) }),
      response: Drain,
      async handler({ params, query }) {
        const r = await drainParent(env, params.parent, { ...hostOptions(), undo: query.undo });
        ctx.view.invalidate();
        return plain(r);
      },
    }),
  ];
}
