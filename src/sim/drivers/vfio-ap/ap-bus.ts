import { ErrnoError } from '../../../common/errno.js';
import type { DeviceNode, EmulatedKernel, UeventVar } from '../../core/kernel.js';
import type { SysfsDir } from '../../sysfs/tree.js';
import {
  AP_MASK_BITS,
  type ApMask,
  apqnText,
  formatMask,
  fullMask,
  maskOf,
  masksEqual,
  parseMaskStore,
} from './bitmap.js';

/**
 * The s390 AP bus (drivers/s390/crypto/ap_bus.c) as far as vfio-ap needs it:
 * the machine's AP configuration (crypto adapters, "cards", and the domains
 * configured for this LPAR), one queue device per adapter × domain (APQN),
 * and the host/guest split through /sys/bus/ap/apmask and aqmask.
 *
 * A queue belongs to the host's default driver (cex4queue) when its adapter
 * bit is set in apmask AND its domain bit in aqmask; every other queue is
 * free for a non-default driver, vfio_ap. Changing a mask re-binds the
 * queues whose side changed; a change that would hand the host a queue a
 * matrix device holds is refused (EBUSY) and changes nothing.
 */

export type ApCardType = 'CEX4' | 'CEX5' | 'CEX6' | 'CEX7' | 'CEX8';
/** The card's configured mode: CCA coprocessor, EP11 coprocessor or accelerator. */
export type ApCardMode = 'cca' | 'ep11' | 'accel';

export interface ApAdapterSpec {
  readonly id: number;
  readonly type: ApCardType;
  readonly mode: ApCardMode;
}

export interface ApConfiguration {
  /** The AP extended addressing facility: ids up to 255 instead of 63 adapters / 15 domains. */
  readonly apxa: boolean;
  readonly adapters: readonly ApAdapterSpec[];
  /** Usage domains configured for this LPAR. */
  readonly domains: readonly number[];
  /** Control domains configured for this LPAR (the usage domains when absent). */
  readonly controlDomains?: readonly number[] | undefined;
  /** Boot value of apmask, in the syntax the file takes (ap.apmask=); default all host. */
  readonly apmask?: string | undefined;
  /** Boot value of aqmask, in the syntax the file takes (ap.aqmask=); default all host. */
  readonly aqmask?: string | undefined;
}

/** AP_DEVICE_TYPE_CEXn: what `hwtype` shows. */
const HW_TYPE: Record<ApCardType, number> = { CEX4: 10, CEX5: 11, CEX6: 12, CEX7: 13, CEX8: 14 };
/** The mode letter of the card's `type` ("CEX8P" is a CEX8 in EP11 mode). */
const MODE_LETTER: Record<ApCardMode, string> = { cca: 'C', ep11: 'P', accel: 'A' };

/** The host's default queue driver for CEX4 and newer cards. */
export const HOST_QUEUE_DRIVER = 'cex4queue';
export const HOST_CARD_DRIVER = 'cex4card';
export const VFIO_AP_DRIVER = 'vfio_ap';

const AP_BUS = '/sys/bus/ap';
const AP_DEVICES_ROOT = '/sys/devices/ap';

/** Upper-case hex, zero-padded, as the kernel's %0NX. */
const hex = (n: number, digits: number): string =>
  n.toString(16).toUpperCase().padStart(digits, '0');

/** A queue held by a matrix device, found when the host asks for it back. */
export interface QueueInUse {
  readonly apid: number;
  readonly apqi: number;
  /** The matrix device (mdev uuid) that holds it. */
  readonly owner: string;
}

/**
 * What the AP bus asks of the non-default driver (struct ap_driver's
 * in_use and the queue probe/remove it implies).
 */
export interface NonDefaultQueueDriver {
  /** Queues of apm × aqm some matrix device holds (ap_driver.in_use). */
  queuesInUse(apm: ApMask, aqm: ApMask): QueueInUse[];
  /** Text of a vfio_ap-bound queue's `status` file. */
  queueStatus(apid: number, apqi: number): string;
  /** Queues changed driver: guests may gain or lose them. */
  bindingsChanged(): void;
}

export interface ApQueue {
  readonly apid: number;
  readonly apqi: number;
  readonly dev: DeviceNode;
  driver: string;
}

interface ApCard {
  readonly spec: ApAdapterSpec;
  readonly dev: DeviceNode;
}

export const apqnIndex = (apid: number, apqi: number): number => (apid << 8) | apqi;

export class ApBus {
  /** Highest adapter id the machine addresses (ap_max_adapter_id). */
  readonly maxAdapterId: number;
  /** Highest domain id the machine addresses (ap_max_domain_id). */
  readonly maxDomainId: number;
  /** Adapters, usage and control domains of the LPAR's AP configuration (QCI). */
  readonly configAdapters: ApMask;
  readonly configDomains: ApMask;
  readonly configControlDomains: ApMask;
  #apmask: ApMask;
  #aqmask: ApMask;
  readonly #cards = new Map<number, ApCard>();
  /** Present queues by apqnIndex. */
  readonly #queues = new Map<number, ApQueue>();
  #vfio: NonDefaultQueueDriver | undefined;
  readonly #driverDirs = new Map<string, SysfsDir>();

  constructor(
    readonly kernel: EmulatedKernel,
    config: ApConfiguration,
  ) {
    this.maxAdapterId = config.apxa ? 255 : 63;
    this.maxDomainId = config.apxa ? 255 : 15;
    for (const a of config.adapters) {
      if (a.id > this.maxAdapterId) {
        throw new ErrnoError(
          'EINVAL',
          `ap: adapter ${a.id} is above the maximum ${this.maxAdapterId}`,
        );
      }
    }
    for (const d of [...config.domains, ...(config.controlDomains ?? [])]) {
      if (d > this.maxDomainId) {
        throw new ErrnoError('EINVAL', `ap: domain ${d} is above the maximum ${this.maxDomainId}`);
      }
    }
    this.configAdapters = maskOf(config.adapters.map((a) => a.id));
    this.configDomains = maskOf(config.domains);
    this.configControlDomains = maskOf(config.controlDomains ?? config.domains);
    this.#apmask = bootMask(config.apmask, 'apmask');
    this.#aqmask = bootMask(config.aqmask, 'aqmask');
    this.#renderBus();
    for (const spec of [...config.adapters].sort((x, y) => x.id - y.id)) this.#addCard(spec);
  }

  get apmask(): ApMask {
    return this.#apmask;
  }

  get aqmask(): ApMask {
    return this.#aqmask;
  }

  /** The non-default driver registers (vfio_ap module init); queues it may take bind to it. */
  registerNonDefaultDriver(drv: NonDefaultQueueDriver): void {
    this.#vfio = drv;
    this.#rebind();
  }

  unregisterNonDefaultDriver(): void {
    this.#vfio = undefined;
    this.#rebind();
  }

  /** Does the host's default driver own this APQN (apmask AND aqmask)? */
  isHostOwned(apid: number, apqi: number): boolean {
    return this.#apmask[apid] === 1 && this.#aqmask[apqi] === 1;
  }

  /** Is the queue present and bound to vfio_ap? */
  isBoundToVfio(apid: number, apqi: number): boolean {
    return this.#queues.get(apqnIndex(apid, apqi))?.driver === VFIO_AP_DRIVER;
  }

  /** Remove the bus and every card (the emulator's module exit). */
  teardown(): void {
    this.#vfio = undefined;
    for (const card of this.#cards.values()) this.kernel.removeDevice(card.dev, { bus: 'ap' });
    this.#cards.clear();
    this.#queues.clear();
    this.kernel.tree.dirAt('/sys/devices').remove('ap');
    this.kernel.tree.dirAt('/sys/bus').remove('ap');
  }

  // ---- sysfs ------------------------------------------------------------

  #renderBus(): void {
    const t = this.kernel.tree;
    const bus = t.mkdirp(AP_BUS);
    t.mkdirp(`${AP_BUS}/devices`);
    for (const drv of [HOST_CARD_DRIVER, HOST_QUEUE_DRIVER, VFIO_AP_DRIVER]) {
      t.mkdirp(`${AP_BUS}/drivers/${drv}`);
    }
    this.kernel.addRootDevice(AP_DEVICES_ROOT); // the bus's root device "ap"
    bus.attr('ap_max_adapter_id', 0o444, { show: () => `${this.maxAdapterId}\n` });
    bus.attr('ap_max_domain_id', 0o444, { show: () => `${this.maxDomainId}\n` });
    bus.attr('ap_adapter_mask', 0o444, { show: () => `${formatMask(this.configAdapters)}\n` });
    bus.attr('ap_usage_domain_mask', 0o444, {
      show: () => `${formatMask(this.configDomains)}\n`,
    });
    bus.attr('ap_control_domain_mask', 0o444, {
      show: () => `${formatMask(this.configControlDomains)}\n`,
    });
    bus.attr('apmask', 0o644, {
      show: () => `${formatMask(this.#apmask)}\n`,
      store: (buf) => this.storeMasks(parseOrFail(this.#apmask, buf), this.#aqmask),
    });
    bus.attr('aqmask', 0o644, {
      show: () => `${formatMask(this.#aqmask)}\n`,
      store: (buf) => this.storeMasks(this.#apmask, parseOrFail(this.#aqmask, buf)),
    });
  }

  #addCard(spec: ApAdapterSpec): void {
    const cardName = `card${spec.id.toString(16).padStart(2, '0')}`;
    const hw = HW_TYPE[spec.type];
    // ap_uevent: a card's device type, modalias and mode; a queue's mode.
    const mode: UeventVar = ['MODE', spec.mode];
    const dev = this.kernel.addDevice(
      `${AP_DEVICES_ROOT}/${cardName}`,
      'ap',
      { bus: 'ap' },
      {
        busVars: () => [['DEV_TYPE', hex(hw, 4)], ['MODALIAS', `ap:t${hex(hw, 2)}`], mode],
      },
    );
    const d = dev.dir;
    d.attr('type', 0o444, { show: () => `${spec.type}${MODE_LETTER[spec.mode]}\n` });
    d.attr('hwtype', 0o444, { show: () => `${hw}\n` });
    d.attr('raw_hwtype', 0o444, { show: () => `${hw}\n` });
    d.attr('online', 0o444, { show: () => '1\n' });
    d.attr('config', 0o444, { show: () => '1\n' });
    this.#linkDriver(dev, HOST_CARD_DRIVER);
    this.#cards.set(spec.id, { spec, dev });
    for (let apqi = 0; apqi < AP_MASK_BITS; apqi++) {
      if (this.configDomains[apqi] !== 1) continue;
      const qdev = this.kernel.addDevice(
        `${dev.path}/${apqnText(spec.id, apqi)}`,
        'ap',
        { bus: 'ap' },
        { busVars: () => [mode] },
      );
      qdev.dir.attr('online', 0o444, { show: () => '1\n' });
      const queue: ApQueue = { apid: spec.id, apqi, dev: qdev, driver: '' };
      this.#queues.set(apqnIndex(spec.id, apqi), queue);
      this.#bind(queue, this.#driverFor(spec.id, apqi));
    }
  }

  #driverFor(apid: number, apqi: number): string {
    if (this.isHostOwned(apid, apqi)) return HOST_QUEUE_DRIVER;
    // A queue the host gave up stays unbound until a non-default driver is loaded.
    return this.#vfio !== undefined ? VFIO_AP_DRIVER : '';
  }

  // Links between a device under /sys/devices/ap and its driver under
  // /sys/bus/ap/drivers, as relativeLink would compute them. Both sides only
  // share /sys, so the targets are a prefix of "../" and the other path; a
  // mask rewrite re-links tens of thousands of queues, which makes the
  // shortcut worth having.
  #linkDriver(dev: DeviceNode, driver: string): void {
    const below = dev.path.slice('/sys/'.length);
    const depth = below.split('/').length;
    dev.dir.link('driver', `${'../'.repeat(depth)}bus/ap/drivers/${driver}`);
    this.#driverDir(driver).link(dev.name, `../../../../${below}`);
  }

  #unlinkDriver(dev: DeviceNode, driver: string): void {
    dev.dir.remove('driver');
    this.#driverDir(driver).remove(dev.name);
  }

  #driverDir(driver: string): SysfsDir {
    let dir = this.#driverDirs.get(driver);
    if (dir === undefined) {
      dir = this.kernel.tree.dirAt(`${AP_BUS}/drivers/${driver}`);
      this.#driverDirs.set(driver, dir);
    }
    return dir;
  }

  #bind(queue: ApQueue, driver: string): void {
    if (queue.driver === driver) return;
    const dir: SysfsDir = queue.dev.dir;
    if (queue.driver !== '') {
      this.#unlinkDriver(queue.dev, queue.driver);
      if (queue.driver === VFIO_AP_DRIVER) dir.remove('status'); // pairs with the add below
      this.kernel.emit('unbind', queue.dev.path, 'ap', { vars: queue.dev.ueventVars() });
    }
    queue.driver = driver;
    if (driver === '') return;
    this.#linkDriver(queue.dev, driver);
    if (driver === VFIO_AP_DRIVER) {
      // vfio_ap's queue probe adds the status attribute.
      const { apid, apqi } = queue;
      dir.attr('status', 0o444, {
        show: () => `${this.#vfio?.queueStatus(apid, apqi) ?? 'unassigned'}\n`,
      });
    }
    this.kernel.emit('bind', queue.dev.path, 'ap', { vars: queue.dev.ueventVars() });
  }

  /** Re-bind every present queue whose side changed; returns how many moved. */
  #rebind(): number {
    let moved = 0;
    for (const q of this.#queues.values()) {
      const want = this.#driverFor(q.apid, q.apqi);
      if (q.driver !== want) {
        this.#bind(q, want);
        moved++;
      }
    }
    return moved;
  }

  /**
   * apmask_store/aqmask_store: the new masks replace the old ones as a
   * whole, unless queues the host would newly own are held by a matrix
   * device (EBUSY, nothing changed). Then the bus re-binds.
   */
  storeMasks(apmask: ApMask, aqmask: ApMask): void {
    const oldAp = this.#apmask;
    const oldAq = this.#aqmask;
    if (masksEqual(apmask, oldAp) && masksEqual(aqmask, oldAq)) return;
    if (this.#vfio !== undefined) {
      // Newly host-owned queues: new adapters × all host domains, and all
      // host adapters × new domains (one mask changes per store).
      const gainedAp = andNot(apmask, oldAp);
      const gainedAq = andNot(aqmask, oldAq);
      const conflicts = [
        ...this.#vfio.queuesInUse(gainedAp, aqmask),
        ...this.#vfio.queuesInUse(apmask, gainedAq),
      ];
      if (conflicts.length > 0) {
        const shown = conflicts.slice(0, 16);
        for (const c of shown) {
          this.kernel.log(
            'warn',
            `vfio_ap_mdev ${c.owner}: queue ${apqnText(c.apid, c.apqi)} cannot go back to the host driver: it is assigned to this matrix device`,
          );
        }
        if (conflicts.length > shown.length) {
          this.kernel.log(
            'warn',
            `vfio_ap: ... and ${conflicts.length - shown.length} more queues in use`,
          );
        }
        const first = conflicts[0]!;
        throw new ErrnoError(
          'EBUSY',
          undefined,
          undefined,
          `queue ${apqnText(first.apid, first.apqi)} is assigned to matrix device ${first.owner}` +
            (conflicts.length > 1 ? ` (and ${conflicts.length - 1} more)` : ''),
        );
      }
    }
    this.#apmask = apmask;
    this.#aqmask = aqmask;
    const moved = this.#rebind();
    this.kernel.emit('change', AP_DEVICES_ROOT, 'ap', {
      env: { APMASK: formatMask(apmask), AQMASK: formatMask(aqmask) },
    });
    if (moved > 0) this.#vfio?.bindingsChanged();
  }
}

function andNot(a: ApMask, b: ApMask): ApMask {
  const out = new Uint8Array(AP_MASK_BITS);
  for (let i = 0; i < AP_MASK_BITS; i++) out[i] = a[i]! & (b[i]! ^ 1);
  return out;
}

function parseOrFail(current: ApMask, buf: string): ApMask {
  const next = parseMaskStore(current, buf);
  if (next === undefined) throw new ErrnoError('EINVAL');
  return next;
}

function bootMask(text: string | undefined, name: string): ApMask {
  if (text === undefined) return fullMask();
  const m = parseMaskStore(fullMask(), text);
  if (m === undefined) throw new ErrnoError('EINVAL', `ap: ap.${name}=${text} is not a valid mask`);
  return m;
}
