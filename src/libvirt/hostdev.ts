import { ErrnoError } from '../common/errno.js';
import { isUuid } from '../common/uuid.js';
import { MdevError, probeActive, type HostErrorCode } from '../host/devices.js';
import type { ContextInput } from '../host/errors.js';
import { findDefinition } from './definitions.js';
import type { Environment } from '../host/environment.js';
import { MDEV_BUS_DEVICES, MDEV_CLASS } from '../host/paths.js';
import { el, formatXml, type XmlElement } from './xml.js';

/**
 * What a VM needs to use a mediated device: the domain XML `<hostdev>`
 * element and the QEMU `-device` argument libvirt generates from it.
 *
 * Facts from libvirt (domain_conf, qemu_command, qemu_validate):
 * - the hostdev model follows the device API: vfio-pci, vfio-ccw, vfio-ap;
 * - `display` exists only for vfio-pci, where libvirt defaults it to off;
 *   `ramfb` needs display on;
 * - QEMU gets `sysfsdev=/sys/bus/mdev/devices/<uuid>` and `id=hostdevN`;
 *   with ramfb on, the driver is vfio-pci-nohotplug (ramfb cannot be
 *   hot-plugged), with `ramfb=on`.
 * PCI or CCW guest addresses are libvirt's to assign and are left out.
 */

export type MdevModel = 'vfio-pci' | 'vfio-ccw' | 'vfio-ap';

export const MDEV_MODELS: readonly MdevModel[] = ['vfio-pci', 'vfio-ccw', 'vfio-ap'];

export function isMdevModel(api: string): api is MdevModel {
  return (MDEV_MODELS as readonly string[]).includes(api);
}

export interface HostdevOptions {
  /** Expose the device's display to the guest (vfio-pci only). */
  readonly display?: boolean | undefined;
  /** Boot display through a ramfb (vfio-pci only; needs display). */
  readonly ramfb?: boolean | undefined;
}

/** A mediated device as a domain uses it. */
export interface MdevHostdev {
  readonly uuid: string;
  readonly model: MdevModel;
  /** 'on' / 'off' for vfio-pci; undefined for the other models. */
  readonly display: 'on' | 'off' | undefined;
  readonly ramfb: boolean;
}

/**
 * The user asked for something libvirt would refuse, or about a device it
 * cannot tell anything of; the code says which (`hostdev-unsupported`,
 * `device-unknown`, `type-unsupported`, `invalid-name`...), the message what.
 */
export class HostdevError extends MdevError {
  override readonly name = 'HostdevError';
  constructor(code: HostErrorCode, message: string, context?: ContextInput) {
    super(code, message, context === undefined ? {} : { context });
  }
}

/**
 * The device API of mdev `uuid`: read from the running device's type, else
 * from the type of its definition on its parent. Throws HostdevError when
 * the device is neither running nor defined, or its type cannot be read.
 */
export function deviceApiOf(env: Environment, uuid: string): string {
  const port = env.port;
  let running: { parent: string; type: string } | undefined;
  try {
    running = probeActive(port, uuid);
  } catch {
    running = undefined;
  }
  const readApi = (path: string): string | undefined => {
    try {
      return port.read(path).trim();
    } catch (err) {
      if (err instanceof ErrnoError) return undefined;
      throw err;
    }
  };
  if (running !== undefined) {
    const api = readApi(`${MDEV_BUS_DEVICES}/${uuid}/mdev_type/device_api`);
    if (api !== undefined) return api;
  }
  let def;
  try {
    def = findDefinition(env, uuid);
  } catch (err) {
    if (err instanceof MdevError) throw new HostdevError(err.code, err.message, err.context);
    throw err;
  }
  if (def === undefined) {
    throw new HostdevError(
      'device-unknown',
      `mediated device ${uuid} is neither running nor defined`,
      { uuid },
    );
  }
  const { parent, type } = def;
  const api = readApi(`${MDEV_CLASS}/${parent}/mdev_supported_types/${type}/device_api`);
  if (api === undefined) {
    throw new HostdevError(
      'type-unsupported',
      `cannot tell the device API of mediated device ${uuid}: type ${type} is not offered by parent ${parent}`,
      { uuid, parent, type },
    );
  }
  return api;
}

/** Combine a device API with the options, applying libvirt's rules. */
export function mdevHostdev(
  uuid: string,
  deviceApi: string,
  opts: HostdevOptions = {},
): MdevHostdev {
  if (!isUuid(uuid)) {
    throw new HostdevError('invalid-name', `invalid UUID ${JSON.stringify(uuid)}`, { value: uuid });
  }
  if (!isMdevModel(deviceApi)) {
    throw new HostdevError(
      'hostdev-unsupported',
      `mediated device ${uuid} has device API '${deviceApi}', which libvirt cannot assign (it knows ${MDEV_MODELS.join(', ')})`,
      { uuid, value: deviceApi },
    );
  }
  if (deviceApi !== 'vfio-pci') {
    if (opts.display !== undefined || opts.ramfb !== undefined) {
      throw new HostdevError(
        'hostdev-unsupported',
        `display and ramfb are only supported with model='vfio-pci'; mediated device ${uuid} is ${deviceApi}`,
        { uuid, value: deviceApi },
      );
    }
    return { uuid: uuid.toLowerCase(), model: deviceApi, display: undefined, ramfb: false };
  }
  const ramfb = opts.ramfb === true;
  if (ramfb && opts.display !== true) {
    throw new HostdevError(
      'hostdev-unsupported',
      `ramfb requires the display to be enabled (--display)`,
      { uuid },
    );
  }
  return {
    uuid: uuid.toLowerCase(),
    model: 'vfio-pci',
    display: opts.display === true ? 'on' : 'off',
    ramfb,
  };
}

/** The `<hostdev>` element, as libvirt formats it after parsing. */
export function hostdevXml(h: MdevHostdev): XmlElement {
  return el(
    'hostdev',
    {
      mode: 'subsystem',
      type: 'mdev',
      managed: 'no',
      model: h.model,
      display: h.display,
      ramfb: h.ramfb ? 'on' : undefined,
    },
    [el('source', {}, [el('address', { uuid: h.uuid })])],
  );
}

export function formatHostdevXml(h: MdevHostdev, indent = ''): string {
  return formatXml(hostdevXml(h), indent);
}

/** QEMU device properties in the order libvirt adds them. */
export function qemuDeviceProps(h: MdevHostdev, id = 'hostdev0'): [string, string | boolean][] {
  const props: [string, string | boolean][] = [
    ['driver', h.ramfb ? 'vfio-pci-nohotplug' : h.model],
    ['id', id],
    ['sysfsdev', `${MDEV_BUS_DEVICES}/${h.uuid}`],
  ];
  if (h.display !== undefined) props.push(['display', h.display]);
  if (h.ramfb) props.push(['ramfb', true]);
  return props;
}

/** QEMU's option syntax doubles commas inside values. */
const escapeOptValue = (v: string): string => v.replaceAll(',', ',,');

/** `-device` value in QEMU's classic key=value syntax: "vfio-pci,id=hostdev0,...". */
export function qemuDeviceClassic(h: MdevHostdev, id?: string): string {
  const props = qemuDeviceProps(h, id);
  const [, driver] = props[0]!;
  const rest = props
    .slice(1)
    .map(([k, v]) => `${k}=${typeof v === 'boolean' ? (v ? 'on' : 'off') : escapeOptValue(v)}`);
  return [escapeOptValue(String(driver)), ...rest].join(',');
}

/** `-device` value in QEMU's JSON syntax (what libvirt passes to QEMU 6.2 and later). */
export function qemuDeviceJson(h: MdevHostdev, id?: string): string {
  return JSON.stringify(Object.fromEntries(qemuDeviceProps(h, id)));
}

/** Quote one argument for a POSIX shell (single quotes). */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_\-+=/.,:@%]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}
