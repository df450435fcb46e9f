import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { vfCapacityJson, vgpuEntryJson } from '../../ctl/vf-vgpu.js';
import {
  createVgpu,
  readVgpuInventory,
  removeVgpu,
  startVgpu,
  stopVgpu,
} from '../../host/vf-vgpu.js';
import { findVfHostdev, formatVfHostdevXml, vfQemuDeviceProps } from '../../libvirt/vf-hostdev.js';
import { ApiError } from '../errors.js';
import { route, type Route } from '../route.js';
import { DeviceParams, Uuid } from '../schemas.js';
import type { AgentContext } from '../server.js';

/**
 * NVIDIA's SR-IOV VF vGPUs (src/host/vf-vgpu.ts): the GPUs with their
 * capacity and every vGPU, create (on a chosen or a placed VF), remove,
 * start, stop, and the hostdev XML and QEMU arguments of one. A write goes
 * out on the event stream as `vgpu-changed`; changes made elsewhere come
 * from the VF poller (../vf-events.ts).
 */

const PciAddress = z
  .string()
  .regex(/^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-1][0-9a-fA-F]\.[0-7]$/, 'a PCI address (0000:41:00.0)')
  .transform((s) => s.toLowerCase());

const TypeCapacity = z.object({
  id: z.number().int().describe('the type id current_vgpu_type takes (1153)'),
  key: z.string().describe('"nvidia-<id>"'),
  name: z.string().nullable().describe('"NVIDIA L40S-12Q"'),
  shortName: z.string().nullable().describe('"L40S-12Q"'),
  framebufferGb: z.number().nullable(),
  creatableNow: z
    .boolean()
    .nullable()
    .describe("listed in a free VF's creatable_vgpu_types now (null: no free VF to ask)"),
  headroom: z.number().int().describe('how many more fit now'),
});

const GpuCapacity = z.object({
  gpu: z.string().describe("the GPU's (physical function's) PCI address"),
  board: z.string().nullable(),
  framebufferGb: z.number().nullable(),
  usedGb: z.number(),
  runningSizeGb: z.number().nullable().describe('the framebuffer size every vGPU has, if one'),
  mode: z.enum(['equal-size', 'mixed-size', 'unknown']),
  vfs: z.object({
    total: z.number().int().describe('sriov_totalvfs'),
    enabled: z.number().int().describe('sriov_numvfs: 0 until sriov-manage -e'),
    free: z.number().int(),
  }),
  vgpus: z.number().int(),
  types: z.array(TypeCapacity),
});

const Vgpu = z.object({
  uuid: z
    .string()
    .nullable()
    .describe("the definition's UUID; null for a vGPU mdevkit did not make"),
  gpu: z.string(),
  vf: z.number().int(),
  vfAddress: z.string().nullable(),
  typeId: z.number().int(),
  typeKey: z.string(),
  typeName: z.string().nullable(),
  currentTypeId: z.number().int().nullable(),
  state: z.enum(['active', 'inactive', 'conflict', 'foreign']),
  defined: z.boolean(),
  start: z.enum(['auto', 'manual']).nullable(),
  params: z.string().nullable(),
  owner: z.string().nullable(),
  placement: z.number().int().nullable(),
});

export const VgpuListing = z.object({
  gpus: z.array(GpuCapacity),
  vgpus: z.array(Vgpu),
  invalidDefinitions: z.array(z.object({ path: z.string(), message: z.string() })),
});

export const VgpuCreateBody = z.object({
  gpu: PciAddress,
  type: z
    .union([z.number().int().positive(), z.string().min(1).max(64)])
    .describe('a type id (1153, "nvidia-1153") or name ("L40S-12Q")'),
  vf: z.number().int().min(0).max(255).optional().describe('the VF index; default the first free'),
  params: z.string().max(1024).optional().describe('vgpu_params, key=value[,key=value...]'),
  start: z.enum(['auto', 'manual']).default('manual'),
  uuid: Uuid.optional(),
  defineOnly: z.boolean().default(false),
});

const Created = z.object({
  uuid: z.string(),
  gpu: z.string(),
  vf: z.number().int(),
  vfAddress: z.string(),
  typeId: z.number().int(),
  typeName: z.string().nullable(),
  owner: z.string(),
  started: z.boolean(),
});

const RemoveQuery = z.object({
  force: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true')
    .describe("remove it even when it is another owner's (or not made by mdevkit)"),
});

const Hostdev = z.object({
  uuid: z.string().nullable(),
  address: z.string(),
  xml: z.string().describe("<hostdev mode='subsystem' type='pci' managed='no'>"),
  qemu: z.array(z.string()).describe('-uuid U -device vfio-pci,host=VF,id=hostdev0'),
  qemuJson: z.array(z.string()).describe('the same with -device in JSON syntax'),
});

/** Who asks, as an owner: `api:<client>` from X-Mdevkit-Client, else `api:agent`. */
function clientOwner(req: FastifyRequest): string {
  const h = req.headers['x-mdevkit-client'];
  const client = typeof h === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(h) ? h : 'agent';
  return `api:${client}`;
}

export function vfVgpuRoutes(ctx: AgentContext): Route[] {
  const changed = (gpu: string, vf?: string, uuid?: string): void =>
    ctx.hub.publish({
      kind: 'vgpu-changed',
      gpu,
      ...(vf !== undefined ? { vf } : {}),
      ...(uuid !== undefined ? { uuid } : {}),
    });
  return [
    route({
      method: 'GET',
      path: '/vf-vgpus',
      tag: 'vf-vgpus',
      summary: "NVIDIA's SR-IOV GPUs with their capacity, and every VF vGPU (defined or not)",
      response: VgpuListing,
      handler() {
        const inv = readVgpuInventory(ctx.env);
        return {
          gpus: inv.capacity.map(vfCapacityJson) as z.input<typeof GpuCapacity>[],
          vgpus: inv.entries.map(vgpuEntryJson) as z.input<typeof Vgpu>[],
          invalidDefinitions: [...inv.invalidDefinitions],
        };
      },
    }),
    route({
      method: 'POST',
      path: '/vf-vgpus',
      tag: 'vf-vgpus',
      summary: 'define a vGPU on a chosen or placed VF and make it',
      operation: 'vf-create',
      body: VgpuCreateBody,
      response: Created,
      status: 201,
      handler({ body, req }) {
        const r = createVgpu(ctx.env, {
          gpu: body.gpu,
          type: body.type,
          ...(body.vf !== undefined ? { vf: body.vf } : {}),
          ...(body.params !== undefined ? { params: body.params } : {}),
          ...(body.uuid !== undefined ? { uuid: body.uuid } : {}),
          start: body.start,
          owner: clientOwner(req),
          defineOnly: body.defineOnly,
        });
        const d = r.definition;
        changed(d.gpu, r.vfAddress, d.uuid);
        return {
          uuid: d.uuid,
          gpu: d.gpu,
          vf: d.vf,
          vfAddress: r.vfAddress,
          typeId: d.typeId,
          typeName: d.typeName ?? null,
          owner: d.owner,
          started: r.started,
        };
      },
    }),
    route({
      method: 'DELETE',
      path: '/vf-vgpus/:uuid',
      tag: 'vf-vgpus',
      summary: "destroy a vGPU and remove its definition (another owner's needs force=true)",
      operation: 'vf-remove',
      params: DeviceParams,
      query: RemoveQuery,
      status: 204,
      handler({ params, query, req }) {
        const r = removeVgpu(ctx.env, params.uuid, { as: clientOwner(req), force: query.force });
        changed(r.gpu, r.vfAddress, r.uuid);
      },
    }),
    route({
      method: 'DELETE',
      path: '/vf-vgpus/vf/:address',
      tag: 'vf-vgpus',
      summary:
        "destroy the vGPU a VF holds, by the VF's address (one mdevkit did not make needs force=true)",
      operation: 'vf-remove',
      params: z.object({ address: PciAddress }),
      query: RemoveQuery,
      status: 204,
      handler({ params, query, req }) {
        const r = removeVgpu(ctx.env, params.address, { as: clientOwner(req), force: query.force });
        changed(r.gpu, r.vfAddress, r.uuid);
      },
    }),
    ...(['start', 'stop'] as const).map((op) =>
      route({
        method: 'POST',
        path: `/vf-vgpus/:uuid/${op}`,
        tag: 'vf-vgpus',
        summary: op === 'start' ? 'make a defined vGPU' : 'destroy a vGPU, keeping its definition',
        operation: `vf-${op}`,
        params: DeviceParams,
        response: z.object({ uuid: z.string(), gpu: z.string(), vfAddress: z.string() }),
        handler({ params }) {
          const r =
            op === 'start' ? startVgpu(ctx.env, params.uuid) : stopVgpu(ctx.env, params.uuid);
          changed(r.definition.gpu, r.vfAddress, params.uuid);
          return { uuid: params.uuid, gpu: r.definition.gpu, vfAddress: r.vfAddress };
        },
      }),
    ),
    route({
      method: 'GET',
      path: '/vf-vgpus/:uuid/hostdev',
      tag: 'vf-vgpus',
      summary: "the domain <hostdev type='pci' managed='no'> and QEMU arguments of a vGPU",
      params: DeviceParams,
      response: Hostdev,
      handler({ params }) {
        const h = findVfHostdev(ctx.env, params.uuid);
        if (h === undefined) {
          throw new ApiError('not-defined', `VF vGPU ${params.uuid} is not defined`, {
            uuid: params.uuid,
          });
        }
        const props = vfQemuDeviceProps(h);
        const uuidArgs = h.uuid === undefined ? [] : ['-uuid', h.uuid];
        return {
          uuid: h.uuid ?? null,
          address: h.address,
          xml: formatVfHostdevXml(h),
          qemu: [
            ...uuidArgs,
            '-device',
            props.map(([k, v], i) => (i === 0 ? v : `${k}=${v}`)).join(','),
          ],
          qemuJson: [...uuidArgs, '-device', JSON.stringify(Object.fromEntries(props))],
        };
      },
    }),
  ];
}
