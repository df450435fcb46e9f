import { isUuid } from '../common/uuid.js';
import type { Environment } from '../host/environment.js';
import {
  PCI_DEVICES,
  VfVgpuError,
  canonicalPciAddress,
  definitionOfVf,
  findDefinition,
  readVfGpu,
  shortTypeName,
  typeKey,
  vfOf,
  type VfVgpuDefinition,
} from '../host/vf-vgpu.js';
import { parsePciAddress, type PciAddress } from './nodedev.js';
import { el, formatXml, type XmlElement } from './xml.js';

/**
 * How a VM gets an NVIDIA VF vGPU: as a plain PCI device. The VF stays
 * bound to `nvidia` (its VFIO variant driver), so libvirt must not touch
 * its binding — `<hostdev mode='subsystem' type='pci' managed='no'>`;
 * with managed='yes' libvirt would rebind it to vfio-pci, which the VF
 * refuses. QEMU gets `-device vfio-pci,host=<VF>` (or
 * `sysfsdev=/sys/bus/pci/devices/<VF>`) and `-uuid`: NVIDIA's guest driver
 * takes the VM's UUID as its identity (Proxmox passes one for NVIDIA vGPUs);
 * with libvirt it is the domain's `<uuid>`, by hand mdevkit gives the
 * vGPU's own, so the guest sees the same one every boot.
 */

export interface VfHostdev {
  /** The VF's PCI address. */
  readonly address: string;
  readonly pci: PciAddress;
  /** The vGPU's definition UUID; undefined for a vGPU mdevkit did not define. */
  readonly uuid: string | undefined;
  readonly gpu: string;
  readonly vf: number;
  /** The type the VF holds now (0: none). */
  readonly currentTypeId: number;
  readonly definition: VfVgpuDefinition | undefined;
}

/**
 * A VF vGPU by its definition's UUID or by the VF's PCI address; undefined
 * when `target` is a UUID with no VF definition (an mdev, perhaps).
 */
export function findVfHostdev(env: Environment, target: string): VfHostdev | undefined {
  let address = canonicalPciAddress(target);
  let definition: VfVgpuDefinition | undefined;
  if (address === undefined) {
    if (!isUuid(target)) return undefined;
    definition = findDefinition(env, target);
    if (definition === undefined) return undefined;
    const gpu = readVfGpu(env.port, definition.gpu, {});
    const slot = gpu?.vfs.find((v) => v.index === definition!.vf);
    if (slot === undefined) {
      throw new VfVgpuError(
        'vf-not-enabled',
        `VFs are not enabled on ${definition.gpu}: run sriov-manage -e (vGPU ${definition.uuid} is on its VF ${definition.vf})`,
        { context: { gpu: definition.gpu, uuid: definition.uuid } },
      );
    }
    address = slot.address;
  }
  const where = vfOf(env.port, address);
  if (
    where === undefined ||
    env.port.kind(`${PCI_DEVICES}/${address}/nvidia/current_vgpu_type`) !== 'file'
  ) {
    throw new VfVgpuError('no-such-vf', `${address} is not a VF of an NVIDIA vGPU GPU`, {
      context: { vf: address },
    });
  }
  definition ??= definitionOfVf(env, address);
  const current = Number(
    env.port.read(`${PCI_DEVICES}/${address}/nvidia/current_vgpu_type`).trim(),
  );
  return {
    address,
    pci: parsePciAddress(address)!,
    uuid: definition?.uuid,
    gpu: where.gpu,
    vf: where.index,
    currentTypeId: Number.isSafeInteger(current) ? current : 0,
    definition,
  };
}

const hex = (n: number, width: number): string => `0x${n.toString(16).padStart(width, '0')}`;

/** `<hostdev mode='subsystem' type='pci' managed='no'>` with the VF's address. */
export function vfHostdevXml(h: Pick<VfHostdev, 'pci'>): XmlElement {
  const a = h.pci;
  return el('hostdev', { mode: 'subsystem', type: 'pci', managed: 'no' }, [
    el('source', {}, [
      el('address', {
        domain: hex(a.domain, 4),
        bus: hex(a.bus, 2),
        slot: hex(a.slot, 2),
        function: `0x${a.function}`,
      }),
    ]),
  ]);
}

export function formatVfHostdevXml(h: Pick<VfHostdev, 'pci'>, indent = ''): string {
  return formatXml(vfHostdevXml(h), indent);
}

/** QEMU's vfio-pci properties for the VF: host= (libvirt's form) or sysfsdev=. */
export function vfQemuDeviceProps(
  h: Pick<VfHostdev, 'address'>,
  id = 'hostdev0',
  form: 'host' | 'sysfsdev' = 'host',
): [string, string][] {
  return [
    ['driver', 'vfio-pci'],
    form === 'host' ? ['host', h.address] : ['sysfsdev', `${PCI_DEVICES}/${h.address}`],
    ['id', id],
  ];
}

/** A VF vGPU's label for messages: "vGPU U (L40S-12Q) on VF A". */
export function describeVfHostdev(env: Environment, h: VfHostdev): string {
  const gpu = readVfGpu(env.port, h.gpu, {});
  const id = h.definition?.typeId ?? h.currentTypeId;
  const name = h.definition?.typeName ?? gpu?.typeNames.get(id);
  const type = name === undefined ? typeKey(id) : shortTypeName(name);
  return `${h.uuid === undefined ? 'the vGPU' : `vGPU ${h.uuid}`} (${type}) on VF ${h.address}`;
}
