import { ErrnoError, fail } from '../../common/errno.js';
import { kstrtoul } from '../../common/kstrto.js';
import { UUID_STRING_LEN, isUuid } from '../../common/uuid.js';
import { SysfsAttr, SysfsDir, SysfsLink, relativeLink } from '../sysfs/tree.js';
import { deviceAggregationGroup, typeAggregates, typeAggregationAttr } from './aggregation.js';
import type { AttributeSpec, MdevDriver, MdevTypeSpec } from './driver.js';
import { upToSys, type DeviceNode, type EmulatedKernel, type UeventVar } from './kernel.js';

/**
 * The emulated mdev core (drivers/vfio/mdev/mdev_core.c, mdev_sysfs.c):
 * parents register with a driver and types; the core renders the standard
 * sysfs ABI and runs the device lifecycle. Vendor drivers only supply data
 * and hooks (./driver.ts).
 */

export class MdevType {
  /** Directory name: `<driver>-<sysfsName>` ("mtty-2", "nvidia-11"). */
  readonly id: string;
  /** Set by the core: /sys/.../mdev_supported_types/<id>. */
  readonly path: string;
  readonly dir: SysfsDir;
  readonly devicesDir: SysfsDir;
  /** Devices of this type, by uuid (what devices/ lists). */
  readonly devices = new Map<string, MdevDevice>();

  constructor(
    readonly parent: MdevParent,
    readonly spec: MdevTypeSpec,
    dir: SysfsDir,
  ) {
    this.id = `${parent.driver.name}-${spec.sysfsName}`;
    this.path = `${parent.dev.path}/mdev_supported_types/${this.id}`;
    this.dir = dir;
    this.devicesDir = dir.dir('devices');
  }

  get prettyName(): string {
    return this.spec.prettyName ?? this.spec.sysfsName;
  }

  /** What available_instances shows. */
  get availableInstances(): number {
    const drv = this.parent.driver;
    return drv.getAvailable !== undefined ? drv.getAvailable(this) : this.parent.coreAvailable;
  }
}

export class MdevParent {
  readonly types: MdevType[] = [];
  /**
   * Link targets shared by every device of this parent, computed once:
   * a device dir is always <parent>/<uuid>, so only the uuid varies.
   */
  readonly links: {
    readonly toSys: string;
    readonly fromBusDevices: string;
    /** fromBusDevices split and reversed, without the trailing empty part. */
    readonly fromBusDevicesReversed: readonly string[];
    readonly fromDriver: string;
  };
  /** The core's own counter, used when the driver has no getAvailable. */
  coreAvailable: number;
  /** Set while unregistering: create fails with ENODEV from then on. */
  unregistering = false;

  constructor(
    readonly dev: DeviceNode,
    readonly driver: MdevDriver,
  ) {
    this.coreAvailable = driver.maxInstances ?? 0;
    const toSys = upToSys(`${dev.path}/x`);
    this.links = {
      toSys,
      fromBusDevices: relativeLink('/sys/bus/mdev/devices', dev.path) + '/',
      fromBusDevicesReversed: relativeLink('/sys/bus/mdev/devices', dev.path).split('/').reverse(),
      fromDriver: relativeLink(`/sys/bus/mdev/drivers/${mdevDriverName(driver)}`, dev.path) + '/',
    };
  }

  get name(): string {
    return this.dev.name;
  }

  type(idOrSysfsName: string): MdevType | undefined {
    return this.types.find((t) => t.id === idOrSysfsName || t.spec.sysfsName === idOrSysfsName);
  }
}

export class MdevDevice {
  /** Absolute sysfs path of the device dir: <parent>/<uuid>. */
  readonly path: string;
  readonly dir: SysfsDir;
  iommuGroup = -1;
  /** Number of users holding the device open (a VM's VFIO fd). */
  openCount = 0;
  /**
   * Instances' worth of its type the device holds (mdev/aggregation/value).
   * Set by the core; 1 unless the type aggregates and a user raised it.
   * Drivers read it to give back the right amount in remove.
   */
  aggregation = 1;
  /** The driver's per-device state (kernel: dev_get_drvdata). */
  driverData: unknown = undefined;

  constructor(
    readonly uuid: string,
    readonly type: MdevType,
  ) {
    this.path = `${type.parent.dev.path}/${uuid}`;
    this.dir = new SysfsDir((dir) => this.#render(dir));
  }

  /** Renders the device's directory on first look; set by the core. */
  renderer: ((dir: SysfsDir) => void) | undefined;

  #render(dir: SysfsDir): void {
    this.renderer?.(dir);
  }

  get parent(): MdevParent {
    return this.type.parent;
  }

  get isOpen(): boolean {
    return this.openCount > 0;
  }
}

export class MdevCore {
  readonly #parents = new Map<string, MdevParent>();
  /** /sys/bus/mdev/devices, touched by every create and remove. */
  readonly #busDevices: SysfsDir;
  readonly #busDrivers: SysfsDir;
  /** Every mdev on the host by uuid: the duplicate check spans all parents. */
  readonly #devices = new Map<string, MdevDevice>();

  constructor(readonly kernel: EmulatedKernel) {
    this.#busDevices = kernel.tree.dirAt('/sys/bus/mdev/devices');
    this.#busDrivers = kernel.tree.dirAt('/sys/bus/mdev/drivers');
  }

  get parents(): readonly MdevParent[] {
    return [...this.#parents.values()];
  }

  get devices(): ReadonlyMap<string, MdevDevice> {
    return this.#devices;
  }

  parent(name: string): MdevParent | undefined {
    return this.#parents.get(name);
  }

  device(uuid: string): MdevDevice | undefined {
    return this.#devices.get(uuid.toLowerCase());
  }

  /**
   * mdev_register_parent: render mdev_supported_types/, link the parent into
   * /sys/class/mdev_bus, and tell udev (change, MDEV_STATE=registered).
   */
  registerParent(dev: DeviceNode, driver: MdevDriver, types: readonly MdevTypeSpec[]): MdevParent {
    if (this.#parents.has(dev.name)) fail('EEXIST', `mdev: parent ${dev.name} already registered`);
    if (types.length === 0) fail('EINVAL', `mdev: parent ${dev.name} has no types`);
    const parent = new MdevParent(dev, driver);
    const t = this.kernel.tree;
    this.#busDrivers.dir(mdevDriverName(driver));
    const typesDir = dev.dir.dir('mdev_supported_types');
    for (const spec of types) {
      const type = new MdevType(parent, spec, new SysfsDir());
      typesDir.add(type.id, type.dir);
      this.#renderType(type);
      parent.types.push(type);
    }
    t.dirAt('/sys/class/mdev_bus').link(dev.name, relativeLink('/sys/class/mdev_bus', dev.path));
    this.#parents.set(dev.name, parent);
    driver.parentRegistered?.(parent);
    this.kernel.emit('change', dev.path, dev.subsystem, {
      env: { MDEV_STATE: 'registered' },
      vars: dev.ueventVars(),
    });
    return parent;
  }

  /**
   * mdev_unregister_parent: no new devices (ENODEV), every child removed
   * (released first if a user holds it), types and class link gone.
   */
  unregisterParent(parent: MdevParent): void {
    parent.unregistering = true;
    for (const type of parent.types) {
      for (const mdev of [...type.devices.values()]) this.#forceRemove(mdev);
    }
    this.kernel.tree.dirAt('/sys/class/mdev_bus').remove(parent.name);
    parent.dev.dir.remove('mdev_supported_types');
    this.#parents.delete(parent.name);
    this.kernel.emit('change', parent.dev.path, parent.dev.subsystem, {
      env: { MDEV_STATE: 'unregistered' },
      vars: parent.dev.ueventVars(),
    });
  }

  #renderType(type: MdevType): void {
    const d = type.dir;
    const drv = type.parent.driver;
    d.attr('create', 0o200, { store: (buf) => this.#createStore(type, buf) });
    d.attr('name', 0o444, { show: () => `${type.prettyName}\n` });
    d.attr('device_api', 0o444, { show: () => `${drv.deviceApi}\n` });
    d.attr('available_instances', 0o444, { show: () => `${type.availableInstances}\n` });
    if (drv.showDescription !== undefined) {
      const show = drv.showDescription.bind(drv);
      d.attr('description', 0o444, { show: () => show(type) });
    }
    for (const a of type.spec.attributes ?? []) d.add(a.name, attrOf(a));
    // The standard `aggregation` attribute (./aggregation.ts) marks a type
    // whose devices can aggregate; the driver only supplies the numbers.
    if (drv.aggregation !== undefined && typeAggregates(type)) {
      const a = typeAggregationAttr(type, drv.aggregation);
      d.add(a.name, attrOf(a));
    }
  }

  #createStore(type: MdevType, buf: string): void {
    // create_store: 36 or 37 bytes (a trailing newline), parsed by
    // guid_parse, which looks at the first 36 characters only.
    if (buf.length < UUID_STRING_LEN || buf.length > UUID_STRING_LEN + 1) fail('EINVAL');
    const text = buf.slice(0, UUID_STRING_LEN);
    if (!isUuid(text)) fail('EINVAL');
    this.create(type, text);
  }

  /**
   * mdev_device_create. The duplicate check and the instance accounting are
   * one step (JavaScript runs one store at a time; the kernel holds
   * mdev_list_lock for the same reason).
   */
  create(type: MdevType, uuidText: string): MdevDevice {
    const parent = type.parent;
    const drv = parent.driver;
    if (parent.unregistering || !this.#parents.has(parent.name)) fail('ENODEV');
    const uuid = uuidText.toLowerCase();
    if (this.#devices.has(uuid)) {
      fail('EEXIST', `mdev: device ${uuid} already exists`);
    }
    const coreCounts = drv.getAvailable === undefined;
    if (coreCounts) {
      if (parent.coreAvailable <= 0) fail('EUSERS', `mdev: no instances left on ${parent.name}`);
      parent.coreAvailable--;
    }
    const mdev = new MdevDevice(uuid, type);
    try {
      drv.probe(mdev);
    } catch (err) {
      if (coreCounts) parent.coreAvailable++; // pairs with the decrement above
      throw err;
    }
    this.#renderDevice(mdev);
    this.#devices.set(uuid, mdev);
    type.devices.set(uuid, mdev);
    // device_add sends "add" before the driver is attached, then
    // device_driver_attach sends "bind" (mdev_device_create's order). The
    // mdev bus adds no keys of its own: whoever wants the type reads the
    // device's mdev_type link, which exists before "add" is sent.
    this.kernel.emit('add', mdev.path, 'mdev');
    this.kernel.emit('bind', mdev.path, 'mdev', { vars: [['DRIVER', mdevDriverName(drv)]] });
    return mdev;
  }

  #renderDevice(mdev: MdevDevice): void {
    const { dir, path, type, uuid } = mdev;
    const parent = type.parent;
    const drvName = mdevDriverName(parent.driver);
    // The device directory's own files are made on first look (see
    // SysfsDir's populate): creating and removing a device nobody reads
    // costs only the links below, which listings need.
    mdev.renderer = (d) => this.#renderDeviceFiles(mdev, d);
    dir.attr('remove', 0o200, { store: (buf) => this.#removeStore(mdev, buf) });
    mdev.iommuGroup = this.kernel.allocIommuGroup(path);
    parent.dev.dir.add(uuid, dir);
    type.devicesDir.link(uuid, `../../../${uuid}`);
    this.#busDevices.add(
      uuid,
      new SysfsLink(parent.links.fromBusDevices + uuid, [
        uuid,
        ...parent.links.fromBusDevicesReversed,
      ]),
    );
    this.#busDrivers.dir(drvName).link(uuid, parent.links.fromDriver + uuid);
  }

  #renderDeviceFiles(mdev: MdevDevice, dir: SysfsDir): void {
    const { type } = mdev;
    const parent = type.parent;
    const up = parent.links.toSys;
    // Targets as sysfs_create_link computes them, from precomputed prefixes.
    dir.link('mdev_type', `../mdev_supported_types/${type.id}`);
    dir.link('driver', `${up}bus/mdev/drivers/${mdevDriverName(parent.driver)}`);
    dir.link('subsystem', `${up}bus/mdev`);
    dir.link('iommu_group', `${up}kernel/iommu_groups/${mdev.iommuGroup}`);
    // The mdev bus has no uevent callback: the file holds the driver core's DRIVER only.
    const driverVar: UeventVar = ['DRIVER', mdevDriverName(parent.driver)];
    this.kernel.addUeventFile({
      path: mdev.path,
      name: mdev.uuid,
      dir,
      subsystem: 'mdev',
      ueventVars: () => (this.#devices.get(mdev.uuid) === mdev ? [driverVar] : []),
    });
    const groups = [...(parent.driver.deviceGroups?.(mdev) ?? [])];
    const agg = parent.driver.aggregation;
    if (agg !== undefined && typeAggregates(type)) {
      const isLive = (): boolean => this.#devices.get(mdev.uuid) === mdev;
      groups.push(deviceAggregationGroup(mdev, agg, isLive));
    }
    for (const group of groups) {
      const gdir = group.name === undefined ? dir : dir.dirPath(group.name);
      for (const a of group.attrs) gdir.add(a.name, attrOf(a));
    }
  }

  #removeStore(mdev: MdevDevice, buf: string): void {
    const val = kstrtoul(buf, 0);
    if (val === undefined) fail('EINVAL');
    if (val === 0) return;
    // A second writer may race the first to the same file: the device is gone.
    if (this.#devices.get(mdev.uuid) !== mdev) fail('ENODEV');
    this.remove(mdev);
  }

  /**
   * mdev_device_remove. An open device is refused with EBUSY, as kernels
   * before 5.x's vfio_device rework did (newer kernels block the writer until
   * the VM lets go; an emulator with no guest to ask would hang the tool
   * instead). See docs/ARCHITECTURE.md, "Open devices".
   */
  remove(mdev: MdevDevice): void {
    if (mdev.isOpen) {
      fail('EBUSY', `mdev: ${mdev.uuid} is in use by a VM; close it first`);
    }
    mdev.parent.driver.canRemove?.(mdev);
    this.#unlink(mdev);
  }

  #forceRemove(mdev: MdevDevice): void {
    if (mdev.isOpen) {
      mdev.openCount = 0;
      mdev.parent.driver.release?.(mdev);
    }
    this.#unlink(mdev);
  }

  #unlink(mdev: MdevDevice): void {
    const { type, uuid } = mdev;
    const parent = type.parent;
    const drv = parent.driver;
    this.#busDrivers.dir(mdevDriverName(drv)).remove(uuid);
    this.#busDevices.remove(uuid);
    type.devicesDir.remove(uuid);
    parent.dev.dir.remove(uuid);
    this.kernel.freeIommuGroup(mdev.iommuGroup);
    type.devices.delete(uuid);
    this.#devices.delete(uuid);
    drv.remove(mdev); // pairs with probe in create()
    if (drv.getAvailable === undefined) parent.coreAvailable++;
    // device_del: the driver lets go ("unbind"), then the device goes.
    this.kernel.emit('unbind', mdev.path, 'mdev');
    this.kernel.emit('remove', mdev.path, 'mdev');
  }

  /** A user (a VM) opens the device: the emulator's stand-in for VFIO open. */
  open(mdev: MdevDevice): void {
    if (this.#devices.get(mdev.uuid) !== mdev) fail('ENODEV');
    if (mdev.openCount === 0) mdev.parent.driver.open?.(mdev);
    mdev.openCount++;
  }

  /** The user lets go. Pairs with open. */
  release(mdev: MdevDevice): void {
    if (mdev.openCount === 0) throw new ErrnoError('EINVAL', `mdev: ${mdev.uuid} is not open`);
    mdev.openCount--;
    if (mdev.openCount === 0) mdev.parent.driver.release?.(mdev);
  }
}

function attrOf(a: AttributeSpec): SysfsAttr {
  return new SysfsAttr(a.mode, a);
}

/** The driver's directory under /sys/bus/mdev/drivers (see MdevDriver.mdevDriverName). */
function mdevDriverName(drv: MdevDriver): string {
  return drv.mdevDriverName ?? drv.name;
}
