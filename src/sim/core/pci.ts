import { fail } from '../../common/errno.js';
import { relativeLink } from '../sysfs/tree.js';
import type { DeviceNode, EmulatedKernel, UeventVar } from './kernel.js';

/**
 * Physical PCI functions for the vendor driver models (a GPU, an
 * accelerator): the directory a real host has under /sys/devices/pci*, with
 * the identity attributes tools read, the configuration space behind
 * `config`, the /sys/bus/pci/devices link, the bound driver and the
 * function's own IOMMU group.
 *
 * What reads what: libvirt's node-device code takes domain/bus/slot/function
 * from the address, PCI_CLASS from the uevent, the ids from `vendor` and
 * `device`, and opens `config` for the header type and the capability list;
 * it calls a function PCI Express when the list has an Express capability
 * or `config` is 4096 bytes long. So a conventional function has a 256-byte
 * space, an Express one 4096, and the header always agrees with the files.
 *
 * Simplification: the device sits directly under its host bridge,
 * /sys/devices/pci<domain>:<bus>/<address>, without the root ports and
 * switches that real topologies put in between. Nothing in the mdev ABI
 * looks at the path between the bridge and the function.
 *
 * SR-IOV (drivers/pci/iov.c): a function whose spec has `sriov` is a
 * physical function (PF). Its extended configuration space holds the SR-IOV
 * capability, and sysfs has `sriov_totalvfs`, `sriov_numvfs`,
 * `sriov_offset`, `sriov_stride`, `sriov_vf_device` and
 * `sriov_drivers_autoprobe`. Enabling N virtual functions (VFs) creates N
 * PCI functions at the routing ids the capability's offset and stride give,
 * beside the PF, each with a `physfn` link to it and the PF's `virtfn<i>`
 * link to it, its own IOMMU group, and the PF's vendor with the capability's
 * VF device id. A VF's configuration space reads 0xffff for vendor and
 * device, as the SR-IOV specification has it; the files show the ids the
 * kernel fills in.
 */
export interface PciFunctionSpec {
  /** "dddd:bb:ss.f", lower-case hex, as the kernel names PCI devices. */
  readonly address: string;
  /** PCI ids, 16-bit. */
  readonly vendor: number;
  readonly device: number;
  readonly subsystemVendor: number;
  readonly subsystemDevice: number;
  /** 24-bit class code: base class, subclass, prog-if (0x030000 = VGA). */
  readonly classCode: number;
  readonly revision?: number;
  /** Name of the PCI driver bound to it ("nvidia", "i915", "idxd"); none: unbound. */
  readonly driver?: string;
  readonly numaNode?: number;
  /** A PCI Express function (4096-byte config space with an Express capability). */
  readonly express?: PciExpressSpec;
  /** A physical function with SR-IOV (needs `express`: the capability is an extended one). */
  readonly sriov?: SriovSpec;
}

/**
 * The SR-IOV capability of a physical function and what its driver does
 * with it. The numbers are the capability's registers (PCIe base spec 9.3.3).
 */
export interface SriovSpec {
  /** TotalVFs: how many VFs the function can have. */
  readonly totalVfs: number;
  /** First VF Offset and VF Stride, in routing ids. */
  readonly offset: number;
  readonly stride: number;
  /** VF Device ID. */
  readonly vfDevice: number;
  /**
   * The PF driver's `sriov_configure` (what a write to `sriov_numvfs`
   * calls): enable that many VFs (`pf.sriov.setNumVfs`) or, with 0, disable
   * them. Without one, the write fails with ENOENT, as the kernel says of a
   * driver that "does not support SRIOV configuration via sysfs".
   */
  readonly configure?: (pf: PciFunction, numVfs: number) => void;
  /** A VF exists: the driver that takes it probes it (binds, adds its files). */
  readonly probeVf?: (vf: PciFunction) => void;
  /** A VF is about to go: its driver lets go of it. Pairs with probeVf. */
  readonly removeVf?: (vf: PciFunction) => void;
}

/** The PCI Express capability of a function (PCIe base spec, 7.5.3). */
export interface PciExpressSpec {
  /**
   * Device/port type: an endpoint behind a link, or a root complex
   * integrated endpoint (an on-die GPU or accelerator), which has no link.
   */
  readonly type: 'endpoint' | 'rc-integrated';
  /** The link of an endpoint: what it can do and what it trained to. */
  readonly link?: {
    /** Port number in the link capabilities. */
    readonly port?: number;
    /** Generation: 1 = 2.5 GT/s, 2 = 5, 3 = 8, 4 = 16, 5 = 32 GT/s. */
    readonly maxSpeed: number;
    readonly maxWidth: number;
    readonly speed: number;
    readonly width: number;
  };
}

export interface PciFunction {
  /** "dddd:bb:ss.f". */
  readonly address: string;
  readonly spec: PciFunctionSpec;
  readonly node: DeviceNode;
  readonly iommuGroup: number;
  /** A physical function's SR-IOV state; undefined for other functions. */
  readonly sriov: SriovState | undefined;
  /** A virtual function's PF and its index (virtfn<index>); undefined otherwise. */
  readonly physfn: PciFunction | undefined;
  readonly vfIndex: number | undefined;
  /** The bound driver's name, if any. */
  readonly driver: string | undefined;
  /** driver_bound / the driver lets go ("bind"/"unbind" uevents). */
  bind(driver: string): void;
  unbind(): void;
  /** Take the function away again (VFs first, driver unbound, links and group freed). */
  remove(): void;
}

/** A physical function's SR-IOV state. */
export interface SriovState {
  readonly totalVfs: number;
  /** NumVFs: VFs enabled now. */
  readonly numVfs: number;
  /** The VFs, by index. */
  readonly vfs: readonly PciFunction[];
  /**
   * pci_enable_sriov / pci_disable_sriov: create `n` VFs (none may exist)
   * or, with 0, remove them all. What a PF driver's sriov_configure calls;
   * a caller that bypasses the driver plays pci-pf-stub, as NVIDIA's
   * sriov-manage does. Throws ERANGE above TotalVFs, EBUSY when VFs exist.
   */
  setNumVfs(n: number): void;
}

/** Every PCI function of a kernel, by address (the PCI core's device list). */
const BUSES = new WeakMap<EmulatedKernel, Map<string, PciFunction>>();

function pciBus(kernel: EmulatedKernel): Map<string, PciFunction> {
  let bus = BUSES.get(kernel);
  if (bus === undefined) BUSES.set(kernel, (bus = new Map()));
  return bus;
}

/** The PCI functions of a kernel, by address (for machine actions: the lab's tools). */
export function pciFunctions(kernel: EmulatedKernel): ReadonlyMap<string, PciFunction> {
  return pciBus(kernel);
}

const PCI_ADDRESS = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$/;

export function isPciAddress(text: string): boolean {
  return PCI_ADDRESS.test(text);
}

const hex = (n: number, digits: number): string => `0x${n.toString(16).padStart(digits, '0')}\n`;
/** Upper-case, zero-padded hex, as the kernel's %0NX. */
const HEX = (n: number, digits: number): string =>
  n.toString(16).toUpperCase().padStart(digits, '0');

/** Create the function's sysfs directory and everything around it. */
export function addPciFunction(kernel: EmulatedKernel, spec: PciFunctionSpec): PciFunction {
  return createFunction(kernel, spec, undefined);
}

function createFunction(
  kernel: EmulatedKernel,
  spec: PciFunctionSpec,
  vf: { readonly pf: PciFunction; readonly index: number } | undefined,
): PciFunction {
  const m = PCI_ADDRESS.exec(spec.address);
  if (m === null) fail('EINVAL', `pci: '${spec.address}' is not a PCI address (dddd:bb:ss.f)`);
  if (spec.sriov !== undefined && spec.express === undefined) {
    fail(
      'EINVAL',
      `pci: ${spec.address}: SR-IOV is an extended capability; the function must be PCI Express`,
    );
  }
  const bridge = `/sys/devices/pci${m[1]}:${m[2]}`;
  const path = `${bridge}/${spec.address}`;
  if (kernel.tree.lookup(path) !== undefined) fail('EEXIST', `pci: ${spec.address} exists`);
  // The host bridge is a device of no bus, with an (empty) uevent file.
  kernel.addRootDevice(bridge);
  const vars = pciUeventVars(spec);
  const node = kernel.addDevice(path, 'pci', { bus: 'pci' }, { busVars: () => vars });
  const d = node.dir;
  const ro = (name: string, text: string): void => {
    d.attr(name, 0o444, { show: () => text });
  };
  ro('vendor', hex(spec.vendor, 4));
  ro('device', hex(spec.device, 4));
  ro('subsystem_vendor', hex(spec.subsystemVendor, 4));
  ro('subsystem_device', hex(spec.subsystemDevice, 4));
  ro('class', hex(spec.classCode, 6));
  ro('revision', hex(spec.revision ?? 0xa1, 2));
  ro('numa_node', `${spec.numaNode ?? -1}\n`);
  ro('modalias', `${modalias(spec)}\n`);
  const extended: PciExtCapability[] = [];
  let sriovCap: SriovCapability | undefined;
  if (spec.sriov !== undefined) {
    sriovCap = new SriovCapability(spec.sriov);
    extended.push(sriovCap);
  }
  const config = pciConfigSpace(spec, [], extended, vf !== undefined);
  // The kernel makes `config` 0644 (root may write registers); the emulated
  // registers are read-only, so the file is too: a write says EACCES
  // rather than pretending to have changed something.
  d.attr('config', 0o444, { read: () => config, size: config.length });
  if (spec.express !== undefined) addLinkAttributes(node, spec.express);
  const iommuGroup = kernel.allocIommuGroup(path, d);
  const bus = pciBus(kernel);
  let driver: string | undefined;
  let sriov: SriovPf | undefined;
  const fn: PciFunction = {
    address: spec.address,
    spec,
    node,
    iommuGroup,
    get sriov() {
      return sriov;
    },
    physfn: vf?.pf,
    vfIndex: vf?.index,
    get driver() {
      return driver;
    },
    bind(name) {
      if (driver !== undefined) fail('EBUSY', `pci: ${spec.address} is bound to ${driver}`);
      kernel.bindDriver(node, 'pci', name);
      driver = name;
    },
    unbind() {
      if (driver === undefined) return;
      kernel.unbindDriver(node, 'pci');
      driver = undefined;
    },
    remove() {
      // pci_stop_and_remove_bus_device: a PF's VFs go first.
      if (sriov !== undefined && sriov.numVfs > 0) sriov.setNumVfs(0);
      fn.unbind();
      kernel.freeIommuGroup(iommuGroup);
      kernel.removeDevice(node, { bus: 'pci' });
      bus.delete(spec.address);
      // The host bridge goes with its last function (its uevent file stays till then).
      const rest = [...kernel.tree.dirAt(bridge).children.keys()].filter((n) => n !== 'uevent');
      if (rest.length === 0) {
        kernel.tree.dirAt('/sys/devices').remove(bridge.slice('/sys/devices/'.length));
      }
    },
  };
  bus.set(spec.address, fn);
  if (vf !== undefined) d.link('physfn', relativeLink(path, vf.pf.node.path));
  if (spec.sriov !== undefined) {
    sriov = new SriovPf(kernel, fn, spec.sriov, sriovCap!);
    sriov.renderAttributes(d);
  }
  if (spec.driver !== undefined) fn.bind(spec.driver);
  return fn;
}

const ROUTING_ID = (a: RegExpExecArray): number =>
  (parseInt(a[2]!, 16) << 8) | (parseInt(a[3]!, 16) << 3) | parseInt(a[4]!, 16);

/**
 * A PF's SR-IOV state and files (drivers/pci/iov.c). One synchronous store
 * at a time, as the kernel's device_lock makes it.
 */
class SriovPf implements SriovState {
  readonly #vfs: PciFunction[] = [];

  constructor(
    private readonly kernel: EmulatedKernel,
    private readonly pf: PciFunction,
    private readonly spec: SriovSpec,
    private readonly cap: SriovCapability,
  ) {}

  get totalVfs(): number {
    return this.spec.totalVfs;
  }

  get numVfs(): number {
    return this.#vfs.length;
  }

  get vfs(): readonly PciFunction[] {
    return this.#vfs;
  }

  renderAttributes(d: DeviceNode['dir']): void {
    const s = this.spec;
    d.attr('sriov_totalvfs', 0o444, { show: () => `${s.totalVfs}\n` });
    d.attr('sriov_numvfs', 0o644, {
      show: () => `${this.numVfs}\n`,
      store: (buf) => this.#storeNumVfs(buf),
    });
    d.attr('sriov_offset', 0o444, { show: () => `${s.offset}\n` });
    d.attr('sriov_stride', 0o444, { show: () => `${s.stride}\n` });
    d.attr('sriov_vf_device', 0o444, { show: () => `${s.vfDevice.toString(16)}\n` });
    let autoprobe = true;
    d.attr('sriov_drivers_autoprobe', 0o644, {
      show: () => `${autoprobe ? 1 : 0}\n`,
      store: (buf) => {
        const v = parseUnsigned(buf, 0xff);
        if (v === undefined) fail('EINVAL');
        autoprobe = v !== 0;
      },
    });
  }

  /** sriov_numvfs_store, in the kernel's order of checks. */
  #storeNumVfs(buf: string): void {
    const n = parseUnsigned(buf, 0xffff);
    if (n === undefined) fail('EINVAL');
    if (n === -1) fail('ERANGE');
    if (n > this.spec.totalVfs) fail('ERANGE');
    if (n === this.numVfs) return;
    const configure = this.spec.configure;
    if (this.pf.driver === undefined || configure === undefined) {
      this.kernel.log(
        'info',
        `pci ${this.pf.address}: Driver does not support SRIOV configuration via sysfs`,
      );
      fail(
        'ENOENT',
        `pci: ${this.pf.address}: its driver does not support SR-IOV configuration via sysfs`,
      );
    }
    if (n !== 0 && this.numVfs !== 0) {
      this.kernel.log(
        'warn',
        `pci ${this.pf.address}: ${this.numVfs} VFs already enabled. Disable before enabling ${n} VFs`,
      );
      fail(
        'EBUSY',
        `pci: ${this.pf.address}: ${this.numVfs} VFs already enabled; disable them first`,
      );
    }
    configure(this.pf, n);
  }

  setNumVfs(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.spec.totalVfs) {
      fail('ERANGE', `pci: ${this.pf.address}: ${n} VFs (TotalVFs is ${this.spec.totalVfs})`);
    }
    if (n === 0) {
      this.#disable();
      return;
    }
    if (this.numVfs !== 0) fail('EBUSY', `pci: ${this.pf.address}: VFs are enabled already`);
    const m = PCI_ADDRESS.exec(this.pf.address)!;
    const rid = ROUTING_ID(m);
    const pfSpec = this.pf.spec;
    this.cap.setEnabled(n);
    try {
      for (let i = 0; i < n; i++) {
        const vrid = rid + this.spec.offset + i * this.spec.stride;
        if (vrid > 0xffff) fail('ERANGE', `pci: ${this.pf.address}: VF ${i} is past bus ff`);
        const address =
          `${m[1]}:${((vrid >> 8) & 0xff).toString(16).padStart(2, '0')}:` +
          `${((vrid >> 3) & 0x1f).toString(16).padStart(2, '0')}.${vrid & 7}`;
        // pci_iov_add_virtfn: the VF is an Express endpoint with the PF's
        // vendor and the VF device id; its link registers report the PF's
        // link (a VF has none of its own), as devices commonly do.
        const vf = createFunction(
          this.kernel,
          {
            address,
            vendor: pfSpec.vendor,
            device: this.spec.vfDevice,
            subsystemVendor: pfSpec.subsystemVendor,
            subsystemDevice: pfSpec.subsystemDevice,
            classCode: pfSpec.classCode,
            ...(pfSpec.revision !== undefined ? { revision: pfSpec.revision } : {}),
            ...(pfSpec.numaNode !== undefined ? { numaNode: pfSpec.numaNode } : {}),
            express: {
              type: 'endpoint',
              ...(pfSpec.express?.link !== undefined ? { link: pfSpec.express.link } : {}),
            },
          },
          { pf: this.pf, index: i },
        );
        this.#vfs.push(vf);
        this.pf.node.dir.link(`virtfn${i}`, relativeLink(this.pf.node.path, vf.node.path));
        this.spec.probeVf?.(vf);
      }
    } catch (err) {
      this.#disable(); // pairs with the VFs made so far
      throw err;
    }
    this.kernel.log('info', `pci ${this.pf.address}: enabled ${n} VFs`);
  }

  #disable(): void {
    // sriov_disable: the VFs go last first; each driver lets go before the device does.
    for (const vf of [...this.#vfs].reverse()) {
      try {
        this.spec.removeVf?.(vf);
      } finally {
        this.pf.node.dir.remove(`virtfn${vf.vfIndex!}`);
        vf.remove();
        this.#vfs.pop();
      }
    }
    this.cap.setEnabled(0);
  }
}

/** kstrtou16/kstrtou8 with base 0: undefined for EINVAL, -1 for a number too large (ERANGE). */
function parseUnsigned(buf: string, max: number): number | undefined {
  const s = (buf.endsWith('\n') ? buf.slice(0, -1) : buf).replace(/^\+/, '');
  let n: number;
  if (/^0[xX][0-9a-fA-F]+$/.test(s)) n = parseInt(s.slice(2), 16);
  else if (/^0[0-7]*$/.test(s)) n = parseInt(s, 8);
  else if (/^[1-9][0-9]*$/.test(s)) n = Number(s);
  else return undefined;
  return n > max ? -1 : n;
}

/** pci_uevent's keys (drivers/pci/pci-driver.c). */
export function pciUeventVars(spec: PciFunctionSpec): UeventVar[] {
  return [
    ['PCI_CLASS', HEX(spec.classCode, 4)],
    ['PCI_ID', `${HEX(spec.vendor, 4)}:${HEX(spec.device, 4)}`],
    ['PCI_SUBSYS_ID', `${HEX(spec.subsystemVendor, 4)}:${HEX(spec.subsystemDevice, 4)}`],
    ['PCI_SLOT_NAME', spec.address],
    ['MODALIAS', modalias(spec)],
  ];
}

/** "pci:v<vendor>d<device>sv<sub vendor>sd<sub device>bc<class>sc<subclass>i<prog-if>". */
function modalias(spec: PciFunctionSpec): string {
  const c = spec.classCode;
  return (
    `pci:v${HEX(spec.vendor, 8)}d${HEX(spec.device, 8)}` +
    `sv${HEX(spec.subsystemVendor, 8)}sd${HEX(spec.subsystemDevice, 8)}` +
    `bc${HEX((c >> 16) & 0xff, 2)}sc${HEX((c >> 8) & 0xff, 2)}i${HEX(c & 0xff, 2)}`
  );
}

// ---- configuration space ------------------------------------------------------

/** Capability ids (PCI local bus spec / PCIe base spec). */
const CAP_ID_PM = 0x01;
const CAP_ID_MSI = 0x05;
const CAP_ID_EXP = 0x10;
/** Where the capability list starts: right after the type 0 header. */
const CAPS_START = 0x40;

/** One entry of the capability list: its id and the bytes after the next pointer. */
export interface PciCapability {
  readonly id: number;
  readonly body: Uint8Array;
}

/**
 * One extended capability (PCIe base spec 7.6): 16-bit id, 4-bit version;
 * its body follows the 4-byte header. `attach` hands it the bytes it lives
 * in, for a capability whose registers change (SR-IOV's NumVFs).
 */
export interface PciExtCapability {
  readonly id: number;
  readonly version: number;
  readonly body: Uint8Array;
  attach?(cfg: Uint8Array, offset: number): void;
}

/** Where the extended capability list starts (PCIe base spec 7.6.1). */
const EXT_CAPS_START = 0x100;

/**
 * The function's configuration space: a type 0 header that agrees with the
 * identity files (a VF's vendor and device read 0xffff, as the SR-IOV
 * specification has them), then a capability list (power management, MSI,
 * and for an Express function the Express capability). 256 bytes, or 4096
 * for Express, whose extended space holds `extended` from 0x100 on; a zero
 * header ends that list, as PCIe requires.
 */
export function pciConfigSpace(
  spec: PciFunctionSpec,
  extra: readonly PciCapability[] = [],
  extended: readonly PciExtCapability[] = [],
  virtfn = false,
): Uint8Array {
  const size = spec.express === undefined ? 256 : 4096;
  const cfg = new Uint8Array(size);
  const v = new DataView(cfg.buffer);
  v.setUint16(0x00, virtfn ? 0xffff : spec.vendor, true);
  v.setUint16(0x02, virtfn ? 0xffff : spec.device, true);
  // Command: memory space and bus master enabled, as for a function with a
  // driver bound. Status: bit 4, "capabilities list".
  v.setUint16(0x04, 0x0006, true);
  v.setUint16(0x06, 0x0010, true);
  cfg[0x08] = spec.revision ?? 0xa1;
  cfg[0x09] = spec.classCode & 0xff;
  cfg[0x0a] = (spec.classCode >> 8) & 0xff;
  cfg[0x0b] = (spec.classCode >> 16) & 0xff;
  cfg[0x0e] = 0x00; // header type 0, single function
  v.setUint16(0x2c, spec.subsystemVendor, true);
  v.setUint16(0x2e, spec.subsystemDevice, true);
  cfg[0x3d] = 0x01; // interrupt pin INTA#
  const caps: PciCapability[] = [powerManagement(), msi()];
  if (spec.express !== undefined) caps.push(expressCapability(spec.express));
  caps.push(...extra);
  let at = CAPS_START;
  let link = 0x34; // the capabilities pointer, then each entry's next pointer
  for (const cap of caps) {
    if (at + 2 + cap.body.length > 256) fail('EINVAL', 'pci: capabilities do not fit in 256 bytes');
    cfg[link] = at;
    cfg[at] = cap.id;
    cfg.set(cap.body, at + 2);
    link = at + 1;
    // Entries are dword aligned.
    at = (at + 2 + cap.body.length + 3) & ~3;
  }
  cfg[link] = 0;
  if (extended.length > 0 && size < 4096)
    fail('EINVAL', 'pci: extended capabilities need PCI Express');
  let ext = EXT_CAPS_START;
  for (let i = 0; i < extended.length; i++) {
    const cap = extended[i]!;
    const next = i + 1 < extended.length ? (ext + 4 + cap.body.length + 3) & ~3 : 0;
    if (ext + 4 + cap.body.length > size) fail('EINVAL', 'pci: extended capabilities do not fit');
    v.setUint32(ext, (cap.id & 0xffff) | ((cap.version & 0xf) << 16) | (next << 20), true);
    cfg.set(cap.body, ext + 4);
    cap.attach?.(cfg, ext);
    ext = next;
  }
  return cfg;
}

const EXT_CAP_ID_SRIOV = 0x0010;
/** SR-IOV capability registers, from the capability's start. */
const SRIOV_CTRL = 0x08;
const SRIOV_CTRL_VFE = 0x0001;
const SRIOV_CTRL_MSE = 0x0008;
const SRIOV_NUM_VF = 0x10;

/**
 * The SR-IOV extended capability (0x40 bytes): InitialVFs and TotalVFs,
 * First VF Offset, VF Stride, VF Device ID, supported page sizes; the
 * control register's VF Enable and NumVFs follow what is enabled.
 */
class SriovCapability implements PciExtCapability {
  readonly id = EXT_CAP_ID_SRIOV;
  readonly version = 1;
  readonly body = new Uint8Array(0x3c);
  #cfg: DataView | undefined;
  #at = 0;

  constructor(spec: SriovSpec) {
    const v = new DataView(this.body.buffer);
    // Offsets below are from the capability's start, minus its 4-byte header.
    v.setUint16(0x0c - 4, spec.totalVfs, true); // InitialVFs
    v.setUint16(0x0e - 4, spec.totalVfs, true); // TotalVFs
    v.setUint16(0x14 - 4, spec.offset, true);
    v.setUint16(0x16 - 4, spec.stride, true);
    v.setUint16(0x1a - 4, spec.vfDevice, true);
    v.setUint32(0x1c - 4, 0x553, true); // supported page sizes: 4K .. 4M
    v.setUint32(0x20 - 4, 0x1, true); // system page size: 4K
  }

  attach(cfg: Uint8Array, offset: number): void {
    this.#cfg = new DataView(cfg.buffer, cfg.byteOffset, cfg.byteLength);
    this.#at = offset;
  }

  setEnabled(numVfs: number): void {
    const v = this.#cfg;
    if (v === undefined) return;
    v.setUint16(this.#at + SRIOV_CTRL, numVfs > 0 ? SRIOV_CTRL_VFE | SRIOV_CTRL_MSE : 0, true);
    v.setUint16(this.#at + SRIOV_NUM_VF, numVfs, true);
  }
}

/** Power management capability, version 3, D0 (6 bytes after the header). */
function powerManagement(): PciCapability {
  const body = new Uint8Array(6);
  new DataView(body.buffer).setUint16(0, 0x0003, true);
  return { id: CAP_ID_PM, body };
}

/** MSI capability, 64-bit addresses, disabled (12 bytes after the header). */
function msi(): PciCapability {
  const body = new Uint8Array(12);
  new DataView(body.buffer).setUint16(0, 0x0080, true);
  return { id: CAP_ID_MSI, body };
}

/**
 * The PCI Express capability, version 2 (58 bytes after the header):
 * capabilities register with the device/port type, link capabilities
 * (max speed, max width, port number) and link status (speed, width).
 */
function expressCapability(exp: PciExpressSpec): PciCapability {
  const body = new Uint8Array(58);
  const v = new DataView(body.buffer);
  const portType = exp.type === 'endpoint' ? 0x0 : 0x9;
  // Offsets below are from the capability's start, minus the two header bytes.
  v.setUint16(0x02 - 2, 0x0002 | (portType << 4), true);
  if (exp.link !== undefined) {
    const l = exp.link;
    v.setUint32(0x0c - 2, ((l.port ?? 0) << 24) | (l.maxWidth << 4) | l.maxSpeed, true);
    v.setUint16(0x12 - 2, (l.width << 4) | l.speed, true);
    // Link capabilities 2: the supported speeds vector up to the maximum.
    v.setUint32(0x2c - 2, ((1 << l.maxSpeed) - 1) << 1, true);
  }
  return { id: CAP_ID_EXP, body };
}

/** Link speeds as the kernel's sysfs prints them (PCIE_SPEED2STR). */
const SPEED_TEXT = [
  'Unknown',
  '2.5 GT/s PCIe',
  '5.0 GT/s PCIe',
  '8.0 GT/s PCIe',
  '16.0 GT/s PCIe',
  '32.0 GT/s PCIe',
];

/**
 * pci-sysfs.c's link attributes, present on every Express function:
 * max_link_speed, max_link_width, current_link_speed, current_link_width.
 * A function without a link reads "Unknown" and 0, as the kernel's
 * registers of zero give.
 */
function addLinkAttributes(node: DeviceNode, exp: PciExpressSpec): void {
  const l = exp.link;
  const ro = (name: string, text: string): void => {
    node.dir.attr(name, 0o444, { show: () => `${text}\n` });
  };
  ro('max_link_speed', SPEED_TEXT[l?.maxSpeed ?? 0] ?? 'Unknown');
  ro('max_link_width', String(l?.maxWidth ?? 0));
  ro('current_link_speed', SPEED_TEXT[l?.speed ?? 0] ?? 'Unknown');
  ro('current_link_width', String(l?.width ?? 0));
}
