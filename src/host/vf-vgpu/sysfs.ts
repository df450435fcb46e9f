import { ErrnoError } from '../../common/errno.js';
import type { SysfsPort } from '../../port/sysfs-port.js';
import { knownBoard } from './catalogue.js';

/**
 * NVIDIA's SR-IOV vGPU slots as sysfs shows them, read through the port
 * only. A GPU (the physical function, PF) is a PCI device bound to `nvidia`
 * with `sriov_totalvfs` and no mdev types; each of its virtual functions
 * (VFs) bound to `nvidia` has `nvidia/current_vgpu_type` — one slot for one
 * vGPU. The VFs' addresses are the PF's routing id plus `sriov_offset` and
 * `sriov_stride` steps, as the kernel computes them for `virtfn<i>`.
 *
 * What one discovery reads: the `nvidia` driver's directory once; per GPU
 * its SR-IOV numbers and ids; per VF one file (`current_vgpu_type`); per
 * GPU one `creatable_vgpu_types` of a free VF. With `details`, a VF holding
 * a vGPU also has its `placement_id` and `vgpu_params` read.
 */

export const PCI_DEVICES = '/sys/bus/pci/devices';
export const NVIDIA_PCI_DRIVER = '/sys/bus/pci/drivers/nvidia';

export interface VfSlot {
  /** The GPU (PF) address. */
  readonly gpu: string;
  /** Its index among the GPU's VFs (virtfn<index>). */
  readonly index: number;
  readonly address: string;
  /** current_vgpu_type: the vGPU's type id, 0 for none. */
  readonly typeId: number;
  /** placement_id (with details, for a VF with a vGPU). */
  readonly placement: number | undefined;
  /** vgpu_params (with details, for a VF with a vGPU). */
  readonly params: string | undefined;
}

export interface VfGpu {
  readonly address: string;
  readonly vendor: number | undefined;
  readonly device: number | undefined;
  readonly numaNode: number | undefined;
  readonly totalVfs: number;
  /** sriov_numvfs: 0 until sriov-manage -e. */
  readonly numVfs: number;
  /** VFs bound to nvidia (with nvidia/), by index. */
  readonly vfs: readonly VfSlot[];
  /**
   * Type ids a free VF lists in creatable_vgpu_types now, ascending;
   * undefined when no VF is free to ask.
   */
  readonly creatableNow: readonly number[] | undefined;
  /** Names of type ids: from that listing, else the catalogue of known boards. */
  readonly typeNames: ReadonlyMap<number, string>;
}

export interface DiscoverOptions {
  /** Read placement_id and vgpu_params of every VF holding a vGPU. */
  readonly details?: boolean;
  /** Only this GPU (PF address). */
  readonly gpu?: string;
}

const PCI_ADDRESS = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$/;

export function isPciAddress(text: string): boolean {
  return PCI_ADDRESS.test(text);
}

/** "41:00.4" and upper-case spellings to "0000:41:00.4"; undefined when not an address. */
export function canonicalPciAddress(text: string): string | undefined {
  const lower = text.trim().toLowerCase();
  const full = /^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(lower) ? `0000:${lower}` : lower;
  return isPciAddress(full) ? full : undefined;
}

function readOptional(port: SysfsPort, path: string): string | undefined {
  try {
    return port.read(path);
  } catch (err) {
    if (err instanceof ErrnoError) return undefined;
    throw err;
  }
}

function readNumber(port: SysfsPort, path: string): number | undefined {
  const t = readOptional(port, path)?.trim();
  if (t === undefined) return undefined;
  if (/^-?\d+$/.test(t)) return Number(t);
  if (/^0x[0-9a-f]+$/i.test(t)) return parseInt(t, 16);
  return undefined;
}

/** The addresses of a PF's VFs: routing id + offset + i * stride (pci_iov_virtfn_bus/devfn). */
export function vfAddresses(pf: string, offset: number, stride: number, n: number): string[] {
  const m = PCI_ADDRESS.exec(pf);
  if (m === null) return [];
  const rid = (parseInt(m[2]!, 16) << 8) | (parseInt(m[3]!, 16) << 3) | parseInt(m[4]!, 16);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const v = rid + offset + i * stride;
    out.push(
      `${m[1]}:${((v >> 8) & 0xff).toString(16).padStart(2, '0')}:` +
        `${((v >> 3) & 0x1f).toString(16).padStart(2, '0')}.${v & 7}`,
    );
  }
  return out;
}

/** `creatable_vgpu_types`: the header, then "%-5d : %s" lines. */
export function parseCreatable(text: string): { id: number; name: string }[] {
  const out: { id: number; name: string }[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s*:\s*(.*\S)\s*$/.exec(line);
    if (m !== null) out.push({ id: Number(m[1]), name: m[2]! });
  }
  return out;
}

/** The directory holding a device's directory (its parent device), or undefined. */
function siblingsDir(port: SysfsPort, dir: string): string | undefined {
  try {
    const real = port.realpath(dir);
    return real.slice(0, real.lastIndexOf('/'));
  } catch (err) {
    if (err instanceof ErrnoError) return undefined;
    throw err;
  }
}

/** GPUs bound to nvidia that may have VF vGPUs, by address (a cheap first look). */
function candidateGpus(port: SysfsPort): string[] {
  let names: string[];
  try {
    names = port.list(NVIDIA_PCI_DRIVER);
  } catch (err) {
    if (err instanceof ErrnoError) return [];
    throw err;
  }
  return names.filter(isPciAddress).sort();
}

/** One GPU, or undefined when `address` is not an NVIDIA SR-IOV vGPU GPU. */
export function readVfGpu(
  port: SysfsPort,
  address: string,
  options: DiscoverOptions = {},
): VfGpu | undefined {
  const dir = `${PCI_DEVICES}/${address}`;
  // Most devices bound to nvidia are not SR-IOV (mdev GPUs, consumer cards):
  // a stat turns them away without the cost of a failed read.
  if (port.kind(`${dir}/sriov_totalvfs`) === null) return undefined;
  const totalVfs = readNumber(port, `${dir}/sriov_totalvfs`);
  // A single VF is passthrough, not vGPU; a GPU with mdev types uses the mdev bus.
  if (totalVfs === undefined || totalVfs < 2) return undefined;
  if (port.kind(`${dir}/mdev_supported_types`) !== null) return undefined;
  const numVfs = readNumber(port, `${dir}/sriov_numvfs`) ?? 0;
  const device = readNumber(port, `${dir}/device`);
  const numa = readNumber(port, `${dir}/numa_node`);
  const vfs: VfSlot[] = [];
  let freeVf: string | undefined;
  if (numVfs > 0) {
    const offset = readNumber(port, `${dir}/sriov_offset`) ?? 0;
    const stride = readNumber(port, `${dir}/sriov_stride`) ?? 1;
    // A VF's device directory sits beside its PF's (pci_iov_add_virtfn gives
    // it the PF's parent): reading there spares a symlink per file.
    const home = siblingsDir(port, dir);
    vfAddresses(address, offset, stride, numVfs).forEach((vf, index) => {
      const current =
        (home === undefined
          ? undefined
          : readNumber(port, `${home}/${vf}/nvidia/current_vgpu_type`)) ??
        readNumber(port, `${PCI_DEVICES}/${vf}/nvidia/current_vgpu_type`);
      if (current === undefined) return; // not bound to nvidia (yet)
      let placement: number | undefined;
      let params: string | undefined;
      if (current !== 0 && options.details === true) {
        placement = readNumber(port, `${PCI_DEVICES}/${vf}/nvidia/placement_id`);
        params = readOptional(port, `${PCI_DEVICES}/${vf}/nvidia/vgpu_params`)?.trim();
      }
      if (current === 0) freeVf ??= vf;
      vfs.push({ gpu: address, index, address: vf, typeId: current, placement, params });
    });
  }
  const typeNames = new Map<number, string>(knownBoard(device)?.types ?? []);
  let creatableNow: number[] | undefined;
  if (freeVf !== undefined) {
    const text = readOptional(port, `${PCI_DEVICES}/${freeVf}/nvidia/creatable_vgpu_types`);
    if (text !== undefined) {
      const listed = parseCreatable(text);
      for (const t of listed) typeNames.set(t.id, t.name);
      creatableNow = listed.map((t) => t.id).sort((a, b) => a - b);
    }
  }
  return {
    address,
    vendor: readNumber(port, `${dir}/vendor`),
    device,
    numaNode: numa === undefined || numa < 0 ? undefined : numa,
    totalVfs,
    numVfs,
    vfs,
    creatableNow,
    typeNames,
  };
}

/**
 * The GPU with `placement_id` read for each VF holding a vGPU: what
 * capacity needs when sizes mix (aligned placements fragment). With one
 * size, placements tile exactly and counting is enough, so a listing reads
 * them only when the GPU shows more than one size.
 */
export function withPlacements(port: SysfsPort, gpu: VfGpu): VfGpu {
  return {
    ...gpu,
    vfs: gpu.vfs.map((v) =>
      v.typeId === 0 || v.placement !== undefined
        ? v
        : {
            ...v,
            placement: readNumber(port, `${PCI_DEVICES}/${v.address}/nvidia/placement_id`),
          },
    ),
  };
}

/** Every NVIDIA GPU with SR-IOV vGPUs on the host, by address. */
export function listVfGpus(port: SysfsPort, options: DiscoverOptions = {}): VfGpu[] {
  if (options.gpu !== undefined) {
    const one = readVfGpu(port, options.gpu, options);
    return one === undefined ? [] : [one];
  }
  const out: VfGpu[] = [];
  const vfsSeen = new Set<string>();
  for (const address of candidateGpus(port)) {
    // VFs sort after their PF (higher routing ids): skip them without a read.
    if (vfsSeen.has(address)) continue;
    const gpu = readVfGpu(port, address, options);
    if (gpu === undefined) continue;
    for (const vf of gpu.vfs) vfsSeen.add(vf.address);
    out.push(gpu);
  }
  return out;
}

/**
 * Which GPU and VF index an address is: a VF's own address (its `physfn`
 * link), or undefined.
 */
export function vfOf(port: SysfsPort, address: string): { gpu: string; index: number } | undefined {
  const dir = `${PCI_DEVICES}/${address}`;
  let gpu: string;
  try {
    const target = port.readlink(`${dir}/physfn`);
    gpu = target.slice(target.lastIndexOf('/') + 1);
  } catch (err) {
    if (err instanceof ErrnoError) return undefined;
    throw err;
  }
  const total = readNumber(port, `${PCI_DEVICES}/${gpu}/sriov_numvfs`) ?? 0;
  const offset = readNumber(port, `${PCI_DEVICES}/${gpu}/sriov_offset`) ?? 0;
  const stride = readNumber(port, `${PCI_DEVICES}/${gpu}/sriov_stride`) ?? 1;
  const index = vfAddresses(gpu, offset, stride, total).indexOf(address);
  return index < 0 ? undefined : { gpu, index };
}
