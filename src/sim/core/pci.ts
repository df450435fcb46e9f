import { fail } from '../../common/errno.js';
import { relativeLink } from '../sysfs/tree.js';
import type { DeviceNode, EmulatedKernel } from './kernel.js';

/**
 * Physical PCI functions for the vendor driver models (a GPU, an
 * accelerator): the directory a real host has under /sys/devices/pci*, with
 * the identity attributes tools read (libvirt's node-device code takes
 * domain/bus/slot/function from the address and the ids from these files),
 * the /sys/bus/pci/devices link, the bound driver and the function's own
 * IOMMU group.
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

/** Create the function's sysfs directory and everything around it. */
export function addPciFunction(kernel: EmulatedKernel, spec: PciFunctionSpec): PciFunction {
  const m = PCI_ADDRESS.exec(spec.address);
  if (m === null) fail('EINVAL', `pci: '${spec.address}' is not a PCI address (dddd:bb:ss.f)`);
  const bridge = `/sys/devices/pci${m[1]}:${m[2]}`;
  const path = `${bridge}/${spec.address}`;
  if (kernel.tree.lookup(path) !== undefined) fail('EEXIST', `pci: ${spec.address} exists`);
  const node = kernel.addDevice(path, 'pci', { bus: 'pci' });
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
  ro(
    'uevent',
    `DRIVER=${spec.driver}\nPCI_CLASS=${spec.classCode.toString(16).toUpperCase()}\n` +
      `PCI_ID=${idPair(spec.vendor, spec.device)}\n` +
      `PCI_SUBSYS_ID=${idPair(spec.subsystemVendor, spec.subsystemDevice)}\n` +
      `PCI_SLOT_NAME=${spec.address}\n`,
  );
  const drvDir = `/sys/bus/pci/drivers/${spec.driver}`;
  kernel.tree.mkdirp(drvDir).link(spec.address, relativeLink(drvDir, path));
  d.link('driver', relativeLink(path, drvDir));
  const iommuGroup = kernel.allocIommuGroup(path, d);
  return {
    node,
    iommuGroup,
    remove() {
      kernel.freeIommuGroup(iommuGroup);
      kernel.tree.dirAt(drvDir).remove(spec.address);
      kernel.removeDevice(node, { bus: 'pci' });
      // The host bridge goes with its last function.
      if (kernel.tree.dirAt(bridge).children.size === 0) {
        kernel.tree.dirAt('/sys/devices').remove(bridge.slice('/sys/devices/'.length));
      }
    },
  };
}

function idPair(a: number, b: number): string {
  const h = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0');
  return `${h(a)}:${h(b)}`;
}
