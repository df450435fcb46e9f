import { ErrnoError } from '../../common/errno.js';
import type { SysfsPort } from '../../port/sysfs-port.js';
import { MdevError } from '../errors.js';

/**
 * The host's AP state read through sysfs files only: the bus's maxima and
 * masks, the AP configuration (cards, usage and control domains), the
 * present queues with their driver, and every vfio_ap matrix device with
 * its adapters, domains and control domains (from `ap_config`, or from
 * `matrix` and `control_domains` on kernels without it).
 */

export const AP_BUS = '/sys/bus/ap';
export const MATRIX_PARENT = '/sys/devices/vfio_ap/matrix';
export const MATRIX_TYPE = 'vfio_ap-passthrough';
export const MATRIX_TYPE_DIR = `${MATRIX_PARENT}/mdev_supported_types/${MATRIX_TYPE}`;
export const MDEV_DEVICES = '/sys/bus/mdev/devices';
const BITS = 256;

export interface ApAdapter {
  readonly id: number;
  /** The card's `type`, e.g. "CEX8P"; undefined when the card dir is missing. */
  readonly type: string | undefined;
}

export interface ApQueueInfo {
  readonly apid: number;
  readonly apqi: number;
  /** Driver bound now ("cex4queue", "vfio_ap") or "" when none. */
  readonly driver: string;
  /** vfio_ap's `status` ("assigned", "unassigned", "in use") when bound to it. */
  readonly status: string | undefined;
}

export interface MatrixConfig {
  readonly adapters: readonly number[];
  readonly domains: readonly number[];
  readonly controlDomains: readonly number[];
}

export interface MatrixDeviceInfo extends MatrixConfig {
  readonly uuid: string;
  /** Queues the guest sees (`guest_matrix`), "aa.dddd". */
  readonly guestQueues: readonly string[];
}

export interface ApHost {
  readonly maxAdapterId: number;
  readonly maxDomainId: number;
  readonly apmask: readonly boolean[];
  readonly aqmask: readonly boolean[];
  readonly adapters: readonly ApAdapter[];
  /** Usage domains of the AP configuration. */
  readonly domains: readonly number[];
  readonly controlDomains: readonly number[];
  /** Present queues by apqnKey. */
  readonly queues: ReadonlyMap<number, ApQueueInfo>;
  /** Matrix devices sorted by uuid; empty when vfio_ap is not loaded. */
  readonly devices: readonly MatrixDeviceInfo[];
  readonly vfioApLoaded: boolean;
}

export const apqnKey = (apid: number, apqi: number): number => (apid << 8) | apqi;

export const apqnName = (apid: number, apqi: number): string =>
  `${apid.toString(16).padStart(2, '0')}.${apqi.toString(16).padStart(4, '0')}`;

const chomp = (s: string): string => s.replace(/\n$/, '');

/** A mask as sysfs shows it ("0x" + hex, bit 0 leftmost) to one boolean per id. */
export function parseMaskText(text: string, where: string): boolean[] {
  const m = /^0x([0-9a-fA-F]{1,64})$/.exec(chomp(text).trim());
  if (m === null) {
    throw new MdevError('sysfs-malformed', `${where}: '${chomp(text)}' is not an AP mask`, {
      context: { file: where, value: chomp(text) },
    });
  }
  const bits = new Array<boolean>(BITS).fill(false);
  const digits = m[1]!;
  for (let i = 0; i < digits.length; i++) {
    const v = parseInt(digits[i]!, 16);
    for (let n = 0; n < 4; n++) bits[i * 4 + n] = (v & (0x8 >> n)) !== 0;
  }
  return bits;
}

/** Ids to "0x" and 64 hex digits, as ap_config and apmask take them. */
export function formatMaskText(ids: Iterable<number>): string {
  const bits = new Array<number>(BITS).fill(0);
  for (const i of ids) bits[i] = 1;
  let out = '0x';
  for (let n = 0; n < BITS / 4; n++) {
    const i = n * 4;
    out += ((bits[i]! << 3) | (bits[i + 1]! << 2) | (bits[i + 2]! << 1) | bits[i + 3]!).toString(
      16,
    );
  }
  return out;
}

export const idsOfMask = (mask: readonly boolean[]): number[] =>
  mask.flatMap((set, i) => (set ? [i] : []));

function readIfExists(port: SysfsPort, path: string): string | undefined {
  try {
    return port.read(path);
  } catch (err) {
    if (err instanceof ErrnoError && (err.code === 'ENOENT' || err.code === 'ENOTDIR'))
      return undefined;
    throw err;
  }
}

/** "aa.dddd", "aa." and ".dddd" lines of `matrix` to the matrix's ids. */
function parseMatrixLines(text: string): {
  adapters: number[];
  domains: number[];
  queues: string[];
} {
  const adapters = new Set<number>();
  const domains = new Set<number>();
  const queues: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{2})?\.([0-9a-f]{4})?$/.exec(line.trim());
    if (m === null) continue;
    if (m[1] !== undefined) adapters.add(parseInt(m[1], 16));
    if (m[2] !== undefined) domains.add(parseInt(m[2], 16));
    if (m[1] !== undefined && m[2] !== undefined) queues.push(line.trim());
  }
  const sorted = (s: Set<number>): number[] => [...s].sort((a, b) => a - b);
  return { adapters: sorted(adapters), domains: sorted(domains), queues };
}

/** A matrix device's adapters, domains and control domains. */
export function readMatrixConfig(port: SysfsPort, uuid: string): MatrixConfig {
  const dir = `${MDEV_DEVICES}/${uuid}`;
  const apConfig = readIfExists(port, `${dir}/ap_config`);
  if (apConfig !== undefined) {
    const parts = chomp(apConfig).split(',');
    if (parts.length !== 3) {
      throw new MdevError(
        'sysfs-malformed',
        `${dir}/ap_config: unexpected contents '${chomp(apConfig)}'`,
        { context: { uuid, file: `${dir}/ap_config`, value: chomp(apConfig) } },
      );
    }
    const [apm, aqm, adm] = parts.map((p) => idsOfMask(parseMaskText(p, `${dir}/ap_config`)));
    return { adapters: apm!, domains: aqm!, controlDomains: adm! };
  }
  const m = parseMatrixLines(port.read(`${dir}/matrix`));
  const cdoms = port
    .read(`${dir}/control_domains`)
    .split('\n')
    .filter((l) => /^[0-9a-f]+$/.test(l.trim()))
    .map((l) => parseInt(l, 16));
  return { adapters: m.adapters, domains: m.domains, controlDomains: cdoms };
}

/**
 * Is this mdev a vfio_ap matrix device? Throws `not-active` when no such
 * device runs, `not-matrix-device` when it has another type.
 */
export function requireMatrixDevice(port: SysfsPort, uuid: string): void {
  const dir = `${MDEV_DEVICES}/${uuid}`;
  if (port.kind(dir) === null) {
    throw new MdevError('not-active', `no mediated device ${uuid} is active (looked for ${dir})`, {
      context: { uuid },
    });
  }
  const type = port.realpath(`${dir}/mdev_type`).split('/').at(-1);
  if (type !== MATRIX_TYPE) {
    throw new MdevError(
      'not-matrix-device',
      `mediated device ${uuid} is of type ${type ?? '?'}, not a vfio_ap matrix device (${MATRIX_TYPE})`,
      { context: { uuid, type } },
    );
  }
}

export function matrixDeviceUuids(port: SysfsPort): string[] {
  if (port.kind(`${MATRIX_TYPE_DIR}/devices`) === null) return [];
  return port.list(`${MATRIX_TYPE_DIR}/devices`).sort();
}

export function readApHost(port: SysfsPort): ApHost {
  if (port.kind(AP_BUS) === null) {
    throw new MdevError(
      'not-ap-host',
      `no AP bus at ${AP_BUS} (${port.description}): this is not an s390 host with crypto adapters`,
      { context: { path: AP_BUS } },
    );
  }
  const num = (file: string): number => {
    const v = Number.parseInt(chomp(port.read(`${AP_BUS}/${file}`)), 10);
    if (Number.isNaN(v)) {
      throw new MdevError('sysfs-malformed', `${AP_BUS}/${file}: not a number`, {
        context: { file: `${AP_BUS}/${file}` },
      });
    }
    return v;
  };
  const mask = (file: string): boolean[] =>
    parseMaskText(port.read(`${AP_BUS}/${file}`), `${AP_BUS}/${file}`);
  const maxAdapterId = num('ap_max_adapter_id');
  const maxDomainId = num('ap_max_domain_id');

  const queues = new Map<number, ApQueueInfo>();
  const cards = new Set<number>();
  for (const name of port.list(`${AP_BUS}/devices`)) {
    const card = /^card([0-9a-f]{2})$/.exec(name);
    if (card !== null) {
      cards.add(parseInt(card[1]!, 16));
      continue;
    }
    const q = /^([0-9a-f]{2})\.([0-9a-f]{4})$/.exec(name);
    if (q === null) continue;
    const apid = parseInt(q[1]!, 16);
    const apqi = parseInt(q[2]!, 16);
    const dir = `${AP_BUS}/devices/${name}`;
    const driver =
      port.kind(`${dir}/driver`) === 'link'
        ? port.readlink(`${dir}/driver`).split('/').at(-1)!
        : '';
    const status = driver === 'vfio_ap' ? readIfExists(port, `${dir}/status`) : undefined;
    queues.set(apqnKey(apid, apqi), {
      apid,
      apqi,
      driver,
      status: status === undefined ? undefined : chomp(status),
    });
  }

  // The configuration masks are newer files; fall back to what the queues show.
  const adapterMask = readIfExists(port, `${AP_BUS}/ap_adapter_mask`);
  const domainMask = readIfExists(port, `${AP_BUS}/ap_usage_domain_mask`);
  const controlMask = readIfExists(port, `${AP_BUS}/ap_control_domain_mask`);
  const adapterIds =
    adapterMask !== undefined
      ? idsOfMask(parseMaskText(adapterMask, 'ap_adapter_mask'))
      : [...cards].sort((a, b) => a - b);
  const domains =
    domainMask !== undefined
      ? idsOfMask(parseMaskText(domainMask, 'ap_usage_domain_mask'))
      : [...new Set([...queues.values()].map((q) => q.apqi))].sort((a, b) => a - b);
  const controlDomains =
    controlMask !== undefined
      ? idsOfMask(parseMaskText(controlMask, 'ap_control_domain_mask'))
      : domains;
  const adapters = adapterIds.map((id): ApAdapter => {
    const type = readIfExists(
      port,
      `${AP_BUS}/devices/card${id.toString(16).padStart(2, '0')}/type`,
    );
    return { id, type: type === undefined ? undefined : chomp(type) };
  });

  const vfioApLoaded = port.kind(MATRIX_TYPE_DIR) !== null;
  const devices = matrixDeviceUuids(port).map((uuid): MatrixDeviceInfo => {
    const guest = readIfExists(port, `${MDEV_DEVICES}/${uuid}/guest_matrix`);
    return {
      uuid,
      ...readMatrixConfig(port, uuid),
      guestQueues: guest === undefined ? [] : parseMatrixLines(guest).queues,
    };
  });
  return {
    maxAdapterId,
    maxDomainId,
    apmask: mask('apmask'),
    aqmask: mask('aqmask'),
    adapters,
    domains,
    controlDomains,
    queues,
    devices,
    vfioApLoaded,
  };
}

/** Who holds each queue: matrix device uuid by apqnKey. */
export function queueOwners(host: ApHost): Map<number, string> {
  const owners = new Map<number, string>();
  for (const d of host.devices) {
    for (const a of d.adapters) for (const q of d.domains) owners.set(apqnKey(a, q), d.uuid);
  }
  return owners;
}

export const hostOwns = (
  host: Pick<ApHost, 'apmask' | 'aqmask'>,
  apid: number,
  apqi: number,
): boolean => host.apmask[apid] === true && host.aqmask[apqi] === true;
