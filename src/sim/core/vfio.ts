import { ErrnoError, fail } from '../../common/errno.js';
import type { EmulatedKernel } from './kernel.js';
import type { PciFunction } from './pci.js';

/**
 * PCI functions a VM can open through VFIO without the mdev bus: what a
 * vfio-pci-core variant driver registers (vfio_pci_core_register_device).
 * NVIDIA's vGPU driver registers each SR-IOV VF this way ("nvidia-vfio-pci")
 * while the VF stays bound to `nvidia`. The emulator has no guest, so the
 * lab's control interface plays the VM: it opens and releases the device,
 * and the driver's hooks decide (open refused, writes refused while open).
 *
 * Each registered function gets the VFIO device cdev's sysfs directory,
 * `<function>/vfio-dev/vfio<N>`, as kernels with VFIO_DEVICE_CDEV have it.
 */
export interface VfioPciOps {
  /** open_device: may refuse with an ErrnoError. Called on the first open only. */
  open?(): void;
  /** close_device: the last user let go. Pairs with open. */
  release?(): void;
}

export interface VfioPciDevice {
  readonly fn: PciFunction;
  /** Users holding it open (a VM's VFIO fd); opens nest. */
  readonly openCount: number;
}

interface Registered extends VfioPciDevice {
  openCount: number;
  readonly ops: VfioPciOps;
  readonly cdev: number;
}

interface VfioState {
  readonly devices: Map<string, Registered>;
  readonly cdevs: Set<number>;
}

const STATES = new WeakMap<EmulatedKernel, VfioState>();

function state(kernel: EmulatedKernel): VfioState {
  let s = STATES.get(kernel);
  if (s === undefined) STATES.set(kernel, (s = { devices: new Map(), cdevs: new Set() }));
  return s;
}

/** The VFIO cdev's character device major (dynamic on a host; fixed here). */
const VFIO_CDEV_MAJOR = 511;

/** vfio_pci_core_register_device: the function becomes openable. Pairs with unregister. */
export function registerVfioPci(
  kernel: EmulatedKernel,
  fn: PciFunction,
  ops: VfioPciOps,
): VfioPciDevice {
  const s = state(kernel);
  if (s.devices.has(fn.address)) fail('EEXIST', `vfio: ${fn.address} is registered already`);
  let cdev = 0;
  while (s.cdevs.has(cdev)) cdev++;
  s.cdevs.add(cdev);
  const dir = fn.node.dir.dirPath(`vfio-dev/vfio${cdev}`);
  dir.attr('dev', 0o444, { show: () => `${VFIO_CDEV_MAJOR}:${cdev}\n` });
  dir.attr('uevent', 0o644, {
    show: () => `MAJOR=${VFIO_CDEV_MAJOR}\nMINOR=${cdev}\nDEVNAME=vfio/devices/vfio${cdev}\n`,
  });
  const dev: Registered = { fn, openCount: 0, ops, cdev };
  s.devices.set(fn.address, dev);
  return dev;
}

/**
 * vfio_pci_core_unregister_device: gone for new opens; a user that still
 * holds it is let go first (the emulator cannot wait for a guest).
 */
export function unregisterVfioPci(kernel: EmulatedKernel, fn: PciFunction): void {
  const s = state(kernel);
  const dev = s.devices.get(fn.address);
  if (dev === undefined) return;
  if (dev.openCount > 0) {
    dev.openCount = 0;
    dev.ops.release?.();
  }
  s.devices.delete(fn.address);
  s.cdevs.delete(dev.cdev);
  fn.node.dir.remove('vfio-dev');
}

export function vfioPciDevice(kernel: EmulatedKernel, address: string): VfioPciDevice | undefined {
  return state(kernel).devices.get(address);
}

/** Every registered function, by address. */
export function vfioPciDevices(kernel: EmulatedKernel): readonly VfioPciDevice[] {
  return [...state(kernel).devices.values()];
}

/** A VM opens the function (VFIO_GROUP_GET_DEVICE_FD / the cdev). */
export function openVfioPci(kernel: EmulatedKernel, address: string): VfioPciDevice {
  const dev = state(kernel).devices.get(address);
  if (dev === undefined) {
    throw new ErrnoError(
      'ENODEV',
      `no VFIO device ${address}`,
      undefined,
      `vfio: ${address} is not a VFIO device`,
    );
  }
  if (dev.openCount === 0) dev.ops.open?.();
  dev.openCount++;
  return dev;
}

/** The VM lets go. Pairs with openVfioPci. */
export function releaseVfioPci(kernel: EmulatedKernel, address: string): VfioPciDevice {
  const dev = state(kernel).devices.get(address);
  if (dev === undefined) fail('ENODEV', `vfio: ${address} is not a VFIO device`);
  if (dev.openCount === 0) fail('EINVAL', `vfio: ${address} is not open`);
  dev.openCount--;
  if (dev.openCount === 0) dev.ops.release?.();
  return dev;
}
