import { z } from 'zod';
import { changeMasks, changeMatrix } from '../../host/ap/edit.js';
import { hostOwns, queueOwners, readApHost, type ApHost } from '../../host/ap/model.js';
import { route, type Route } from '../route.js';
import { ApMatrix as Matrix, ApQueue as Queue, DeviceParams } from '../schemas.js';
import type { AgentContext } from '../server.js';

/**
 * s390 vfio-ap through the host library's AP model (src/host/ap, sysfs
 * only): the matrix of adapters × domains with each queue's owner — the
 * host (apmask/aqmask), a matrix device, or nobody — and the edits:
 * reserve/release ids for guests, assign/unassign ids to a matrix device.
 * The library checks every rule first and refuses with a coded error
 * (queue-in-use, queue-host-owned, ...) that src/agent/errors.ts maps like
 * any other; the kernel checks again.
 */

const Ids = z.array(z.number().int().min(0).max(255)).max(256);
const MaskBody = z
  .object({ adapters: Ids.optional(), domains: Ids.optional() })
  .refine(
    (b) => (b.adapters?.length ?? 0) + (b.domains?.length ?? 0) > 0,
    'give adapters or domains',
  );
const MatrixBody = z
  .object({ adapters: Ids.optional(), domains: Ids.optional(), controlDomains: Ids.optional() })
  .refine(
    (b) =>
      (b.adapters?.length ?? 0) + (b.domains?.length ?? 0) + (b.controlDomains?.length ?? 0) > 0,
    'give adapters, domains or controlDomains',
  );

function matrixOf(host: ApHost): z.infer<typeof Matrix> {
  const owners = queueOwners(host);
  const queues: z.infer<typeof Queue>[] = [];
  for (const a of host.adapters) {
    for (const d of host.domains) {
      const owner = owners.get((a.id << 8) | d);
      const q: z.infer<typeof Queue> = { adapter: a.id, domain: d, host: hostOwns(host, a.id, d) };
      if (owner !== undefined) q.owner = owner;
      queues.push(q);
    }
  }
  const adapterTypes: Record<string, string> = {};
  for (const a of host.adapters) if (a.type !== undefined) adapterTypes[String(a.id)] = a.type;
  return {
    maxAdapterId: host.maxAdapterId,
    maxDomainId: host.maxDomainId,
    adapters: host.adapters.map((a) => a.id),
    adapterTypes,
    domains: [...host.domains],
    queues,
    devices: host.devices.map((d) => ({
      uuid: d.uuid,
      adapters: [...d.adapters],
      domains: [...d.domains],
      controlDomains: [...d.controlDomains],
      guestQueues: [...d.guestQueues],
    })),
    vfioApLoaded: host.vfioApLoaded,
  };
}

export function apRoutes(ctx: AgentContext): Route[] {
  const port = ctx.env.port;

  const masks = (['reserve', 'release'] as const).map((direction) =>
    route({
      method: 'POST',
      path: `/ap/${direction}`,
      tag: 'vfio-ap',
      operation: `ap-${direction}`,
      summary:
        direction === 'reserve'
          ? 'set adapters/domains aside for guests (clear their apmask/aqmask bits)'
          : 'give adapters/domains back to the host (set their apmask/aqmask bits); refused while a matrix device holds one of their queues',
      body: MaskBody,
      response: Matrix,
      handler({ body }) {
        changeMasks(port, direction, body);
        ctx.hub.publish({ kind: 'matrix-changed' });
        return matrixOf(readApHost(port));
      },
    }),
  );

  const edits = (['assign', 'unassign'] as const).map((op) =>
    route({
      method: 'POST',
      path: `/ap/devices/:uuid/${op}`,
      tag: 'vfio-ap',
      operation: `ap-${op}`,
      summary: `${op} adapters, domains, control domains ${op === 'assign' ? 'to' : 'from'} a matrix device (one write of ap_config)`,
      params: DeviceParams,
      body: MatrixBody,
      response: Matrix,
      handler({ params: { uuid }, body }) {
        changeMatrix(port, uuid, op, body);
        ctx.hub.publish({ kind: 'matrix-changed', uuid });
        return matrixOf(readApHost(port));
      },
    }),
  );

  return [
    route({
      method: 'GET',
      path: '/ap/matrix',
      tag: 'vfio-ap',
      summary: 'the AP matrix: adapters × domains, who owns each queue',
      response: Matrix,
      handler: () => matrixOf(readApHost(port)),
    }),
    ...masks,
    ...edits,
  ];
}
