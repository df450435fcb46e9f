import * as fs from 'node:fs';
import { ErrnoError } from '../common/errno.js';
import type { SysfsPort } from '../port/sysfs-port.js';
import {
  listActiveDevices,
  listDefinedDevices,
  type HostHooks,
  type MdevAttribute,
  type MdevDevice,
  type StartMode,
} from '../host/devices.js';
import type { Environment } from '../host/environment.js';
import { MDEV_BUS_DEVICES, MDEV_CLASS } from '../host/paths.js';
import { PCI_DEVICES, listVfGpus, vfOf } from '../host/vf-vgpu.js';
import { listParentNames, readType, type MdevTypeInfo } from '../host/sysfs-model.js';
import {
  AP_MATRIX_NODEDEV,
  COMPUTER_NODEDEV,
  mdevNodeDeviceName,
  nodeDeviceName,
} from './names.js';
import { el, formatXml, type XmlElement } from './xml.js';

/**
 * libvirt's node devices for mdev, read from sysfs and the mdevctl
 * definitions: the parents that offer mdev types and the mediated devices,
 * running or only defined. The shapes follow libvirt's node device XML
 * (virNodeDeviceDefFormat and nodedev.rng):
 *
 * - a parent is a node device of its own bus — PCI (`pci_0000_00_02_0`),
 *   an s390 subchannel (`css_0_0_0023`) or the vfio_ap matrix
 *   (`ap_matrix`) — whose capability nests `<capability type='mdev_types'>`,
 *   its types in the order of their directory (libvirt reads it unsorted);
 * - the kernel sample mtty (subsystem `mtty`) is `mtty_mtty`, a node device
 *   whose only capability is `mdev_types`: libvirt 9 recognises that
 *   subsystem by name and nests a second `mdev_types` capability inside the
 *   first, which its own schema rejects; we print what libvirt prints;
 * - an mdev is `mdev_<uuid>_<parent address>` with `<capability type='mdev'>`
 *   holding the type, UUID, parent address, IOMMU group (the running
 *   device's; 0 for a defined one that is not running, as libvirt prints)
 *   and the definition's attributes in order.
 *
 * Parents on other buses (the samples mdpy and mbochs are virtual devices of
 * their own classes) have no node device in libvirt, so they are not listed;
 * their mdevs name `computer` as parent, as libvirt does when no ancestor is
 * a node device. Everything the parent's capability says comes from sysfs
 * files: the bus from the `subsystem` link, PCI ids from `vendor`, `device`
 * and `class`, the IOMMU group from `iommu_group`, PCI Express and its link
 * from the capability list in `config` (as libvirt reads it). A file that is
 * missing is left out, not guessed, except for the PCI vendor and product
 * ids the schema requires (then 0x0000).
 */

export interface PciAddress {
  readonly domain: number;
  readonly bus: number;
  readonly slot: number;
  readonly function: number;
}

export interface CcwAddress {
  readonly cssid: number;
  readonly ssid: number;
  readonly devno: number;
}

/** A PCI Express link as libvirt shows it: generation (1 = 2.5 GT/s ...) and lanes. */
export interface PciExpressLink {
  /** Port number (the link capabilities' only; libvirt has none for the status). */
  readonly port?: number;
  readonly speed: number;
  readonly width: number;
}

/** A PCI Express function: its link, unless it is integrated in the root complex. */
export interface PciExpress {
  readonly link?: { readonly cap: PciExpressLink; readonly sta: PciExpressLink };
}

export type ParentCapability =
  | {
      readonly type: 'pci';
      readonly address: PciAddress;
      readonly vendorId: number | undefined;
      readonly productId: number | undefined;
      readonly pciClass: number | undefined;
      readonly iommuGroup: { readonly number: number; readonly devices: PciAddress[] } | undefined;
      /** Present for a PCI Express function (read from its `config`). */
      readonly express?: PciExpress;
    }
  | { readonly type: 'css'; readonly address: CcwAddress; readonly channelDevAddr?: CcwAddress }
  | { readonly type: 'ap_matrix' }
  /** A device libvirt knows only as an mdev parent (the sample mtty). */
  | { readonly type: 'mdev_types' };

/** A parent device offering mdev types. */
export interface ParentNodeDevice {
  readonly kind: 'parent';
  /** libvirt's node device name. */
  readonly name: string;
  /** The sysfs name mdevctl uses as parent (what /sys/class/mdev_bus lists). */
  readonly address: string;
  /** Canonical sysfs path of the device. */
  readonly path: string;
  /** Node device name of the parent's own parent. */
  readonly parent: string;
  readonly driver: string | undefined;
  readonly capability: ParentCapability;
  readonly types: readonly MdevTypeInfo[];
}

/** A mediated device: running, defined, or both. */
export interface MdevNodeDevice {
  readonly kind: 'mdev';
  readonly name: string;
  readonly uuid: string;
  /** The parent's sysfs name ("0000:00:02.0"), libvirt's parent_addr. */
  readonly parentAddress: string;
  /** Node device name of the parent, or "computer" when it has none. */
  readonly parent: string;
  readonly type: string;
  readonly active: boolean;
  /** Defined in the mdevctl config directory. */
  readonly persistent: boolean;
  readonly autostart: boolean;
  readonly attrs: readonly MdevAttribute[];
  /** Present while active. */
  readonly path: string | undefined;
  readonly driver: string | undefined;
  readonly iommuGroup: number | undefined;
}

/**
 * A PCI device with no mdev types that mdevkit shows because it carries
 * NVIDIA's SR-IOV vGPUs: the GPU (physical function, with
 * `<capability type='virt_functions' maxCount=...>` listing its VFs) and
 * each VF (with `<capability type='phys_function'>` naming the GPU). libvirt
 * has no vGPU support for these; a VF is the plain PCI device a domain's
 * `<hostdev type='pci' managed='no'>` names.
 */
export interface PciNodeDevice {
  readonly kind: 'pci';
  readonly name: string;
  readonly address: string;
  readonly path: string;
  readonly parent: string;
  readonly driver: string | undefined;
  readonly capability: Extract<ParentCapability, { type: 'pci' }> & {
    readonly numaNode: number | undefined;
    readonly physFunction: PciAddress | undefined;
    readonly virtFunctions:
      { readonly maxCount: number; readonly addresses: PciAddress[] } | undefined;
  };
}

export type NodeDevice = ParentNodeDevice | MdevNodeDevice | PciNodeDevice;

/** Capability names a node device answers to (`nodedev-list --cap`). */
export function capabilitiesOf(dev: NodeDevice): string[] {
  if (dev.kind === 'pci') return ['pci'];
  if (dev.kind === 'mdev') return ['mdev'];
  if (dev.capability.type === 'mdev_types') return ['mdev_types'];
  return [dev.capability.type, 'mdev_types'];
}

// ---- reading sysfs ---------------------------------------------------------

const basename = (p: string): string => p.slice(p.lastIndexOf('/') + 1);
const dirname = (p: string): string => p.slice(0, p.lastIndexOf('/')) || '/';

const PCI_NAME = /^([0-9a-fA-F]{4,8}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/;
const CCW_NAME = /^([0-9a-fA-F])\.([0-9a-fA-F])\.([0-9a-fA-F]{4})$/;

export function parsePciAddress(name: string): PciAddress | undefined {
  const m = PCI_NAME.exec(name);
  if (m === null) return undefined;
  return {
    domain: parseInt(m[1]!, 16),
    bus: parseInt(m[2]!, 16),
    slot: parseInt(m[3]!, 16),
    function: parseInt(m[4]!, 16),
  };
}

export function parseCcwAddress(name: string): CcwAddress | undefined {
  const m = CCW_NAME.exec(name.trim());
  if (m === null) return undefined;
  return { cssid: parseInt(m[1]!, 16), ssid: parseInt(m[2]!, 16), devno: parseInt(m[3]!, 16) };
}

/** Contents of an attribute without its newline; undefined when it cannot be read. */
function readOptional(port: SysfsPort, path: string): string | undefined {
  try {
    return port.read(path).trim();
  } catch (err) {
    if (err instanceof ErrnoError) return undefined;
    throw err;
  }
}

function readHex(port: SysfsPort, path: string): number | undefined {
  const text = readOptional(port, path);
  if (text === undefined || !/^(0x)?[0-9a-fA-F]+$/.test(text)) return undefined;
  return parseInt(text, 16);
}

/** Basename of a link's target (driver, subsystem, iommu_group), or undefined. */
function linkName(port: SysfsPort, path: string): string | undefined {
  if (port.kind(path) !== 'link') return undefined;
  try {
    return basename(port.readlink(path));
  } catch (err) {
    if (err instanceof ErrnoError) return undefined;
    throw err;
  }
}

export function readIommuGroup(
  port: SysfsPort,
  devPath: string,
): { number: number; devices: PciAddress[] } | undefined {
  const group = linkName(port, `${devPath}/iommu_group`);
  if (group === undefined || !/^\d+$/.test(group)) return undefined;
  let members: string[] = [];
  try {
    members = port.list(`/sys/kernel/iommu_groups/${group}/devices`);
  } catch (err) {
    if (!(err instanceof ErrnoError)) throw err;
  }
  const devices = members
    .map(parsePciAddress)
    .filter((a): a is PciAddress => a !== undefined)
    .sort(
      (a, b) => a.domain - b.domain || a.bus - b.bus || a.slot - b.slot || a.function - b.function,
    );
  return { number: Number(group), devices };
}

/**
 * The node device name of the nearest ancestor libvirt has a node device
 * for: a PCI bridge or root port above a PCI device, else "computer".
 */
function ancestorNodeDevice(path: string): string {
  for (let dir = dirname(path); dir.startsWith('/sys/devices/'); dir = dirname(dir)) {
    const name = basename(dir);
    if (parsePciAddress(name) !== undefined) return nodeDeviceName('pci', name);
  }
  return COMPUTER_NODEDEV;
}

/** PCI capability ids and registers libvirt's virpci.c reads. */
const PCI_STATUS = 0x06;
const PCI_STATUS_CAP_LIST = 0x10;
const PCI_CAPABILITY_LIST = 0x34;
const PCI_CAP_ID_EXP = 0x10;
const PCI_EXP_FLAGS = 0x02;
const PCI_EXP_LNKCAP = 0x0c;
const PCI_EXP_LNKSTA = 0x12;
/** Device/port types without a link: root complex integrated endpoint and event collector. */
const PCI_EXP_TYPE_RC_END = 0x9;
const PCI_EXP_TYPE_RC_EC = 0xa;

/**
 * PCI Express as libvirt decides it: an Express capability in the
 * function's capability list (read from `config`), and its link unless the
 * function is integrated in the root complex. Undefined for conventional
 * PCI or when `config` cannot be read.
 */
export function readPciExpress(port: SysfsPort, devPath: string): PciExpress | undefined {
  if (port.readBytes === undefined) return undefined;
  let cfg: Buffer;
  try {
    cfg = port.readBytes(`${devPath}/config`);
  } catch (err) {
    if (err instanceof ErrnoError) return undefined;
    throw err;
  }
  if (cfg.length < 64 || (cfg.readUInt16LE(PCI_STATUS) & PCI_STATUS_CAP_LIST) === 0) {
    return undefined;
  }
  // Walk the list (at most 48 entries fit in 256 bytes: a loop is a broken device).
  let pos = cfg[PCI_CAPABILITY_LIST]! & ~3;
  for (let hops = 0; pos >= 0x40 && pos + 2 <= cfg.length && hops < 48; hops++) {
    if (cfg[pos] === PCI_CAP_ID_EXP) {
      if (pos + PCI_EXP_LNKSTA + 2 > cfg.length) return {};
      const type = (cfg.readUInt16LE(pos + PCI_EXP_FLAGS) >> 4) & 0xf;
      if (type === PCI_EXP_TYPE_RC_END || type === PCI_EXP_TYPE_RC_EC) return {};
      const lnkcap = cfg.readUInt32LE(pos + PCI_EXP_LNKCAP);
      const lnksta = cfg.readUInt16LE(pos + PCI_EXP_LNKSTA);
      return {
        link: {
          cap: { port: lnkcap >>> 24, speed: lnkcap & 0xf, width: (lnkcap >> 4) & 0x3f },
          sta: { speed: lnksta & 0xf, width: (lnksta >> 4) & 0x3f },
        },
      };
    }
    pos = cfg[pos + 1]! & ~3;
  }
  return undefined;
}

function parentCapability(
  port: SysfsPort,
  name: string,
  path: string,
  subsystem: string | undefined,
): ParentCapability | undefined {
  const pci = parsePciAddress(name);
  if (subsystem === 'pci' || (subsystem === undefined && pci !== undefined)) {
    if (pci === undefined) return undefined;
    return {
      type: 'pci',
      address: pci,
      vendorId: readHex(port, `${path}/vendor`),
      productId: readHex(port, `${path}/device`),
      pciClass: readHex(port, `${path}/class`),
      iommuGroup: readIommuGroup(port, path),
      ...withExpress(readPciExpress(port, path)),
    };
  }
  const ccw = parseCcwAddress(name);
  if (subsystem === 'css' || (subsystem === undefined && ccw !== undefined)) {
    if (ccw === undefined) return undefined;
    const busid = readOptional(port, `${path}/dev_busid`);
    const channel = busid === undefined || busid === 'none' ? undefined : parseCcwAddress(busid);
    return channel === undefined
      ? { type: 'css', address: ccw }
      : { type: 'css', address: ccw, channelDevAddr: channel };
  }
  if (subsystem === 'matrix' || (subsystem === undefined && name === 'matrix')) {
    return { type: 'ap_matrix' };
  }
  // libvirt 9 (udevGetDeviceType) knows the sample mtty's subsystem by name.
  if (subsystem === 'mtty') return { type: 'mdev_types' };
  return undefined;
}

const withExpress = (e: PciExpress | undefined): { express?: PciExpress } =>
  e === undefined ? {} : { express: e };

/**
 * A parent's types in the order its mdev_supported_types directory lists
 * them, as libvirt reads them (readdir, unsorted).
 */
function typesInDirectoryOrder(port: SysfsPort, address: string): MdevTypeInfo[] {
  const dir = `${MDEV_CLASS}/${address}/mdev_supported_types`;
  return port.list(dir).map((id) => readType(port, address, id));
}

/**
 * The parent registered as /sys/class/mdev_bus/<address>, as a node device,
 * or undefined when libvirt's schema has no node device for its bus.
 */
export function readParentNodeDevice(
  port: SysfsPort,
  address: string,
): ParentNodeDevice | undefined {
  let path: string;
  try {
    path = port.realpath(`${MDEV_CLASS}/${address}`);
  } catch (err) {
    if (err instanceof ErrnoError) return undefined; // unregistered meanwhile
    throw err;
  }
  const subsystem = linkName(port, `${path}/subsystem`);
  const capability = parentCapability(port, address, path, subsystem);
  if (capability === undefined) return undefined;
  let types: readonly MdevTypeInfo[];
  try {
    types = typesInDirectoryOrder(port, address);
  } catch (err) {
    if (err instanceof ErrnoError) return undefined;
    throw err;
  }
  // The schema wants at least one type and a device API it knows.
  types = types.filter((t) => KNOWN_DEVICE_APIS.has(t.deviceApi));
  if (types.length === 0) return undefined;
  let name: string;
  switch (capability.type) {
    case 'pci':
      name = nodeDeviceName('pci', address);
      break;
    case 'css':
      name = nodeDeviceName('css', address);
      break;
    case 'ap_matrix':
      name = AP_MATRIX_NODEDEV;
      break;
    case 'mdev_types':
      name = nodeDeviceName(subsystem ?? 'mtty', address);
      break;
  }
  return {
    kind: 'parent',
    name,
    address,
    path,
    parent: ancestorNodeDevice(path),
    driver: linkName(port, `${path}/driver`),
    capability,
    types,
  };
}

const KNOWN_DEVICE_APIS = new Set(['vfio-pci', 'vfio-ccw', 'vfio-ap']);

/** Every parent that is a node device, by address. */
export function listParentNodeDevices(port: SysfsPort): ParentNodeDevice[] {
  const out: ParentNodeDevice[] = [];
  for (const address of listParentNames(port)) {
    const dev = readParentNodeDevice(port, address);
    if (dev !== undefined) out.push(dev);
  }
  return out;
}

function flatten(map: Map<string, MdevDevice[]>): MdevDevice[] {
  return [...map.values()].flat();
}

function definitions(env: Environment, hooks: HostHooks): MdevDevice[] {
  // No config directory means nothing is defined (a bare /sys snapshot).
  if (!fs.existsSync(env.configDir)) return [];
  return flatten(listDefinedDevices(env, {}, hooks));
}

function activeDetails(
  port: SysfsPort,
  uuid: string,
): { path: string | undefined; driver: string | undefined; iommuGroup: number | undefined } {
  const link = `${MDEV_BUS_DEVICES}/${uuid}`;
  let path: string | undefined;
  try {
    path = port.realpath(link);
  } catch (err) {
    if (!(err instanceof ErrnoError)) throw err;
  }
  const group = linkName(port, `${link}/iommu_group`);
  return {
    path,
    driver: linkName(port, `${link}/driver`),
    iommuGroup: group !== undefined && /^\d+$/.test(group) ? Number(group) : undefined,
  };
}

function mdevNode(
  port: SysfsPort,
  dev: MdevDevice,
  parentName: string,
  persistent: boolean,
  start: StartMode,
): MdevNodeDevice {
  const details = dev.active
    ? activeDetails(port, dev.uuid)
    : { path: undefined, driver: undefined, iommuGroup: undefined };
  return {
    kind: 'mdev',
    name: mdevNodeDeviceName(dev.uuid, dev.parent),
    uuid: dev.uuid,
    parentAddress: dev.parent,
    parent: parentName,
    type: dev.type,
    active: dev.active,
    persistent,
    autostart: persistent && start === 'auto',
    attrs: dev.attrs,
    ...details,
  };
}

/**
 * Every mediated device libvirt would show: running ones (with the
 * attributes of their definition, when defined) and defined ones that are
 * not running. A definition on one parent does not hide a running device of
 * the same UUID on another; each is its own node device, as in libvirt.
 */
export function listMdevNodeDevices(
  env: Environment,
  parents: readonly ParentNodeDevice[] = listParentNodeDevices(env.port),
  hooks: HostHooks = {},
): MdevNodeDevice[] {
  const parentName = new Map(parents.map((p) => [p.address, p.name]));
  const nameOf = (address: string): string => parentName.get(address) ?? COMPUTER_NODEDEV;
  const defined = definitions(env, hooks);
  const definedKey = new Map(defined.map((d) => [`${d.parent}/${d.uuid}`, d]));
  const out: MdevNodeDevice[] = [];
  const seen = new Set<string>();
  for (const dev of flatten(listActiveDevices(env, {}, hooks))) {
    const key = `${dev.parent}/${dev.uuid}`;
    seen.add(key);
    const def = definedKey.get(key);
    // A running device shows its definition's attributes, as libvirt 9.0
    // with Debian 12's mdevctl does. (mdevctl 1.4's own listing of running
    // devices has only what a callout script reports.)
    const shown = def === undefined ? dev : { ...dev, attrs: def.attrs };
    out.push(
      mdevNode(env.port, shown, nameOf(dev.parent), def !== undefined, def?.start ?? 'manual'),
    );
  }
  for (const def of defined) {
    if (seen.has(`${def.parent}/${def.uuid}`)) continue;
    out.push(mdevNode(env.port, { ...def, active: false }, nameOf(def.parent), true, def.start));
  }
  return out;
}

/**
 * The PCI node device of `address` as libvirt reads it (virPCIDevice and
 * the udev backend): ids, class, IOMMU group, NUMA node, Express link, and
 * the SR-IOV relations from `physfn`, `sriov_totalvfs` and `virtfn<i>`.
 */
export function readPciNodeDevice(port: SysfsPort, address: string): PciNodeDevice | undefined {
  const pci = parsePciAddress(address);
  if (pci === undefined) return undefined;
  let path: string;
  try {
    path = port.realpath(`${PCI_DEVICES}/${address}`);
  } catch (err) {
    if (err instanceof ErrnoError) return undefined;
    throw err;
  }
  const numa = readOptional(port, `${path}/numa_node`);
  const physfn = linkName(port, `${path}/physfn`);
  const total = readOptional(port, `${path}/sriov_totalvfs`);
  let virtFunctions: { maxCount: number; addresses: PciAddress[] } | undefined;
  if (total !== undefined && /^\d+$/.test(total) && Number(total) > 0) {
    const names = port.list(path).filter((n) => /^virtfn\d+$/.test(n));
    names.sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)));
    const addresses = names
      .map((n) => linkName(port, `${path}/${n}`))
      .map((n) => (n === undefined ? undefined : parsePciAddress(n)))
      .filter((a): a is PciAddress => a !== undefined);
    virtFunctions = { maxCount: Number(total), addresses };
  }
  return {
    kind: 'pci',
    name: nodeDeviceName('pci', address),
    address,
    path,
    parent: ancestorNodeDevice(path),
    driver: linkName(port, `${path}/driver`),
    capability: {
      type: 'pci',
      address: pci,
      vendorId: readHex(port, `${path}/vendor`),
      productId: readHex(port, `${path}/device`),
      pciClass: readHex(port, `${path}/class`),
      iommuGroup: readIommuGroup(port, path),
      ...withExpress(readPciExpress(port, path)),
      numaNode: numa !== undefined && /^\d+$/.test(numa) ? Number(numa) : undefined,
      physFunction: physfn === undefined ? undefined : parsePciAddress(physfn),
      virtFunctions,
    },
  };
}

/** The GPUs with NVIDIA SR-IOV vGPUs and their VFs, as PCI node devices. */
export function listVfGpuNodeDevices(port: SysfsPort): PciNodeDevice[] {
  const out: PciNodeDevice[] = [];
  for (const gpu of listVfGpus(port, { details: false })) {
    for (const address of [gpu.address, ...gpu.vfs.map((v) => v.address)]) {
      const dev = readPciNodeDevice(port, address);
      if (dev !== undefined) out.push(dev);
    }
  }
  return out;
}

/** A VF's node device by address, when it is an NVIDIA vGPU VF. */
export function findVfNodeDevice(port: SysfsPort, address: string): PciNodeDevice | undefined {
  return vfOf(port, address) === undefined ? undefined : readPciNodeDevice(port, address);
}

export interface NodeDeviceFilter {
  /** Only devices with one of these capabilities (mdev, mdev_types, pci, css, ap_matrix). */
  readonly caps?: readonly string[] | undefined;
  /** Which mdevs: running (libvirt's default), defined but not running, or all. */
  readonly state?: 'active' | 'inactive' | 'all';
}

export const LISTABLE_CAPS = ['mdev', 'mdev_types', 'pci', 'css', 'ap_matrix'] as const;

/**
 * The node devices of a host, sorted by name as `virsh nodedev-list` prints
 * them. `hooks.invalidDefinition` lets a caller skip (and report) a broken
 * definition file instead of failing the whole listing.
 */
export function listNodeDevices(
  env: Environment,
  filter: NodeDeviceFilter = {},
  hooks: HostHooks = {},
): NodeDevice[] {
  const parents = listParentNodeDevices(env.port);
  const all: NodeDevice[] = [
    ...parents,
    ...listMdevNodeDevices(env, parents, hooks),
    ...listVfGpuNodeDevices(env.port),
  ];
  const state = filter.state ?? 'active';
  return all
    .filter((d) => {
      const active = d.kind !== 'mdev' || d.active;
      if (state === 'active' && !active) return false;
      if (state === 'inactive' && active) return false;
      return filter.caps === undefined || capabilitiesOf(d).some((c) => filter.caps!.includes(c));
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * One node device by libvirt name; a bare UUID also finds an mdev when
 * exactly one device has it. Undefined when there is none.
 */
export function findNodeDevice(
  env: Environment,
  nameOrUuid: string,
  hooks: HostHooks = {},
): NodeDevice | undefined {
  const all = listNodeDevices(env, { state: 'all' }, hooks);
  const byName = all.find((d) => d.name === nameOrUuid);
  if (byName !== undefined) return byName;
  const lower = nameOrUuid.toLowerCase();
  const byUuid = all.filter((d) => d.kind === 'mdev' && d.uuid === lower);
  return byUuid.length === 1 ? byUuid[0] : undefined;
}

// ---- formatting ------------------------------------------------------------

const hex = (n: number, width: number): string => `0x${n.toString(16).padStart(width, '0')}`;

function pciAddressElement(a: PciAddress): XmlElement {
  return el('address', {
    domain: hex(a.domain, 4),
    bus: hex(a.bus, 2),
    slot: hex(a.slot, 2),
    function: `0x${a.function}`,
  });
}

function ccwAddressElements(a: CcwAddress): XmlElement[] {
  return [
    el('cssid', {}, hex(a.cssid, 1)),
    el('ssid', {}, hex(a.ssid, 1)),
    el('devno', {}, hex(a.devno, 4)),
  ];
}

function mdevTypesElement(types: readonly MdevTypeInfo[]): XmlElement {
  return el(
    'capability',
    { type: 'mdev_types' },
    types.map((t) =>
      el('type', { id: t.id }, [
        t.name === undefined ? undefined : el('name', {}, t.name),
        el('deviceAPI', {}, t.deviceApi),
        el('availableInstances', {}, String(Math.max(0, t.availableInstances))),
      ]),
    ),
  );
}

function parentCapabilityElement(dev: ParentNodeDevice): XmlElement {
  const cap = dev.capability;
  switch (cap.type) {
    case 'pci':
      return el('capability', { type: 'pci' }, [
        cap.pciClass === undefined ? undefined : el('class', {}, hex(cap.pciClass, 6)),
        el('domain', {}, String(cap.address.domain)),
        el('bus', {}, String(cap.address.bus)),
        el('slot', {}, String(cap.address.slot)),
        el('function', {}, String(cap.address.function)),
        el('product', { id: hex(cap.productId ?? 0, 4) }),
        el('vendor', { id: hex(cap.vendorId ?? 0, 4) }),
        mdevTypesElement(dev.types),
        cap.iommuGroup === undefined || cap.iommuGroup.devices.length === 0
          ? undefined
          : el(
              'iommuGroup',
              { number: cap.iommuGroup.number },
              cap.iommuGroup.devices.map(pciAddressElement),
            ),
        cap.express === undefined ? undefined : pciExpressElement(cap.express),
      ]);
    case 'css':
      return el('capability', { type: 'css' }, [
        ...ccwAddressElements(cap.address),
        cap.channelDevAddr === undefined
          ? undefined
          : el('channel_dev_addr', {}, ccwAddressElements(cap.channelDevAddr)),
        mdevTypesElement(dev.types),
      ]);
    case 'ap_matrix':
      return el('capability', { type: 'ap_matrix' }, [mdevTypesElement(dev.types)]);
    case 'mdev_types':
      // libvirt 9 formats the device's own capability, then the same list again inside it.
      return el('capability', { type: 'mdev_types' }, [mdevTypesElement(dev.types)]);
  }
}

/** virNodeDeviceCapPCIDefFormat's order for a PCI device without mdev types. */
function pciCapabilityElement(dev: PciNodeDevice): XmlElement {
  const cap = dev.capability;
  return el('capability', { type: 'pci' }, [
    cap.pciClass === undefined ? undefined : el('class', {}, hex(cap.pciClass, 6)),
    el('domain', {}, String(cap.address.domain)),
    el('bus', {}, String(cap.address.bus)),
    el('slot', {}, String(cap.address.slot)),
    el('function', {}, String(cap.address.function)),
    el('product', { id: hex(cap.productId ?? 0, 4) }),
    el('vendor', { id: hex(cap.vendorId ?? 0, 4) }),
    cap.physFunction === undefined
      ? undefined
      : el('capability', { type: 'phys_function' }, [pciAddressElement(cap.physFunction)]),
    cap.virtFunctions === undefined
      ? undefined
      : el(
          'capability',
          { type: 'virt_functions', maxCount: cap.virtFunctions.maxCount },
          cap.virtFunctions.addresses.map(pciAddressElement),
        ),
    cap.iommuGroup === undefined || cap.iommuGroup.devices.length === 0
      ? undefined
      : el(
          'iommuGroup',
          { number: cap.iommuGroup.number },
          cap.iommuGroup.devices.map(pciAddressElement),
        ),
    cap.numaNode === undefined ? undefined : el('numa', { node: cap.numaNode }),
    cap.express === undefined ? undefined : pciExpressElement(cap.express),
  ]);
}

/** Link speeds as libvirt prints them (virPCIELinkSpeed), by generation. */
const LINK_SPEED = ['', '2.5', '5', '8', '16', '32', '64'];

function pciExpressElement(e: PciExpress): XmlElement {
  if (e.link === undefined) return el('pci-express');
  const link = (validity: 'cap' | 'sta', l: PciExpressLink): XmlElement =>
    el('link', {
      validity,
      ...(l.port === undefined ? {} : { port: l.port }),
      ...(LINK_SPEED[l.speed] ? { speed: LINK_SPEED[l.speed]! } : {}),
      width: l.width,
    });
  return el('pci-express', {}, [link('cap', e.link.cap), link('sta', e.link.sta)]);
}

function mdevCapabilityElement(dev: MdevNodeDevice, inactive: boolean): XmlElement {
  return el('capability', { type: 'mdev' }, [
    el('type', { id: dev.type }),
    el('uuid', {}, dev.uuid),
    el('parent_addr', {}, dev.parentAddress),
    // libvirt always prints the group: 0 for a device that is not running.
    el('iommuGroup', { number: inactive ? 0 : (dev.iommuGroup ?? 0) }),
    ...dev.attrs.map((a) => el('attr', { name: a.name, value: a.value })),
  ]);
}

/**
 * The device's XML as `virsh nodedev-dumpxml` prints it. `inactive` gives
 * the persistent definition (libvirt's --inactive); an mdev that is not
 * running is always shown that way.
 */
export function nodeDeviceXml(dev: NodeDevice, inactive = false): XmlElement {
  if (dev.kind === 'pci') {
    return el('device', {}, [
      el('name', {}, dev.name),
      el('path', {}, dev.path),
      el('parent', {}, dev.parent),
      dev.driver === undefined ? undefined : el('driver', {}, [el('name', {}, dev.driver)]),
      pciCapabilityElement(dev),
    ]);
  }
  if (dev.kind === 'parent') {
    return el('device', {}, [
      el('name', {}, dev.name),
      el('path', {}, dev.path),
      el('parent', {}, dev.parent),
      dev.driver === undefined ? undefined : el('driver', {}, [el('name', {}, dev.driver)]),
      parentCapabilityElement(dev),
    ]);
  }
  const showInactive = inactive || !dev.active;
  return el('device', {}, [
    el('name', {}, dev.name),
    showInactive || dev.path === undefined ? undefined : el('path', {}, dev.path),
    el('parent', {}, dev.parent),
    showInactive || dev.driver === undefined
      ? undefined
      : el('driver', {}, [el('name', {}, dev.driver)]),
    mdevCapabilityElement(dev, showInactive),
  ]);
}

export function formatNodeDeviceXml(dev: NodeDevice, inactive = false): string {
  return formatXml(nodeDeviceXml(dev, inactive));
}

/** A stable JSON view for scripts (the same facts as the XML, plus state). */
export function nodeDeviceJson(dev: NodeDevice): Record<string, unknown> {
  if (dev.kind === 'pci') {
    return {
      name: dev.name,
      kind: 'pci',
      capabilities: capabilitiesOf(dev),
      address: dev.address,
      path: dev.path,
      parent: dev.parent,
      driver: dev.driver ?? null,
      capability: dev.capability,
    };
  }
  if (dev.kind === 'parent') {
    return {
      name: dev.name,
      kind: 'parent',
      capabilities: capabilitiesOf(dev),
      address: dev.address,
      path: dev.path,
      parent: dev.parent,
      driver: dev.driver ?? null,
      capability: dev.capability,
      types: dev.types.map((t) => ({
        id: t.id,
        name: t.name ?? null,
        deviceApi: t.deviceApi,
        availableInstances: t.availableInstances,
      })),
    };
  }
  return {
    name: dev.name,
    kind: 'mdev',
    capabilities: capabilitiesOf(dev),
    uuid: dev.uuid,
    parent: dev.parent,
    parentAddress: dev.parentAddress,
    type: dev.type,
    active: dev.active,
    persistent: dev.persistent,
    autostart: dev.autostart,
    path: dev.path ?? null,
    driver: dev.driver ?? null,
    iommuGroup: dev.iommuGroup ?? null,
    attrs: dev.attrs.map((a) => ({ name: a.name, value: a.value })),
  };
}
