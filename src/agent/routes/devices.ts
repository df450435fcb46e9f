import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import {
  AGGREGATION_VALUE,
  aggregationTarget,
  readAggregation,
  setAggregation,
} from '../../host/aggregation.js';
import { deleteConfig } from '../../host/config-store.js';
import { getDefinedDevice } from '../../host/devices.js';
import { assertMayRemove, forgetOwner, recordOwner } from '../../host/desired/engine.js';
import { toApi, type ApiDevice, type SkippedDefinition } from '../device-view.js';
import { ApiError, during } from '../errors.js';
import { route, type Route } from '../route.js';
import { clientOwner } from './desired.js';
import {
  Aggregation,
  Attribute,
  Device,
  DeviceList,
  DeviceListQuery,
  DeviceParams,
  StartMode as StartModeSchema,
  SysfsName,
  Uuid,
} from '../schemas.js';
import type { AgentContext } from '../server.js';

/**
 * The mdevctl operations over src/host/devices.ts, and aggregation over
 * src/host/aggregation.ts: parse, call, answer.
 */

const CreateBody = z.object({
  uuid: Uuid.optional().describe('made up when absent'),
  parent: SysfsName,
  type: SysfsName,
  start: StartModeSchema.default('manual').describe('start mode of the definition'),
  attrs: z.array(Attribute).max(256).default([]),
  define: z.boolean().default(true).describe('store a persistent definition (mdevctl define)'),
  activate: z.boolean().default(false).describe('create the device now (mdevctl start)'),
});

const ModifyBody = z
  .object({
    parent: SysfsName.optional().describe('which definition, when several parents define the UUID'),
    type: SysfsName.optional(),
    start: StartModeSchema.optional(),
    attrs: z.array(Attribute).max(256).optional().describe('replaces the attribute list'),
  })
  .refine((b) => b.type !== undefined || b.start !== undefined || b.attrs !== undefined, {
    message: 'nothing to change: give type, start or attrs',
  });

const ParentQuery = z.object({ parent: SysfsName.optional() });
/**
 * Removals: a device another owner made (a configuration, another client,
 * or a tool mdevkit has no record of) is refused with 409 EPERM unless
 * `force` says to go ahead anyway.
 */
const RemoveQuery = ParentQuery.extend({
  force: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => v === 'true' || v === '1')
    .describe("remove it even when it is not this client's (another owner's, or unrecorded)"),
});
const StartBody = z.object({ parent: SysfsName.optional() }).default({});
const AggregationBody = z.object({
  value: z
    .number()
    .int()
    .min(1)
    .max(1 << 20),
});

/** Opaque cursors: the position after the last entry returned. */
function encodeCursor(d: ApiDevice): string {
  return Buffer.from(`${d.parent}/${d.uuid}`).toString('base64url');
}
function decodeCursor(cursor: string): string {
  const text = Buffer.from(cursor, 'base64url').toString();
  if (!/^[^/]+\/[0-9a-f-]{36}$/.test(text)) throw new ApiError('invalid-request', 'invalid cursor');
  return text;
}

/** Serialized listing pages of the current generation of the view, by request URL. */
const PAGE_CACHE_ENTRIES = 64;

export function deviceRoutes(ctx: AgentContext): Route[] {
  const pageCache = { generation: -1, pages: new Map<string, string>() };
  const env = ctx.env;

  /** The one entry for `uuid` (on `parent`); 404 or 409 otherwise. */
  const one = (uuid: string, parent?: string): ApiDevice => {
    const all = ctx.view.byUuid(uuid).filter((d) => parent === undefined || d.parent === parent);
    if (all.length === 0) {
      const where = parent === undefined ? uuid : `${parent}/${uuid}`;
      throw new ApiError('device-unknown', `no mediated device ${where}`, {
        uuid,
        ...(parent === undefined ? {} : { parent }),
      });
    }
    if (all.length > 1) {
      throw new ApiError(
        'ambiguous',
        `device ${uuid} is defined on several parents; say which with ?parent=`,
        { uuid },
      );
    }
    return all[0]!;
  };

  /** An ownership check or record update (its refusal is a library error: not-owner, 403). */
  const owned = async (fn: () => unknown): Promise<void> => {
    await fn();
  };
  /**
   * Remove the definition files of `uuid` (on `parent`) that the listing
   * skipped as unreadable; returns how many. The library refuses to read
   * them (as mdevctl does), and no callout can be told about a device
   * whose type is unknown, so the agent removes the file itself: removing
   * a broken definition is how an operator repairs the listing.
   */
  const removeSkipped = (uuid: string, parent: string | undefined): number => {
    const broken = ctx.view
      .skipped()
      .filter((s) => s.uuid === uuid && (parent === undefined || s.parent === parent));
    for (const s of broken) deleteConfig(env.configDir, s.parent, s.uuid);
    if (broken.length > 0) ctx.view.invalidate(uuid);
    return broken.length;
  };
  const definedHere = (uuid: string, parent: string | undefined): boolean =>
    ctx.view.byUuid(uuid).some((d) => d.defined && (parent === undefined || d.parent === parent));

  /** Run a change, then let the view know (also when it failed half-way). */
  const changing = <T>(uuid: string | undefined, fn: () => T): T => {
    try {
      return fn();
    } finally {
      ctx.view.invalidate(uuid);
    }
  };
  /** The same for a write run by ctx.ops (in the operations worker when it may wait). */
  const changingLater = async <T>(uuid: string | undefined, p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } finally {
      ctx.view.invalidate(uuid);
    }
  };

  const listDevices = route({
    method: 'GET',
    path: '/devices',
    tag: 'devices',
    summary: 'active and defined devices, merged as mdevctl list shows them',
    description:
      'Sorted by parent, then UUID. Pages of `limit` entries; follow `next`. An ETag changes with every change of the host, so polling with If-None-Match is cheap.',
    query: DeviceListQuery,
    response: DeviceList,
    handler({ query, req, reply }): FastifyReply {
      const { parent, type, state, limit, cursor } = query;
      const generation = ctx.view.generation;
      const etag = `"g${generation}"`;
      reply.header('etag', etag).header('cache-control', 'no-cache');
      if (req.headers['if-none-match'] === etag) return reply.code(304).send(null as never);
      const json = 'application/json; charset=utf-8';
      // Many clients polling the same page between two changes get the same bytes.
      if (pageCache.generation !== generation) {
        pageCache.generation = generation;
        pageCache.pages.clear();
      }
      const cached = pageCache.pages.get(req.url);
      if (cached !== undefined) return reply.type(json).send(cached as never);
      const all = ctx.view.all();
      const filtered =
        parent === undefined && type === undefined && state === 'all'
          ? all
          : all.filter(
              (d) =>
                (parent === undefined || d.parent === parent) &&
                (type === undefined || d.type === type) &&
                (state === 'all' || (state === 'active' ? d.active : d.defined)),
            );
      let start = 0;
      if (cursor !== undefined) {
        const after = decodeCursor(cursor);
        // Binary search: the list is sorted by parent/uuid.
        let lo = 0;
        let hi = filtered.length;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          const d = filtered[mid]!;
          if (`${d.parent}/${d.uuid}` <= after) lo = mid + 1;
          else hi = mid;
        }
        start = lo;
      }
      const page = filtered.slice(start, start + limit);
      const body: {
        total: number;
        devices: ApiDevice[];
        next?: string;
        skipped: readonly SkippedDefinition[];
      } = {
        total: filtered.length,
        devices: page,
        skipped: ctx.view.skipped(),
      };
      if (start + limit < filtered.length) body.next = encodeCursor(page[page.length - 1]!);
      // Serialized here: the entries are plain data the view built, and
      // validating ten thousand of them per request would be the slowest part.
      const text = JSON.stringify(body);
      if (pageCache.pages.size >= PAGE_CACHE_ENTRIES) pageCache.pages.clear();
      pageCache.pages.set(req.url, text);
      return reply.type(json).send(text as never);
    },
  });

  return [
    listDevices,
    route({
      method: 'GET',
      path: '/devices/:uuid',
      tag: 'devices',
      summary: 'one device',
      params: DeviceParams,
      query: ParentQuery,
      response: Device,
      handler: ({ params, query }) => one(params.uuid, query.parent),
    }),
    route({
      method: 'POST',
      path: '/devices',
      tag: 'devices',
      operation: 'create',
      summary: 'define a device (mdevctl define), start one (mdevctl start), or both',
      description:
        'With define (the default) the definition is stored as mdevctl stores it; with activate the device is created and its attributes written in order. When both are asked and the start fails, the definition is removed again.',
      body: CreateBody,
      response: Device,
      status: 201,
      async handler({ body: b, req }) {
        if (!b.define && !b.activate) {
          throw new ApiError('invalid-request', 'nothing to do: give define or activate (or both)');
        }
        // The answer is built from what the library returns: re-reading the
        // merged list after each create would cost O(devices) per request.
        const made = toApi(await changingLater(b.uuid, ctx.ops.run('create', b)));
        // Ours from now on: only this client (or a force) removes it.
        await owned(() => recordOwner(env, made, clientOwner(req)));
        return made;
      },
    }),
    route({
      method: 'PATCH',
      path: '/devices/:uuid',
      tag: 'devices',
      operation: 'modify',
      summary: 'change a definition (mdevctl modify); the running device is unaffected',
      params: DeviceParams,
      body: ModifyBody,
      response: Device,
      handler({ params: { uuid }, body: b }) {
        const cur = getDefinedDevice(env, uuid, b.parent);
        const args = {
          uuid,
          parent: cur.parent,
          type: b.type ?? cur.type,
          start: b.start ?? cur.start,
          attrs: b.attrs ?? cur.attrs,
        };
        return changingLater(undefined, ctx.ops.run('modify', args)).then(toApi);
      },
    }),
    route({
      method: 'POST',
      path: '/devices/:uuid/start',
      tag: 'devices',
      operation: 'start',
      summary: 'start a defined device (mdevctl start -u)',
      params: DeviceParams,
      body: StartBody,
      response: Device,
      handler: ({ params: { uuid }, body }) =>
        changingLater(uuid, ctx.ops.run('start', { uuid, parent: body?.parent })).then(toApi),
    }),
    route({
      method: 'POST',
      path: '/devices/:uuid/stop',
      tag: 'devices',
      operation: 'stop',
      summary: 'stop (remove) an active device (mdevctl stop); its definition stays',
      params: DeviceParams,
      query: RemoveQuery,
      status: 204,
      async handler({ params: { uuid }, query, req }) {
        // No such device: the library's answer (404) says so, not ownership.
        if (ctx.view.byUuid(uuid).length > 0)
          await owned(() => assertMayRemove(env, uuid, clientOwner(req), query.force));
        await changingLater(uuid, ctx.ops.run('stop', { uuid }));
      },
    }),
    route({
      method: 'DELETE',
      path: '/devices/:uuid/definition',
      tag: 'devices',
      operation: 'undefine',
      summary: 'remove the definition (mdevctl undefine); an active device keeps running',
      params: DeviceParams,
      query: RemoveQuery,
      status: 204,
      async handler({ params, query, req }) {
        const repaired = removeSkipped(params.uuid, query.parent);
        if (repaired > 0 && !definedHere(params.uuid, query.parent)) return;
        if (definedHere(params.uuid, query.parent))
          await owned(() => assertMayRemove(env, params.uuid, clientOwner(req), query.force));
        await changingLater(
          undefined,
          ctx.ops.run('undefine', { uuid: params.uuid, parent: query.parent }),
        );
      },
    }),
    route({
      method: 'DELETE',
      path: '/devices/:uuid',
      tag: 'devices',
      operation: 'remove',
      summary: 'stop the device if active, then remove its definition if any',
      params: DeviceParams,
      query: RemoveQuery,
      status: 204,
      async handler({ params, query, req }) {
        if (
          removeSkipped(params.uuid, query.parent) > 0 &&
          ctx.view.byUuid(params.uuid).length === 0
        )
          return;
        const d = one(params.uuid, query.parent);
        await owned(() => assertMayRemove(env, d.uuid, clientOwner(req), query.force));
        const args = { uuid: d.uuid, parent: d.parent, active: d.active, defined: d.defined };
        await changingLater(d.uuid, ctx.ops.run('remove', args));
        await owned(() => forgetOwner(env, d.uuid));
      },
    }),
    route({
      method: 'GET',
      path: '/devices/:uuid/aggregation',
      tag: 'aggregation',
      summary: 'aggregation of an active device (mdev/aggregation/value and max)',
      params: DeviceParams,
      response: Aggregation,
      handler({ params: { uuid } }) {
        const a = readAggregation(env, uuid);
        if (a !== undefined) return a;
        throw new ApiError(
          'not-aggregating',
          `device ${uuid} has no ${AGGREGATION_VALUE}: its type does not aggregate`,
          { uuid },
        );
      },
    }),
    route({
      method: 'PUT',
      path: '/devices/:uuid/aggregation',
      tag: 'aggregation',
      operation: 'aggregate',
      summary: 'set how many instances a device aggregates',
      description:
        "Writes mdev/aggregation/value of the active device (refused with EBUSY while a VM holds it, or with the driver's errno when the parent has too little left) and, when the device is defined, stores the value in its definition as the attribute mdevctl would write at start.",
      params: DeviceParams,
      query: ParentQuery,
      body: AggregationBody,
      response: Aggregation,
      handler({ params: { uuid }, query, body }) {
        const target = aggregationTarget(env, uuid, query.parent);
        const context = { uuid, parent: target.parent, type: target.type };
        return changing(undefined, () =>
          during('aggregate', context, () => setAggregation(env, target, body.value)),
        );
      },
    }),
  ];
}
