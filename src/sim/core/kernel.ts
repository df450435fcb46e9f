import { SysfsDir, SysfsTree, relativeLink } from '../sysfs/tree.js';

/**
 * The emulated kernel's device model: the sysfs tree with the standard
 * skeleton, device directories with their bus/class links, IOMMU groups,
 * uevents and a dmesg-like log. The mdev core and the vendor drivers build
 * on it as kernel code builds on the driver core.
 */

export type UeventAction = 'add' | 'remove' | 'change' | 'bind' | 'unbind';

export interface Uevent {
  readonly seqnum: number;
  readonly action: UeventAction;
  /** Device path below /sys, as udev's DEVPATH ("/devices/virtual/mtty/mtty"). */
  readonly devpath: string;
  readonly subsystem: string;
  /** Extra environment, e.g. MDEV_STATE=registered. */
  readonly env: Readonly<Record<string, string>>;
}

export type UeventListener = (event: Uevent) => void;

export interface KernelLogLine {
  readonly seq: number;
  readonly level: 'info' | 'warn' | 'err';
  readonly message: string;
}

/** A device directory under /sys/devices. */
export interface DeviceNode {
  /** Absolute sysfs path ("/sys/devices/pci0000:00/0000:00:02.0"). */
  readonly path: string;
  /** dev_name(): the last path component. */
  readonly name: string;
  readonly dir: SysfsDir;
  readonly subsystem: string;
}

const LOG_LIMIT = 2000;

export class EmulatedKernel {
  readonly tree = new SysfsTree();
  readonly #listeners = new Set<UeventListener>();
  #seqnum = 0;
  readonly #log: KernelLogLine[] = [];
  #logSeq = 0;
  // IOMMU group ids as ida_alloc hands them out: the lowest free id first.
  readonly #freeGroups: number[] = [];
  #nextGroup = 0;
  /** /sys/kernel/iommu_groups, kept at hand: every mdev create touches it. */
  readonly #iommuGroups: SysfsDir;

  constructor() {
    const t = this.tree;
    t.mkdirp('/sys/devices/virtual');
    t.mkdirp('/sys/bus/mdev/devices');
    t.mkdirp('/sys/bus/mdev/drivers');
    t.mkdirp('/sys/class/mdev_bus');
    this.#iommuGroups = t.mkdirp('/sys/kernel/iommu_groups');
  }

  // ---- uevents -------------------------------------------------------

  /** Subscribe; returns the unsubscribe function. */
  onUevent(listener: UeventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(
    action: UeventAction,
    path: string,
    subsystem: string,
    env: Record<string, string> = {},
  ): void {
    if (this.#listeners.size === 0) {
      this.#seqnum++;
      return;
    }
    const event: Uevent = {
      seqnum: ++this.#seqnum,
      action,
      devpath: path.startsWith('/sys/') ? path.slice(4) : path,
      subsystem,
      env,
    };
    for (const l of this.#listeners) l(event);
  }

  // ---- log (dmesg) -----------------------------------------------------

  log(level: KernelLogLine['level'], message: string): void {
    this.#log.push({ seq: ++this.#logSeq, level, message });
    if (this.#log.length > LOG_LIMIT) this.#log.splice(0, this.#log.length - LOG_LIMIT);
  }

  /** Log lines newer than `afterSeq`. */
  dmesg(afterSeq = 0): KernelLogLine[] {
    return this.#log.filter((l) => l.seq > afterSeq);
  }

  // ---- devices ---------------------------------------------------------

  /**
   * Create a device directory at `path` with its `subsystem` link and, when
   * `busOrClass` says so, the /sys/bus/<bus>/devices or /sys/class/<class>
   * link to it. Emits "add".
   */
  addDevice(
    path: string,
    subsystem: string,
    busOrClass: { bus: string } | { class: string } | null,
  ): DeviceNode {
    const dir = this.tree.mkdirp(path);
    const name = path.slice(path.lastIndexOf('/') + 1);
    if (busOrClass !== null) {
      const home =
        'bus' in busOrClass ? `/sys/bus/${busOrClass.bus}` : `/sys/class/${busOrClass.class}`;
      const linkDir = 'bus' in busOrClass ? `${home}/devices` : home;
      this.tree.mkdirp(linkDir).link(name, relativeLink(linkDir, path));
      this.tree.mkdirp(home);
      dir.link('subsystem', relativeLink(path, home));
    }
    this.emit('add', path, subsystem);
    return { path, name, dir, subsystem };
  }

  /** Remove a device directory and the links addDevice made. Emits "remove". */
  removeDevice(dev: DeviceNode, busOrClass: { bus: string } | { class: string } | null): void {
    if (busOrClass !== null) {
      const linkDir =
        'bus' in busOrClass
          ? `/sys/bus/${busOrClass.bus}/devices`
          : `/sys/class/${busOrClass.class}`;
      this.tree.mkdirp(linkDir).remove(dev.name);
    }
    const slash = dev.path.lastIndexOf('/');
    this.tree.dirAt(dev.path.slice(0, slash)).remove(dev.name);
    this.emit('remove', dev.path, dev.subsystem);
  }

  // ---- IOMMU groups ------------------------------------------------------

  /**
   * Put the device at `devPath` into a new single-device IOMMU group:
   * /sys/kernel/iommu_groups/N/devices/<dev>. Returns N. With `devDir`, the
   * device's `iommu_group` link is made too; a caller that renders its
   * directory lazily (the mdev core) makes the link itself.
   * Pairs with freeIommuGroup.
   */
  allocIommuGroup(devPath: string, devDir?: SysfsDir): number {
    const id = this.#freeGroups.length > 0 ? this.#popLowestFree() : this.#nextGroup++;
    this.#iommuGroups.add(
      String(id),
      new SysfsDir((group) => {
        const devName = devPath.slice(devPath.lastIndexOf('/') + 1);
        // From /sys/kernel/iommu_groups/N/devices, four levels up is /sys.
        group.dir('devices').link(devName, `../../../..${devPath.slice(4)}`);
      }),
    );
    devDir?.link('iommu_group', `${upToSys(devPath)}kernel/iommu_groups/${id}`);
    return id;
  }

  /** Reserve ids already used by physical devices so mdev groups follow them. */
  reserveIommuGroups(count: number): void {
    if (this.#nextGroup < count) this.#nextGroup = count;
  }

  freeIommuGroup(id: number): void {
    this.#iommuGroups.remove(String(id));
    this.#freeGroups.push(id);
  }

  #popLowestFree(): number {
    // Freed ids are few compared with creates; a linear scan keeps it simple.
    let best = 0;
    for (let i = 1; i < this.#freeGroups.length; i++) {
      if (this.#freeGroups[i]! < this.#freeGroups[best]!) best = i;
    }
    const id = this.#freeGroups[best]!;
    this.#freeGroups[best] = this.#freeGroups[this.#freeGroups.length - 1]!;
    this.#freeGroups.pop();
    return id;
  }
}

/** "../" repeated once per path component of `path` below /sys ("/sys/a/b" -> "../../"). */
export function upToSys(path: string): string {
  let n = 0;
  for (let i = 5; i < path.length; i++) if (path.charCodeAt(i) === 47) n++;
  return '../'.repeat(n + 1);
}
