import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  deviceApiOf,
  formatHostdevXml,
  mdevHostdev,
  qemuDeviceClassic,
  qemuDeviceJson,
  type HostdevOptions,
} from '../../libvirt/hostdev.js';
import { findNodeDevice, formatNodeDeviceXml } from '../../libvirt/nodedev.js';
import { ApiError } from '../errors.js';
import { DeviceParams, ErrorBody } from '../schemas.js';
import { API_PREFIX, type AgentContext, type ApiApp, type TypedApp } from '../server.js';

const errors = { 400: ErrorBody, 404: ErrorBody };

const onOff = z.enum(['on', 'off']).optional();
const HostdevQuery = z.object({
  display: onOff.describe("expose the device's display (vfio-pci only)"),
  ramfb: onOff.describe('boot display through a ramfb (vfio-pci only; needs display=on)'),
});

const QemuArgs = z.object({
  argv: z.array(z.string()).describe('the QEMU arguments, one per element'),
  device: z.string().describe('the -device value in key=value syntax'),
  deviceJson: z.string().describe('the -device value in JSON syntax (QEMU 6.2 and later)'),
});

function options(q: z.infer<typeof HostdevQuery>): HostdevOptions {
  const toBool = (v: 'on' | 'off' | undefined): boolean | undefined =>
    v === undefined ? undefined : v === 'on';
  return { display: toBool(q.display), ramfb: toBool(q.ramfb) };
}

/** What libvirt would refuse is a HostdevError with its code (device-unknown, hostdev-unsupported...). */
function hostdevOf(ctx: AgentContext, uuid: string, q: z.infer<typeof HostdevQuery>) {
  return mdevHostdev(uuid, deviceApiOf(ctx.env, uuid), options(q));
}

/** libvirt's view of a device (src/libvirt): node device XML, domain <hostdev>, QEMU arguments. */
export function registerLibvirtRoutes(app: ApiApp, ctx: AgentContext): void {
  const api = app.withTypeProvider<ZodTypeProvider>() as TypedApp;

  api.get(
    `${API_PREFIX}/devices/:uuid/libvirt/hostdev`,
    {
      schema: {
        summary: 'the domain XML <hostdev> element that assigns the device to a VM',
        tags: ['libvirt'],
        params: DeviceParams,
        querystring: HostdevQuery,
        produces: ['application/xml'],
        response: { 200: z.string(), ...errors },
      },
    },
    async (req, reply) => {
      const h = hostdevOf(ctx, req.params.uuid, req.query);
      return reply.type('application/xml; charset=utf-8').send(formatHostdevXml(h));
    },
  );

  api.get(
    `${API_PREFIX}/devices/:uuid/libvirt/nodedev`,
    {
      schema: {
        summary: "the device's libvirt node device XML (virsh nodedev-dumpxml)",
        tags: ['libvirt'],
        params: DeviceParams,
        produces: ['application/xml'],
        response: { 200: z.string(), ...errors },
      },
    },
    async (req, reply) => {
      const dev = findNodeDevice(ctx.env, req.params.uuid);
      if (dev === undefined) {
        throw new ApiError(
          'device-unknown',
          `no node device for mediated device ${req.params.uuid}`,
          {
            uuid: req.params.uuid,
          },
        );
      }
      return reply.type('application/xml; charset=utf-8').send(formatNodeDeviceXml(dev));
    },
  );

  api.get(
    `${API_PREFIX}/devices/:uuid/qemu-args`,
    {
      schema: {
        summary: 'the QEMU -device argument libvirt generates for the device',
        tags: ['libvirt'],
        params: DeviceParams,
        querystring: HostdevQuery,
        response: { 200: QemuArgs, ...errors },
      },
    },
    async (req) => {
      const h = hostdevOf(ctx, req.params.uuid, req.query);
      const device = qemuDeviceClassic(h);
      return { argv: ['-device', device], device, deviceJson: qemuDeviceJson(h) };
    },
  );
}
