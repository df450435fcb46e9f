import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ErrnoError } from '../../common/errno.js';
import { MDEV_CLASS, typeDir } from '../../host/paths.js';
import { listActiveDevices, listParentNames, readType } from '../../host/sysfs-model.js';
import type { SysfsPort } from '../../port/sysfs-port.js';
import { ApiError } from '../errors.js';
import { METRICS_CONTENT_TYPE, type TypeCapacity } from '../metrics.js';
import { ErrorBody, Health, ParentInfo, ParentParams, TypeInfo, TypeParams } from '../schemas.js';
import { API_PREFIX, type AgentContext, type ApiApp, type TypedApp } from '../server.js';

type TypeInfoT = z.infer<typeof TypeInfo>;
type ParentInfoT = z.infer<typeof ParentInfo>;

function readOptional(port: SysfsPort, path: string): string | undefined {
  try {
    return port.read(path).trim();
  } catch (err) {
    if (err instanceof ErrnoError) return undefined;
    throw err;
  }
}

/** Active devices per "parent\0type", counted from /sys/bus/mdev/devices. */
function activeCounts(port: SysfsPort): Map<string, number> {
  const counts = new Map<string, number>();
  for (const d of listActiveDevices(port)) {
    const key = `${d.parent}\0${d.type}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

function typeInfo(
  port: SysfsPort,
  parent: string,
  id: string,
  counts: Map<string, number>,
): TypeInfoT {
  const t = readType(port, parent, id);
  const out: TypeInfoT = {
    id,
    deviceApi: t.deviceApi,
    availableInstances: t.availableInstances,
    activeDevices: counts.get(`${parent}\0${id}`) ?? 0,
  };
  if (t.name !== undefined) out.name = t.name;
  if (t.description !== undefined) out.description = t.description;
  const aggregation = readOptional(port, `${typeDir(parent, id)}/aggregation`);
  if (aggregation !== undefined) out.aggregation = aggregation;
  return out;
}

function parentInfo(port: SysfsPort, parent: string, counts: Map<string, number>): ParentInfoT {
  const dir = `${MDEV_CLASS}/${parent}/mdev_supported_types`;
  if (port.kind(`${MDEV_CLASS}/${parent}`) === null) {
    throw new ApiError('parent-missing', `no registered mdev parent ${JSON.stringify(parent)}`, {
      parent,
    });
  }
  const ids = port.kind(dir) === null ? [] : port.list(dir).sort();
  return { name: parent, types: ids.map((id) => typeInfo(port, parent, id, counts)) };
}

/** Every parent with its types, read fresh: capacity changes with every create. */
export function readParents(port: SysfsPort): ParentInfoT[] {
  const counts = activeCounts(port);
  const out: ParentInfoT[] = [];
  for (const name of listParentNames(port)) {
    try {
      out.push(parentInfo(port, name, counts));
    } catch (err) {
      // A parent unregistering while we read it is simply gone.
      if (err instanceof ErrnoError || err instanceof ApiError) continue;
      throw err;
    }
  }
  return out;
}

const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody };

/** Health, host description, parents and types, metrics. */
export function registerHostRoutes(app: ApiApp, ctx: AgentContext): void {
  const api = app.withTypeProvider<ZodTypeProvider>() as TypedApp;
  const port = ctx.env.port;

  api.get(
    '/healthz',
    { schema: { summary: 'liveness', tags: ['agent'], response: { 200: Health } } },
    async () => ({ status: 'ok' as const, host: ctx.options.hostLabel, mode: ctx.options.mode }),
  );

  api.get(
    `${API_PREFIX}/parents`,
    {
      schema: {
        summary: 'registered mdev parents with their types and capacity',
        tags: ['parents'],
        response: { 200: z.object({ parents: z.array(ParentInfo) }), ...errors },
      },
    },
    async () => ({ parents: readParents(port) }),
  );

  api.get(
    `${API_PREFIX}/parents/:parent`,
    {
      schema: {
        summary: 'one parent with its types',
        tags: ['parents'],
        params: ParentParams,
        response: { 200: ParentInfo, ...errors },
      },
    },
    async (req) => parentInfo(port, req.params.parent, activeCounts(port)),
  );

  api.get(
    `${API_PREFIX}/parents/:parent/types/:type`,
    {
      schema: {
        summary: 'one type of a parent',
        tags: ['parents'],
        params: TypeParams,
        response: { 200: TypeInfo, ...errors },
      },
    },
    async (req) => {
      const { parent, type } = req.params;
      if (port.kind(typeDir(parent, type)) === null) {
        throw new ApiError('type-unsupported', `parent ${parent} has no mdev type ${type}`, {
          parent,
          type,
        });
      }
      return typeInfo(port, parent, type, activeCounts(port));
    },
  );

  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    const capacity: TypeCapacity[] = [];
    for (const p of readParents(port)) {
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
    return reply.type(METRICS_CONTENT_TYPE).send(ctx.metrics.render(capacity, defined));
  });
}
