import { fail } from '../../common/errno.js';
import { SysfsDir, SysfsTree, relativeLink } from '../sysfs/tree.js';

/**
 * The emulated kernel's device model: the sysfs tree with the standard
 * skeleton, device directories with their bus/class links, IOMMU groups,
 * uevents and a dmesg-like log. The mdev core and the vendor drivers build
 * on it as kernel code builds on the driver core.
 */

export type UeventAction = 'add' | 'remove' | 'change' | 'bind' | 'unbind';

/** One KEY=value of a uevent's environment, in the order the kernel adds them. */
export type UeventVar = readonly [key: string, value: string];

export interface Uevent {
  readonly seqnum: number;
  readonly action: UeventAction;
  /** Device path below /sys, as udev's DEVPATH ("/devices/virtual/mtty/mtty"). */
  readonly devpath: string;
  readonly subsystem: string;
  /** The caller's extra keys (kobject_uevent_env's envp, e.g. MDEV_STATE=registered). */
  readonly env: Readonly<Record<string, string>>;
  /**
   * The environment exactly as the kernel sends it on its netlink socket:
   * ACTION, DEVPATH, SUBSYSTEM, the caller's keys, the device's own keys
   * (what its `uevent` file shows: DRIVER, PCI_ID, MODALIAS ...), SEQNUM.
   */
  readonly properties: readonly UeventVar[];
}

/** What the emitter of an event passes beyond action, path and subsystem. */
export interface UeventDetails {
  /** The caller's keys, added after SUBSYSTEM (kobject_uevent_env's envp). */
  readonly env?: Readonly<Record<string, string>>;
  /** The device's own keys at the time of the event (dev_uevent). */
  readonly vars?: readonly UeventVar[];
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
  /** The device's uevent keys now: what its `uevent` file shows and its events carry. */
  ueventVars(): UeventVar[];
}

export interface AddDeviceOptions {
  /**
   * The bus's (or class's) own uevent keys for this device, as the bus's
   * `uevent` callback adds them after the driver core's DRIVER: PCI_ID,
   * MODALIAS and so on (pci_uevent, css_uevent, ap_uevent).
   */
  readonly busVars?: () => readonly UeventVar[];
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

  /**
   * kobject_uevent_env: tell the listeners. `details.vars` are the device's
   * own keys as they stand at the event (a device being added has no driver
   * yet; one being removed has lost it), which the caller knows best.
   */
  emit(action: UeventAction, path: string, subsystem: string, details: UeventDetails = {}): void {
    const seqnum = ++this.#seqnum;
    if (this.#listeners.size === 0) return;
    const devpath = path.startsWith('/sys/') ? path.slice(4) : path;
    const env = details.env ?? {};
    const properties: UeventVar[] = [
      ['ACTION', action],
      ['DEVPATH', devpath],
      ['SUBSYSTEM', subsystem],
      ...Object.entries(env),
      ...(details.vars ?? []),
      ['SEQNUM', String(seqnum)],
    ];
    const event: Uevent = {
      seqnum,
      action,
      devpath,
      subsystem,
      env,
      properties,
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
   * device_add: create a device directory at `path` with its `uevent` file
   * and `subsystem` link and, when `busOrClass` says so, the
   * /sys/bus/<bus>/devices or /sys/class/<class> link to it. Emits "add".
   */
  addDevice(
    path: string,
    subsystem: string,
    busOrClass: { bus: string } | { class: string } | null,
    options: AddDeviceOptions = {},
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
    const busVars = options.busVars;
    const node: DeviceNode = {
      path,
      name,
      dir,
      subsystem,
      ueventVars: () => deviceUeventVars(dir, busVars?.() ?? []),
    };
    this.addUeventFile(node);
    this.emit('add', path, subsystem, { vars: node.ueventVars() });
    return node;
  }

  /**
   * A device that belongs to no bus or class (root_device_register, a PCI
   * host bridge, the css0 channel subsystem): a directory with an empty
   * `uevent` file, which is what makes libudev take it for a device and
   * walk through it to a child's parents. Created once; later calls return it.
   */
  addRootDevice(path: string): SysfsDir {
    const dir = this.tree.mkdirp(path);
    if (dir.get('uevent') === undefined) {
      const name = path.slice(path.lastIndexOf('/') + 1);
      this.addUeventFile({ path, name, dir, subsystem: '', ueventVars: () => [] });
    }
    return dir;
  }

  /**
   * The device's `uevent` file (uevent_show/uevent_store in
   * drivers/base/core.c): reading it gives the device's keys, one KEY=value
   * a line; writing an action ("add", "change" ...) makes the kernel send
   * that event again, which is how `udevadm trigger` replays devices. A
   * write without a UUID is tagged SYNTH_UUID=0, as kobject_synth_uevent does.
   */
  addUeventFile(node: DeviceNode): void {
    node.dir.attr('uevent', 0o644, {
      show: () => formatUeventVars(node.ueventVars()),
      store: (buf) => {
        const [action, uuid, ...rest] = buf.trim().split(/\s+/);
        if (!isSynthAction(action) || (uuid !== undefined && !isUuidText(uuid))) fail('EINVAL');
        const env: Record<string, string> = { SYNTH_UUID: uuid ?? '0' };
        for (const kv of rest) {
          const eq = kv.indexOf('=');
          if (eq <= 0) fail('EINVAL');
          env[`SYNTH_ARG_${kv.slice(0, eq)}`] = kv.slice(eq + 1);
        }
        this.emit(action, node.path, node.subsystem, { env, vars: node.ueventVars() });
      },
    });
  }

  /**
   * driver_bound: bind `dev` to `driver` of its bus — the device's `driver`
   * link and the driver's link back — and emit "bind" (DRIVER set).
   * Pairs with unbindDriver.
   */
  bindDriver(dev: DeviceNode, bus: string, driver: string): void {
    const drvDir = `/sys/bus/${bus}/drivers/${driver}`;
    this.tree.mkdirp(drvDir).link(dev.name, relativeLink(drvDir, dev.path));
    dev.dir.link('driver', relativeLink(dev.path, drvDir));
    this.emit('bind', dev.path, dev.subsystem, { vars: dev.ueventVars() });
  }

  /** The driver lets go of `dev`: both links go, "unbind" is sent (no DRIVER any more). */
  unbindDriver(dev: DeviceNode, bus: string): void {
    const link = dev.dir.get('driver');
    if (link === undefined || link.kind !== 'link') return;
    const driver = link.target.slice(link.target.lastIndexOf('/') + 1);
    dev.dir.remove('driver');
    const drvDir = this.tree.lookup(`/sys/bus/${bus}/drivers/${driver}`);
    if (drvDir?.kind === 'dir') drvDir.remove(dev.name);
    this.emit('unbind', dev.path, dev.subsystem, { vars: dev.ueventVars() });
  }

  /** Remove a device directory and the links addDevice made. Emits "remove". */
  removeDevice(dev: DeviceNode, busOrClass: { bus: string } | { class: string } | null): void {
    // device_del unbinds the driver before it sends "remove".
    const vars = dev.ueventVars().filter(([k]) => k !== 'DRIVER');
    if (busOrClass !== null) {
      const linkDir =
        'bus' in busOrClass
          ? `/sys/bus/${busOrClass.bus}/devices`
          : `/sys/class/${busOrClass.class}`;
      this.tree.mkdirp(linkDir).remove(dev.name);
    }
    const slash = dev.path.lastIndexOf('/');
    this.tree.dirAt(dev.path.slice(0, slash)).remove(dev.name);
    this.emit('remove', dev.path, dev.subsystem, { vars });
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

/**
 * dev_uevent's keys for a device directory: DRIVER when a driver is bound
 * (the `driver` link names it), then the bus's keys.
 */
export function deviceUeventVars(dir: SysfsDir, busVars: readonly UeventVar[]): UeventVar[] {
  const driver = dir.get('driver');
  const vars: UeventVar[] = [];
  if (driver !== undefined && driver.kind === 'link') {
    vars.push(['DRIVER', driver.target.slice(driver.target.lastIndexOf('/') + 1)]);
  }
  vars.push(...busVars);
  return vars;
}

/** A `uevent` file's text: KEY=value lines. */
export function formatUeventVars(vars: readonly UeventVar[]): string {
  let out = '';
  for (const [k, v] of vars) out += `${k}=${v}\n`;
  return out;
}

const SYNTH_ACTIONS: ReadonlySet<string> = new Set([
  'add',
  'remove',
  'change',
  'bind',
  'unbind',
] satisfies UeventAction[]);

function isSynthAction(a: string | undefined): a is UeventAction {
  return a !== undefined && SYNTH_ACTIONS.has(a);
}

function isUuidText(s: string): boolean {
  return /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(s);
}

/** "../" repeated once per path component of `path` below /sys ("/sys/a/b" -> "../../"). */
export function upToSys(path: string): string {
  let n = 0;
  for (let i = 5; i < path.length; i++) if (path.charCodeAt(i) === 47) n++;
  return '../'.repeat(n + 1);
}
