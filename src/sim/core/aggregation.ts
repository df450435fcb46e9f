import { fail } from '../../common/errno.js';
import { kstrtoul } from '../../common/kstrto.js';
import type { AttributeGroup, AttributeSpec } from './driver.js';
import type { MdevDevice, MdevType } from './mdev-core.js';

/**
 * Aggregation, the standard way for one mdev to hold several instances'
 * worth of its type (seed 001, where the thread landed): not a create-time
 * parameter but an attribute of the device, settable after create and until
 * the device is opened, so that mdevctl's
 *
 *   mdevctl define -u U -p P -t T
 *   mdevctl modify -u U --addattr=mdev/aggregation/value --value=2
 *   mdevctl start -u U
 *
 * works unchanged (start creates the device, then writes the attribute, and
 * unwinds the device if the write fails).
 *
 * The sysfs side is the same for every driver, so the core renders it:
 *
 *   <type>/aggregation               0444  the most instances one device of
 *                                          this type could aggregate now:
 *                                          min(max, available_instances).
 *                                          Present only on types that
 *                                          aggregate: its presence is the
 *                                          discovery mechanism.
 *   <device>/mdev/aggregation/value  0644  instances' worth this device holds
 *                                          (1 after create)
 *   <device>/mdev/aggregation/max    0444  the most one device of the type may
 *                                          aggregate (a per-type limit of the
 *                                          driver, not of what is free now)
 *
 * A write to `value` is checked in this order:
 *   1. not a number by kstrtoul's rules (base 0) -> EINVAL;
 *   2. the device is open (a VM uses it)         -> EBUSY, whatever the value;
 *   3. 0, or above `max`                         -> EINVAL;
 *   4. the current value                         -> success, nothing moves;
 *   5. otherwise the driver resizes: raising claims resources from the
 *      parent or fails with ENOSPC leaving the device as it was; lowering
 *      gives them back.
 * Because `max` is a fixed limit, EINVAL means "never possible" and ENOSPC
 * means "not possible now": a tool can tell the two apart.
 */
export interface AggregationHooks {
  /**
   * The most instances one device of `type` may aggregate. 1 or less means
   * the type does not aggregate: it gets no `aggregation` attribute and its
   * devices no `mdev/aggregation/` namespace.
   */
  maxFor(type: MdevType): number;
  /**
   * Move `mdev` from `from` to `to` instances' worth of resources
   * (1 <= from, to <= maxFor(type); from !== to). Either succeeds entirely
   * or throws (ENOSPC when raising past what the parent has left) having
   * changed nothing. Runs with `mdev.aggregation === from`; the core sets
   * it to `to` afterwards. The driver's `remove` gives back
   * `mdev.aggregation` instances' worth (pairs with probe plus resizes).
   */
  resize(mdev: MdevDevice, from: number, to: number): void;
}

/** The standard device attribute group, relative to the device dir. */
export const AGGREGATION_GROUP = 'mdev/aggregation';

/** Does this type aggregate (does the driver allow more than one instance per device)? */
export function typeAggregates(type: MdevType): boolean {
  const hooks = type.parent.driver.aggregation;
  return hooks !== undefined && hooks.maxFor(type) > 1;
}

/** The type attribute `aggregation`: what one new device could aggregate now. */
export function typeAggregationAttr(type: MdevType, hooks: AggregationHooks): AttributeSpec {
  return {
    name: 'aggregation',
    mode: 0o444,
    show: () => `${Math.min(hooks.maxFor(type), type.availableInstances)}\n`,
  };
}

/**
 * The device group `mdev/aggregation/{value,max}`. `isLive` tells whether
 * the device still exists: a writer may hold the file open across a remove,
 * and the store must not touch a device that is gone (ENODEV).
 */
export function deviceAggregationGroup(
  mdev: MdevDevice,
  hooks: AggregationHooks,
  isLive: () => boolean,
): AttributeGroup {
  const max = (): number => hooks.maxFor(mdev.type);
  return {
    name: AGGREGATION_GROUP,
    attrs: [
      {
        name: 'value',
        mode: 0o644,
        show: () => `${mdev.aggregation}\n`,
        store: (buf) => storeAggregation(mdev, hooks, max(), isLive, buf),
      },
      { name: 'max', mode: 0o444, show: () => `${max()}\n` },
    ],
  };
}

function storeAggregation(
  mdev: MdevDevice,
  hooks: AggregationHooks,
  max: number,
  isLive: () => boolean,
  buf: string,
): void {
  const want = kstrtoul(buf, 0);
  if (want === undefined) fail('EINVAL', `mdev: aggregation value must be a number`);
  if (!isLive()) fail('ENODEV');
  if (mdev.isOpen) {
    fail('EBUSY', `mdev: ${mdev.uuid} is open; aggregation can change only while it is closed`);
  }
  if (want === 0 || want > max) {
    fail('EINVAL', `mdev: aggregation of ${mdev.type.id} must be between 1 and ${max}`);
  }
  const have = mdev.aggregation;
  if (want === have) return;
  hooks.resize(mdev, have, want); // throws with nothing changed, or succeeds
  mdev.aggregation = want;
}
