import { fail } from '../../common/errno.js';
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
  /** Name of the PCI driver bound to it ("nvidia", "i915", "idxd"). */
  readonly driver: string;
  readonly numaNode?: number;
  /** A PCI Express function (4096-byte config space with an Express capability). */
  readonly express?: PciExpressSpec;
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
  readonly node: DeviceNode;
  readonly iommuGroup: number;
  /** Take the function away again (driver unbound, links and group freed). */
  remove(): void;
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
  const m = PCI_ADDRESS.exec(spec.address);
  if (m === null) fail('EINVAL', `pci: '${spec.address}' is not a PCI address (dddd:bb:ss.f)`);
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
  const config = pciConfigSpace(spec);
  // The kernel makes `config` 0644 (root may write registers); the emulated
  // registers are read-only, so the file is too: a write says EACCES
  // rather than pretending to have changed something.
  d.attr('config', 0o444, { read: () => config, size: config.length });
  if (spec.express !== undefined) addLinkAttributes(node, spec.express);
  const iommuGroup = kernel.allocIommuGroup(path, d);
  kernel.bindDriver(node, 'pci', spec.driver);
  return {
    node,
    iommuGroup,
    remove() {
      kernel.unbindDriver(node, 'pci');
      kernel.freeIommuGroup(iommuGroup);
      kernel.removeDevice(node, { bus: 'pci' });
      // The host bridge goes with its last function (its uevent file stays till then).
      const rest = [...kernel.tree.dirAt(bridge).children.keys()].filter((n) => n !== 'uevent');
      if (rest.length === 0) {
        kernel.tree.dirAt('/sys/devices').remove(bridge.slice('/sys/devices/'.length));
      }
    },
  };
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
 * The function's configuration space: a type 0 header that agrees with the
 * identity files, then a capability list (power management, MSI, and for an
 * Express function the Express capability). 256 bytes, or 4096 for Express,
 * whose extended space holds no extended capabilities (a zero header ends
 * the list, as PCIe requires).
 */
export function pciConfigSpace(
  spec: PciFunctionSpec,
  extra: readonly PciCapability[] = [],
): Uint8Array {
  const size = spec.express === undefined ? 256 : 4096;
  const cfg = new Uint8Array(size);
  const v = new DataView(cfg.buffer);
  v.setUint16(0x00, spec.vendor, true);
  v.setUint16(0x02, spec.device, true);
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
  return cfg;
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
