/**
 * Node device names as libvirt's node device driver makes them
 * (nodeDeviceGenerateName): "<subsystem>_<sysfs name>[_<suffix>]" with every
 * character that is not an ASCII letter or digit turned into "_". So the
 * PCI device 0000:00:02.0 is "pci_0000_00_02_0", the subchannel 0.0.0023
 * "css_0_0_0023", and the mdev 4b20d080-... on 0000:00:02.0 is
 * "mdev_4b20d080_..._0000_00_02_0".
 */
export function nodeDeviceName(subsystem: string, sysname: string, suffix?: string): string {
  const raw =
    suffix === undefined ? `${subsystem}_${sysname}` : `${subsystem}_${sysname}_${suffix}`;
  return raw.replace(/[^A-Za-z0-9]/g, '_');
}

/** The name libvirt gives a mediated device: uuid and parent address, both flattened. */
export function mdevNodeDeviceName(uuid: string, parentAddress: string): string {
  return nodeDeviceName('mdev', uuid.toLowerCase(), parentAddress);
}

/** libvirt names the vfio_ap matrix device this, whatever its sysfs name. */
export const AP_MATRIX_NODEDEV = 'ap_matrix';

/** The root of libvirt's node device tree: the parent of anything it has no node device for. */
export const COMPUTER_NODEDEV = 'computer';
