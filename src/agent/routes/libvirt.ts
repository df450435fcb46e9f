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
import { route, type Route } from '../route.js';
import { DeviceParams } from '../schemas.js';
import type { AgentContext } from '../server.js';

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
export function libvirtRoutes(ctx: AgentContext): Route[] {
  const xml = 'application/xml; charset=utf-8';
  return [
    route({
      method: 'GET',
      path: '/devices/:uuid/libvirt/hostdev',
      tag: 'libvirt',
      summary: 'the domain XML <hostdev> element that assigns the device to a VM',
      params: DeviceParams,
      query: HostdevQuery,
      produces: ['application/xml'],
      response: z.string(),
      handler: ({ params, query, reply }) =>
        reply.type(xml).send(formatHostdevXml(hostdevOf(ctx, params.uuid, query))),
    }),
    route({
      method: 'GET',
      path: '/devices/:uuid/libvirt/nodedev',
      tag: 'libvirt',
      summary: "the device's libvirt node device XML (virsh nodedev-dumpxml)",
      params: DeviceParams,
      produces: ['application/xml'],
      response: z.string(),
      handler({ params: { uuid }, reply }) {
        const dev = findNodeDevice(ctx.env, uuid);
        if (dev === undefined) {
          throw new ApiError('device-unknown', `no node device for mediated device ${uuid}`, {
            uuid,
          });
        }
        return reply.type(xml).send(formatNodeDeviceXml(dev));
      },
    }),
    route({
      method: 'GET',
      path: '/devices/:uuid/qemu-args',
      tag: 'libvirt',
      summary: 'the QEMU -device argument libvirt generates for the device',
      params: DeviceParams,
      query: HostdevQuery,
      response: QemuArgs,
      handler({ params, query }) {
        const h = hostdevOf(ctx, params.uuid, query);
        const device = qemuDeviceClassic(h);
        return { argv: ['-device', device], device, deviceJson: qemuDeviceJson(h) };
      },
    }),
  ];
}
