import type { AttrOps } from '../sysfs/tree.js';
import type { AggregationHooks } from './aggregation.js';
import type { MdevDevice, MdevParent, MdevType } from './mdev-core.js';

/**
 * The vendor-driver interface, shaped like the kernel's `struct mdev_driver`
 * and `struct mdev_type` (include/linux/mdev.h). A driver supplies data and
 * a few hooks; the core alone renders the standard sysfs ABI (create, name,
 * description, device_api, available_instances, devices/, remove,
 * mdev_type) and owns the device lifecycle.
 */

/** One sysfs attribute a driver adds (to a type, a device or a parent). */
export interface AttributeSpec extends AttrOps {
  readonly name: string;
  /** sysfs mode bits: 0o444 read-only, 0o644 read-write, 0o200 write-only. */
  readonly mode: number;
}

/** A named attribute group ("vendor", "nvidia", "mdev/aggregation") or the device dir itself. */
export interface AttributeGroup {
  /** Subdirectory of the device dir; absent for attributes directly in it. */
  readonly name?: string;
  readonly attrs: readonly AttributeSpec[];
}

/** What the driver declares for one type (kernel: struct mdev_type, set before register). */
export interface MdevTypeSpec {
  /** Driver-local name; the directory is `<driver name>-<sysfsName>`. */
  readonly sysfsName: string;
  /** Shown by `name`; the core falls back to sysfsName when absent. */
  readonly prettyName?: string;
  /** Extra type attributes beyond the standard ones (e.g. `aggregation`). */
  readonly attributes?: readonly AttributeSpec[];
}

export interface MdevDriver {
  /**
   * Prefix of type directories: in the kernel, the name of the driver bound
   * to the parent device ("i915", "vfio_ap", "nvidia").
   */
  readonly name: string;
  /**
   * The mdev driver's own name, its directory under /sys/bus/mdev/drivers
   * and the target of each device's `driver` link (kernel: struct
   * mdev_driver's driver.name, e.g. "vfio_ap_mdev"); defaults to `name`.
   */
  readonly mdevDriverName?: string;
  /** `device_api` of every type: "vfio-pci", "vfio-ccw", "vfio-ap". */
  readonly deviceApi: string;
  /**
   * When set and `getAvailable` is not, the core counts instances per parent
   * and refuses create with EUSERS at zero (as mdev_device_create does).
   */
  readonly maxInstances?: number;
  /** The driver counts: available_instances shows this. */
  getAvailable?(type: MdevType): number;
  /** Text of the type's `description`; without it the file does not exist. */
  showDescription?(type: MdevType): string;
  /**
   * Bind to a new device: claim its resources or throw an ErrnoError
   * (the samples refuse with ENOSPC when their pool is short). Runs after
   * the core's own checks; a throw leaves nothing behind.
   */
  probe(mdev: MdevDevice): void;
  /** Unbind: give back what probe claimed. Pairs with probe. */
  remove(mdev: MdevDevice): void;
  /** Attribute groups of a bound device (kernel: driver.dev_groups). */
  deviceGroups?(mdev: MdevDevice): readonly AttributeGroup[];
  /** A user (a VM) opens the device; may refuse with an ErrnoError. */
  open?(mdev: MdevDevice): void;
  /** The last user closed the device. Pairs with open. */
  release?(mdev: MdevDevice): void;
  /**
   * May the device be removed now? Throw (EBUSY) to refuse. The core already
   * refuses removal of an open device (see MdevCore.remove).
   */
  canRemove?(mdev: MdevDevice): void;
  /** Called once the parent is registered (e.g. to add parent attributes). */
  parentRegistered?(parent: MdevParent): void;
  /**
   * Aggregation (seed 001): one device holding several instances' worth of
   * its type. The sysfs side is standard and rendered by the core (type
   * attribute `aggregation`, device namespace `mdev/aggregation/`); the
   * driver only says how far each type may aggregate and moves resources.
   * See ./aggregation.ts.
   */
  readonly aggregation?: AggregationHooks;
}
