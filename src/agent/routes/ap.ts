import { z } from 'zod';
import { apChangeMasks, apChangeMatrix } from '../../ctl/ap/edit.js';
import { ApError, hostOwns, queueOwners, readApHost, type ApHost } from '../../ctl/ap/model.js';
import type { ErrnoCode } from '../../common/errno.js';
import { ApiError } from '../errors.js';
import { route, type Route } from '../route.js';
import { ApMatrix as Matrix, ApQueue as Queue, DeviceParams } from '../schemas.js';
import type { AgentContext } from '../server.js';

/**
 * s390 vfio-ap through src/ctl/ap (sysfs only): the matrix of adapters ×
 * domains with each queue's owner — the host (apmask/aqmask), a matrix
 * device, or nobody — and the edits: reserve/release ids for guests,
 * assign/unassign ids to a matrix device. The library checks every rule
 * first and explains a refusal; the kernel checks again.
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

/**
 * ApError says why in words; give it the errno vfio_ap itself uses for the
 * same refusal (EADDRNOTAVAIL: the host holds it; EADDRINUSE: another
 * matrix device does), so scripts can match on it.
 */
function apFailure(err: ApError, context: Record<string, string>): ApiError {
  const m = err.message;
  let status = 409;
  let errno: ErrnoCode = 'EINVAL';
  if (/^no AP bus/.test(m) || /^no mediated device/.test(m)) [status, errno] = [404, 'ENODEV'];
  else if (/not a vfio_ap matrix device/.test(m)) [status, errno] = [400, 'EINVAL'];
  else if (/belongs to the host/.test(m)) errno = 'EADDRNOTAVAIL';
  else if (/is assigned to matrix device/.test(m)) errno = 'EADDRINUSE';
  else if (/above this host's highest/.test(m)) [status, errno] = [400, 'ERANGE'];
  return new ApiError(status, errno, m, context);
}

function runAp<T>(context: Record<string, string>, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ApError) throw apFailure(err, context);
    throw err;
  }
}

export function apRoutes(ctx: AgentContext): Route[] {
  const port = ctx.env.port;
  /** What the library prints for a person; the API answers with the new matrix instead. */
  const quiet = { write: () => true };

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
        runAp({}, () => apChangeMasks(port, quiet, direction, body));
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
        runAp({ uuid }, () => apChangeMatrix(port, quiet, uuid, op, body));
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
      handler: () => runAp({}, () => matrixOf(readApHost(port))),
    }),
    ...masks,
    ...edits,
  ];
}
