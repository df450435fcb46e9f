import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ErrnoError } from '../../common/errno.js';
import {
  defineDevice,
  getDefinedDevice,
  modifyDevice,
  startDevice,
  stopDevice,
  undefineDevice,
  type JsonSource,
  type MdevAttribute,
  type MdevDevice,
  type StartMode,
} from '../../host/devices.js';
import { deviceAttributePath } from '../../host/paths.js';
import { toApi, type ApiDevice } from '../device-view.js';
import { ApiError, during } from '../errors.js';
import {
  Aggregation,
  Attribute,
  Device,
  DeviceList,
  DeviceListQuery,
  DeviceParams,
  ErrorBody,
  StartMode as StartModeSchema,
  SysfsName,
  Uuid,
} from '../schemas.js';
import { API_PREFIX, type AgentContext, type ApiApp, type TypedApp } from '../server.js';

/** The standardized per-device aggregation namespace (seed 001). */
export const AGGREGATION_VALUE = 'mdev/aggregation/value';
export const AGGREGATION_MAX = 'mdev/aggregation/max';

const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 409: ErrorBody, 500: ErrorBody };

/** A definition's content handed to the host library as mdevctl's --jsonfile would be. */
function jsonDocument(type: string, start: StartMode, attrs: readonly MdevAttribute[]): JsonSource {
  const doc = { mdev_type: type, start, attrs: attrs.map((a) => ({ [a.name]: a.value })) };
  return { name: 'the request body', read: () => JSON.stringify(doc) };
}

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

function readAggregation(ctx: AgentContext, uuid: string): z.infer<typeof Aggregation> {
  const port = ctx.env.port;
  const read = (name: string): number | undefined => {
    try {
      const n = Number.parseInt(port.read(deviceAttributePath(port, uuid, name)).trim(), 10);
      return Number.isNaN(n) ? undefined : n;
    } catch (err) {
      if (err instanceof ErrnoError && err.code === 'ENOENT') return undefined;
      throw err;
    }
  };
  const value = read(AGGREGATION_VALUE);
  if (value === undefined) {
    throw new ApiError(
      'not-aggregating',
      `device ${uuid} has no ${AGGREGATION_VALUE}: its type does not aggregate`,
      { uuid },
    );
  }
  const max = read(AGGREGATION_MAX);
  return max === undefined ? { value } : { value, max };
}

/** Serialized listing pages of the current generation of the view, by request URL. */
const PAGE_CACHE_ENTRIES = 64;

export function registerDeviceRoutes(app: ApiApp, ctx: AgentContext): void {
  const pageCache = { generation: -1, pages: new Map<string, string>() };
  const api = app.withTypeProvider<ZodTypeProvider>() as TypedApp;
  const env = ctx.env;

  /** The one entry for `uuid` (on `parent`); 404 or 409 otherwise. */
  const one = (uuid: string, parent?: string): ApiDevice => {
    const all = ctx.view.byUuid(uuid).filter((d) => parent === undefined || d.parent === parent);
    if (all.length === 0) {
      throw new ApiError(
        'device-unknown',
        `no mediated device ${parent === undefined ? uuid : `${parent}/${uuid}`}`,
        {
          uuid,
          ...(parent === undefined ? {} : { parent }),
        },
      );
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

  api.get(
    `${API_PREFIX}/devices`,
    {
      schema: {
        summary: 'active and defined devices, merged as mdevctl list shows them',
        description:
          'Sorted by parent, then UUID. Pages of `limit` entries; follow `next`. An ETag changes with every change of the host, so polling with If-None-Match is cheap.',
        tags: ['devices'],
        querystring: DeviceListQuery,
        response: { 200: DeviceList, ...errors },
      },
    },
    async (req, reply) => {
      const { parent, type, state, limit, cursor } = req.query;
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
      const body: { total: number; devices: ApiDevice[]; next?: string } = {
        total: filtered.length,
        devices: page,
      };
      if (start + limit < filtered.length) body.next = encodeCursor(page[page.length - 1]!);
      // Serialized here: the entries are plain data the view built, and
      // validating ten thousand of them per request would be the slowest part.
      const text = JSON.stringify(body);
      if (pageCache.pages.size >= PAGE_CACHE_ENTRIES) pageCache.pages.clear();
      pageCache.pages.set(req.url, text);
      return reply.type(json).send(text as never);
    },
  );

  api.get(
    `${API_PREFIX}/devices/:uuid`,
    {
      schema: {
        summary: 'one device',
        tags: ['devices'],
        params: DeviceParams,
        querystring: ParentQuery,
        response: { 200: Device, ...errors },
      },
    },
    async (req) => one(req.params.uuid, req.query.parent),
  );

  api.post(
    `${API_PREFIX}/devices`,
    {
      config: { operation: 'create' },
      schema: {
        summary: 'define a device (mdevctl define), start one (mdevctl start), or both',
        description:
          'With define (the default) the definition is stored as mdevctl stores it; with activate the device is created and its attributes written in order. When both are asked and the start fails, the definition is removed again.',
        tags: ['devices'],
        security: [{ bearer: [] }],
        body: CreateBody,
        response: { 201: Device, ...errors },
      },
    },
    async (req, reply) => {
      const b = req.body;
      if (!b.define && !b.activate) {
        throw new ApiError('invalid-request', 'nothing to do: give define or activate (or both)');
      }
      const json = jsonDocument(b.type, b.start, b.attrs);
      // The answer is built from what the library returns: re-reading the
      // merged list after each create would cost O(devices) per request.
      let made: MdevDevice;
      try {
        if (b.define) {
          made = defineDevice(env, { uuid: b.uuid, parent: b.parent, json });
          if (b.activate) {
            try {
              made = startDevice(env, { uuid: made.uuid, parent: b.parent });
            } catch (err) {
              undefineDevice(env, made.uuid, b.parent); // pairs with the define above
              throw err;
            }
          }
        } else {
          made = startDevice(env, { uuid: b.uuid, parent: b.parent, json });
        }
      } finally {
        ctx.view.invalidate(b.uuid);
      }
      return reply.code(201).send(toApi(made));
    },
  );

  api.patch(
    `${API_PREFIX}/devices/:uuid`,
    {
      config: { operation: 'modify' },
      schema: {
        summary: 'change a definition (mdevctl modify); the running device is unaffected',
        tags: ['devices'],
        security: [{ bearer: [] }],
        params: DeviceParams,
        body: ModifyBody,
        response: { 200: Device, ...errors },
      },
    },
    async (req) => {
      const { uuid } = req.params;
      const b = req.body;
      const cur = getDefinedDevice(env, uuid, b.parent);
      const json = jsonDocument(b.type ?? cur.type, b.start ?? cur.start, b.attrs ?? cur.attrs);
      const changed = modifyDevice(env, { uuid, parent: cur.parent, json });
      ctx.view.invalidate();
      return toApi(changed);
    },
  );

  api.post(
    `${API_PREFIX}/devices/:uuid/start`,
    {
      config: { operation: 'start' },
      schema: {
        summary: 'start a defined device (mdevctl start -u)',
        tags: ['devices'],
        security: [{ bearer: [] }],
        params: DeviceParams,
        body: StartBody,
        response: { 200: Device, ...errors },
      },
    },
    async (req) => {
      const { uuid } = req.params;
      const parent = req.body?.parent;
      try {
        return toApi(startDevice(env, { uuid, parent }));
      } finally {
        ctx.view.invalidate(uuid);
      }
    },
  );

  api.post(
    `${API_PREFIX}/devices/:uuid/stop`,
    {
      config: { operation: 'stop' },
      schema: {
        summary: 'stop (remove) an active device (mdevctl stop); its definition stays',
        tags: ['devices'],
        security: [{ bearer: [] }],
        params: DeviceParams,
        response: { 204: z.null(), ...errors },
      },
    },
    async (req, reply) => {
      try {
        stopDevice(env, req.params.uuid);
      } finally {
        ctx.view.invalidate(req.params.uuid);
      }
      return reply.code(204).send(null);
    },
  );

  api.delete(
    `${API_PREFIX}/devices/:uuid/definition`,
    {
      config: { operation: 'undefine' },
      schema: {
        summary: 'remove the definition (mdevctl undefine); an active device keeps running',
        tags: ['devices'],
        security: [{ bearer: [] }],
        params: DeviceParams,
        querystring: ParentQuery,
        response: { 204: z.null(), ...errors },
      },
    },
    async (req, reply) => {
      undefineDevice(env, req.params.uuid, req.query.parent);
      ctx.view.invalidate();
      return reply.code(204).send(null);
    },
  );

  api.delete(
    `${API_PREFIX}/devices/:uuid`,
    {
      config: { operation: 'remove' },
      schema: {
        summary: 'stop the device if active, then remove its definition if any',
        tags: ['devices'],
        security: [{ bearer: [] }],
        params: DeviceParams,
        querystring: ParentQuery,
        response: { 204: z.null(), ...errors },
      },
    },
    async (req, reply) => {
      const d = one(req.params.uuid, req.query.parent);
      try {
        if (d.active) stopDevice(env, d.uuid);
        if (d.defined) undefineDevice(env, d.uuid, d.parent);
      } finally {
        ctx.view.invalidate(d.uuid);
      }
      return reply.code(204).send(null);
    },
  );

  api.get(
    `${API_PREFIX}/devices/:uuid/aggregation`,
    {
      schema: {
        summary: 'aggregation of an active device (mdev/aggregation/value and max)',
        tags: ['aggregation'],
        params: DeviceParams,
        response: { 200: Aggregation, ...errors },
      },
    },
    async (req) => readAggregation(ctx, req.params.uuid),
  );

  api.put(
    `${API_PREFIX}/devices/:uuid/aggregation`,
    {
      config: { operation: 'aggregate' },
      schema: {
        summary: 'set how many instances a device aggregates',
        description:
          "Writes mdev/aggregation/value of the active device (refused with EBUSY while a VM holds it, or with the driver's errno when the parent has too little left) and, when the device is defined, stores the value in its definition as the attribute mdevctl would write at start.",
        tags: ['aggregation'],
        security: [{ bearer: [] }],
        params: DeviceParams,
        querystring: ParentQuery,
        body: AggregationBody,
        response: { 200: Aggregation, ...errors },
      },
    },
    async (req) => {
      const { uuid } = req.params;
      const value = String(req.body.value);
      const d = one(uuid, req.query.parent);
      const port = env.port;
      const context = { uuid, parent: d.parent, type: d.type };
      if (d.active) {
        during('aggregate', context, () =>
          port.write(deviceAttributePath(port, uuid, AGGREGATION_VALUE), value),
        );
      }
      if (d.defined) {
        const attrs = d.attrs.filter((a) => a.name !== AGGREGATION_VALUE);
        attrs.push({ name: AGGREGATION_VALUE, value });
        modifyDevice(env, {
          uuid,
          parent: d.parent,
          json: jsonDocument(d.type, d.start ?? 'manual', attrs),
        });
      }
      ctx.view.invalidate();
      if (d.active) return readAggregation(ctx, uuid);
      if (!d.defined)
        throw new ApiError(
          'device-unknown',
          `device ${uuid} is neither active nor defined`,
          context,
        );
      return { value: req.body.value };
    },
  );
}
