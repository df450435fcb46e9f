import { ErrnoError } from '../../../common/errno.js';
import { kstrtoul } from '../../../common/kstrto.js';
import type { AttributeGroup, AttributeSpec } from '../../core/driver.js';
import type { EmulatedKernel } from '../../core/kernel.js';
import { type ApBus, type NonDefaultQueueDriver, type QueueInUse, apqnIndex } from './ap-bus.js';
import {
  AP_MASK_BITS,
  type ApMask,
  apqnText,
  emptyMask,
  formatMask,
  parseHexMask,
} from './bitmap.js';

/**
 * The vfio_ap matrix devices (drivers/s390/crypto/vfio_ap_ops.c): each mdev
 * holds a matrix of adapters (apm), usage domains (aqm) and control domains
 * (adm); its queues are the cross product apm × aqm.
 *
 * The rules, checked on every assignment, so that a device is usable at any
 * moment (resources are claimed when assigned; there is no `activate`):
 *  - an id above the machine's maximum: ENODEV;
 *  - a resulting queue the host's masks keep for the default driver:
 *    EADDRNOTAVAIL;
 *  - a resulting queue another matrix device holds: EADDRINUSE (the log
 *    names the queue and its owner);
 *  - control domains are not checked against the masks.
 *
 * Data layout for speed: one owner slot per APQN (256 × 256), so an
 * assignment checks and claims only the queues it creates — at most 256 —
 * never the other devices.
 */

export class MatrixDevice {
  readonly apm = emptyMask();
  readonly aqm = emptyMask();
  readonly adm = emptyMask();
  /** The guest's view (the kernel's shadow APCB) while a VM has the device open. */
  guest: GuestMatrix | undefined;

  constructor(readonly uuid: string) {}
}

export interface GuestMatrix {
  readonly apm: ApMask;
  readonly aqm: ApMask;
  readonly adm: ApMask;
}

export class VfioApMatrix implements NonDefaultQueueDriver {
  /** Owner of each APQN, by apqnIndex; undefined when free. */
  readonly #owners: (MatrixDevice | undefined)[] = new Array<MatrixDevice | undefined>(
    AP_MASK_BITS * AP_MASK_BITS,
  ).fill(undefined);
  readonly #devices = new Map<string, MatrixDevice>();

  constructor(
    readonly kernel: EmulatedKernel,
    readonly bus: ApBus,
  ) {}

  get devices(): ReadonlyMap<string, MatrixDevice> {
    return this.#devices;
  }

  // ---- lifecycle (mdev probe/remove, open/release) ----------------------

  /** mdev probe: a new matrix device starts empty, so it conflicts with nothing. */
  add(uuid: string): MatrixDevice {
    const dev = new MatrixDevice(uuid);
    this.#devices.set(uuid, dev);
    return dev;
  }

  /** mdev remove: its queues are free again. Pairs with add. */
  delete(dev: MatrixDevice): void {
    this.#forEachQueue(dev.apm, dev.aqm, (i) => {
      if (this.#owners[i] === dev) this.#owners[i] = undefined;
    });
    this.#devices.delete(dev.uuid);
  }

  open(dev: MatrixDevice): void {
    dev.guest = this.guestMatrix(dev);
    this.kernel.log(
      'info',
      `vfio_ap_mdev ${dev.uuid}: guest started with ${countQueues(dev.guest)} queue(s)`,
    );
  }

  release(dev: MatrixDevice): void {
    dev.guest = undefined;
  }

  // ---- the assignment rules ---------------------------------------------

  assignAdapter(dev: MatrixDevice, apid: number): void {
    if (apid > this.bus.maxAdapterId) throw this.#noSuchId(dev, 'adapter', apid);
    if (dev.apm[apid] === 1) return;
    const one = emptyMask();
    one[apid] = 1;
    this.#checkNewQueues(dev, one, dev.aqm);
    this.#claim(dev, one, dev.aqm);
    dev.apm[apid] = 1;
    this.#matrixChanged(dev);
  }

  unassignAdapter(dev: MatrixDevice, apid: number): void {
    if (apid > this.bus.maxAdapterId) throw this.#noSuchId(dev, 'adapter', apid);
    if (dev.apm[apid] !== 1) return;
    const one = emptyMask();
    one[apid] = 1;
    this.#unclaim(dev, one, dev.aqm);
    dev.apm[apid] = 0;
    this.#matrixChanged(dev);
  }

  assignDomain(dev: MatrixDevice, apqi: number): void {
    if (apqi > this.bus.maxDomainId) throw this.#noSuchId(dev, 'domain', apqi);
    if (dev.aqm[apqi] === 1) return;
    const one = emptyMask();
    one[apqi] = 1;
    this.#checkNewQueues(dev, dev.apm, one);
    this.#claim(dev, dev.apm, one);
    dev.aqm[apqi] = 1;
    this.#matrixChanged(dev);
  }

  unassignDomain(dev: MatrixDevice, apqi: number): void {
    if (apqi > this.bus.maxDomainId) throw this.#noSuchId(dev, 'domain', apqi);
    if (dev.aqm[apqi] !== 1) return;
    const one = emptyMask();
    one[apqi] = 1;
    this.#unclaim(dev, dev.apm, one);
    dev.aqm[apqi] = 0;
    this.#matrixChanged(dev);
  }

  assignControlDomain(dev: MatrixDevice, id: number): void {
    if (id > this.bus.maxDomainId) throw this.#noSuchId(dev, 'control domain', id);
    if (dev.adm[id] === 1) return;
    dev.adm[id] = 1;
    this.#matrixChanged(dev);
  }

  unassignControlDomain(dev: MatrixDevice, id: number): void {
    if (id > this.bus.maxDomainId) throw this.#noSuchId(dev, 'control domain', id);
    if (dev.adm[id] !== 1) return;
    dev.adm[id] = 0;
    this.#matrixChanged(dev);
  }

  /**
   * ap_config_store: replace all three masks at once, or fail with nothing
   * changed. Checks in the kernel's order: the host's masks, sharing, then
   * ids above the maximum.
   */
  replaceConfig(dev: MatrixDevice, apm: ApMask, aqm: ApMask, adm: ApMask): void {
    this.#checkHostOwnership(dev, apm, aqm);
    this.#checkSharing(dev, apm, aqm);
    // ap_matrix_overflow_check, after the other two as in the kernel.
    const limits: [ApMask, number, string][] = [
      [apm, this.bus.maxAdapterId, 'adapter'],
      [aqm, this.bus.maxDomainId, 'domain'],
      [adm, this.bus.maxDomainId, 'control domain'],
    ];
    for (const [mask, max, what] of limits) {
      if (highest(mask) > max) throw this.#noSuchId(dev, what, highest(mask));
    }
    this.#unclaim(dev, dev.apm, dev.aqm);
    dev.apm.set(apm);
    dev.aqm.set(aqm);
    dev.adm.set(adm);
    this.#claim(dev, dev.apm, dev.aqm);
    this.#matrixChanged(dev);
  }

  /** Only the queues apm × aqm adds to `dev`: the ones it holds already passed. */
  #checkNewQueues(dev: MatrixDevice, apm: ApMask, aqm: ApMask): void {
    this.#checkHostOwnership(dev, apm, aqm);
    this.#checkSharing(dev, apm, aqm);
  }

  #checkHostOwnership(dev: MatrixDevice, apm: ApMask, aqm: ApMask): void {
    // The kernel asks whether apm meets apmask and aqm meets aqmask; that
    // is the same as "some queue of apm × aqm is the host's".
    const hostAp = firstCommon(apm, this.bus.apmask);
    const hostAq = firstCommon(aqm, this.bus.aqmask);
    if (hostAp < 0 || hostAq < 0) return;
    const q = apqnText(hostAp, hostAq);
    this.kernel.log(
      'warn',
      `vfio_ap_mdev ${dev.uuid}: queue ${q} is reserved for the host's drivers by apmask/aqmask`,
    );
    throw new ErrnoError(
      'EADDRNOTAVAIL',
      undefined,
      undefined,
      `queue ${q} belongs to the host (apmask/aqmask); free it for guests first`,
    );
  }

  #checkSharing(dev: MatrixDevice, apm: ApMask, aqm: ApMask): void {
    let first: QueueInUse | undefined;
    let count = 0;
    this.#forEachQueue(apm, aqm, (i, apid, apqi) => {
      const owner = this.#owners[i];
      if (owner === undefined || owner === dev) return;
      count++;
      if (count <= 16) {
        this.kernel.log(
          'warn',
          `vfio_ap_mdev ${dev.uuid}: cannot assign queue ${apqnText(apid, apqi)}: already assigned to ${owner.uuid}`,
        );
      }
      first ??= { apid, apqi, owner: owner.uuid };
    });
    if (first === undefined) return;
    throw new ErrnoError(
      'EADDRINUSE',
      undefined,
      undefined,
      `queue ${apqnText(first.apid, first.apqi)} is assigned to matrix device ${first.owner}` +
        (count > 1 ? ` (and ${count - 1} more)` : ''),
    );
  }

  #noSuchId(dev: MatrixDevice, what: string, id: number): ErrnoError {
    const max = what === 'adapter' ? this.bus.maxAdapterId : this.bus.maxDomainId;
    return new ErrnoError(
      'ENODEV',
      undefined,
      undefined,
      `${what} ${id} (0x${id.toString(16)}) is above the maximum ${max} for matrix device ${dev.uuid}`,
    );
  }

  #claim(dev: MatrixDevice, apm: ApMask, aqm: ApMask): void {
    this.#forEachQueue(apm, aqm, (i) => {
      this.#owners[i] = dev;
    });
  }

  #unclaim(dev: MatrixDevice, apm: ApMask, aqm: ApMask): void {
    this.#forEachQueue(apm, aqm, (i) => {
      if (this.#owners[i] === dev) this.#owners[i] = undefined;
    });
  }

  #forEachQueue(
    apm: ApMask,
    aqm: ApMask,
    fn: (index: number, apid: number, apqi: number) => void,
  ): void {
    // Collect the domains once; the adapter loop then visits only real queues.
    const domains: number[] = [];
    for (let d = 0; d < AP_MASK_BITS; d++) if (aqm[d] === 1) domains.push(d);
    if (domains.length === 0) return;
    for (let a = 0; a < AP_MASK_BITS; a++) {
      if (apm[a] !== 1) continue;
      for (const d of domains) fn(apqnIndex(a, d), a, d);
    }
  }

  // ---- what the guest sees ------------------------------------------------

  /**
   * vfio_ap_mdev_filter_matrix/_cdoms: the matrix limited to the adapters
   * and domains in the AP configuration, minus every adapter with a queue
   * that is not bound to vfio_ap (the APCB cannot drop a single queue).
   */
  guestMatrix(dev: MatrixDevice): GuestMatrix {
    const apm = and(dev.apm, this.bus.configAdapters);
    const aqm = and(dev.aqm, this.bus.configDomains);
    const adm = and(dev.adm, this.bus.configControlDomains);
    for (let a = 0; a < AP_MASK_BITS; a++) {
      if (apm[a] !== 1) continue;
      for (let d = 0; d < AP_MASK_BITS; d++) {
        if (aqm[d] === 1 && !this.bus.isBoundToVfio(a, d)) {
          apm[a] = 0;
          break;
        }
      }
    }
    return { apm, aqm, adm };
  }

  /** While a VM holds the device, a change of its matrix is hot-plugged into the guest. */
  #matrixChanged(dev: MatrixDevice): void {
    if (dev.guest === undefined) return;
    const before = dev.guest;
    const after = this.guestMatrix(dev);
    dev.guest = after;
    const plugged = diffQueues(after, before);
    const unplugged = diffQueues(before, after);
    const cdomsIn = diffIds(after.adm, before.adm);
    const cdomsOut = diffIds(before.adm, after.adm);
    const parts: string[] = [];
    if (plugged.length > 0) parts.push(`plugged ${summarize(plugged)}`);
    if (unplugged.length > 0) parts.push(`unplugged ${summarize(unplugged)}`);
    if (cdomsIn.length > 0) parts.push(`control domains +${cdomsIn.join(',+')}`);
    if (cdomsOut.length > 0) parts.push(`control domains -${cdomsOut.join(',-')}`);
    if (parts.length > 0) {
      this.kernel.log('info', `vfio_ap_mdev ${dev.uuid}: guest hot plug: ${parts.join('; ')}`);
    }
  }

  // ---- what the AP bus asks ---------------------------------------------

  queuesInUse(apm: ApMask, aqm: ApMask): QueueInUse[] {
    const found: QueueInUse[] = [];
    this.#forEachQueue(apm, aqm, (i, apid, apqi) => {
      const owner = this.#owners[i];
      if (owner !== undefined) found.push({ apid, apqi, owner: owner.uuid });
    });
    return found;
  }

  queueStatus(apid: number, apqi: number): string {
    const owner = this.#owners[apqnIndex(apid, apqi)];
    if (owner === undefined) return 'unassigned';
    const g = owner.guest;
    return g !== undefined && g.apm[apid] === 1 && g.aqm[apqi] === 1 ? 'in use' : 'assigned';
  }

  bindingsChanged(): void {
    for (const dev of this.#devices.values()) this.#matrixChanged(dev);
  }

  // ---- sysfs attributes ---------------------------------------------------

  attributeGroups(dev: MatrixDevice): AttributeGroup[] {
    const idStore =
      (op: (dev: MatrixDevice, id: number) => void): ((buf: string) => void) =>
      (buf) => {
        const id = kstrtoul(buf, 0);
        if (id === undefined) throw new ErrnoError('EINVAL');
        op.call(this, dev, id);
      };
    const wo = (name: string, op: (dev: MatrixDevice, id: number) => void): AttributeSpec => ({
      name,
      mode: 0o200,
      store: idStore(op),
    });
    return [
      {
        attrs: [
          wo('assign_adapter', this.assignAdapter),
          wo('unassign_adapter', this.unassignAdapter),
          wo('assign_domain', this.assignDomain),
          wo('unassign_domain', this.unassignDomain),
          wo('assign_control_domain', this.assignControlDomain),
          wo('unassign_control_domain', this.unassignControlDomain),
          { name: 'matrix', mode: 0o444, show: () => showMatrix(dev.apm, dev.aqm) },
          {
            name: 'guest_matrix',
            mode: 0o444,
            show: () => {
              const g = dev.guest ?? this.guestMatrix(dev);
              return showMatrix(g.apm, g.aqm);
            },
          },
          {
            name: 'control_domains',
            mode: 0o444,
            show: () =>
              idsOf(dev.adm)
                .map((d) => `${hex(d, 4)}\n`)
                .join(''),
          },
          {
            name: 'ap_config',
            mode: 0o644,
            show: () => `${formatMask(dev.apm)},${formatMask(dev.aqm)},${formatMask(dev.adm)}\n`,
            store: (buf) => {
              const [apm, aqm, adm] = parseApConfig(buf);
              this.replaceConfig(dev, apm, aqm, adm);
            },
          },
        ],
      },
    ];
  }
}

/**
 * ap_config's store: three absolute masks separated by commas (each split
 * off at "," or newline, as strsep does); fewer than three is EINVAL.
 */
function parseApConfig(buf: string): [ApMask, ApMask, ApMask] {
  const masks: ApMask[] = [];
  let rest: string | undefined = buf;
  for (let i = 0; i < 3; i++) {
    if (rest === undefined) throw new ErrnoError('EINVAL');
    const cut: number = rest.search(/[,\n]/);
    const field: string = cut < 0 ? rest : rest.slice(0, cut);
    rest = cut < 0 ? undefined : rest.slice(cut + 1);
    const mask = parseHexMask(field);
    if (mask === undefined) throw new ErrnoError('EINVAL');
    masks.push(mask);
  }
  return masks as [ApMask, ApMask, ApMask];
}

/**
 * `matrix` and `guest_matrix`: one "aa.dddd" line per queue; while one side
 * is empty, the other side alone ("aa." or ".dddd" lines).
 */
export function showMatrix(apm: ApMask, aqm: ApMask): string {
  const adapters = idsOf(apm);
  const domains = idsOf(aqm);
  if (adapters.length > 0 && domains.length > 0) {
    let out = '';
    for (const a of adapters) for (const d of domains) out += `${apqnText(a, d)}\n`;
    return out;
  }
  if (adapters.length > 0) return adapters.map((a) => `${hex(a, 2)}.\n`).join('');
  return domains.map((d) => `.${hex(d, 4)}\n`).join('');
}

const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0');

function idsOf(mask: ApMask): number[] {
  const ids: number[] = [];
  for (let i = 0; i < AP_MASK_BITS; i++) if (mask[i] === 1) ids.push(i);
  return ids;
}

function and(a: ApMask, b: ApMask): ApMask {
  const out = new Uint8Array(AP_MASK_BITS);
  for (let i = 0; i < AP_MASK_BITS; i++) out[i] = a[i]! & b[i]!;
  return out;
}

function firstCommon(a: ApMask, b: ApMask): number {
  for (let i = 0; i < AP_MASK_BITS; i++) if (a[i] === 1 && b[i] === 1) return i;
  return -1;
}

function highest(mask: ApMask): number {
  for (let i = AP_MASK_BITS - 1; i >= 0; i--) if (mask[i] === 1) return i;
  return -1;
}

function countQueues(g: GuestMatrix): number {
  return idsOf(g.apm).length * idsOf(g.aqm).length;
}

/** Queues of `a` that `b` lacks. */
function diffQueues(a: GuestMatrix, b: GuestMatrix): string[] {
  const out: string[] = [];
  for (const apid of idsOf(a.apm)) {
    for (const apqi of idsOf(a.aqm)) {
      if (b.apm[apid] !== 1 || b.aqm[apqi] !== 1) out.push(apqnText(apid, apqi));
    }
  }
  return out;
}

function diffIds(a: ApMask, b: ApMask): string[] {
  return idsOf(a)
    .filter((i) => b[i] !== 1)
    .map((i) => hex(i, 4));
}

function summarize(queues: string[]): string {
  return queues.length <= 8
    ? queues.join(',')
    : `${queues.slice(0, 8).join(',')} and ${queues.length - 8} more`;
}
