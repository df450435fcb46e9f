/**
 * What a host has, read through the sysfs port and mdevctl's config store
 * only: parents with their identity (driver, PCI ids, NUMA node) and types,
 * and every device — active, defined, or both — with what it carries.
 *
 * The inventory is plain data, sorted by name, so everything computed from
 * it (capacity, placement, plans) is the same whatever order sysfs lists
 * directories in. Items carry a `kind`: mdev parents and their devices,
 * and NVIDIA's SR-IOV GPUs (`vf-gpu`, whose VFs each take one vGPU through
 * `nvidia/current_vgpu_type`) with their defined vGPUs (`vf-vgpu`, by the
 * definition's UUID), read through src/host/vf-vgpu.ts. A vGPU a VF holds
 * that no definition names is no device here — it has no identity to
 * claim, adopt or remove — but its framebuffer and VF count in the GPU's
 * facts, which the capacity model starts from.
 */
import { ErrnoError } from '../../common/errno.js';
import type { SysfsPort } from '../../port/sysfs-port.js';
import {
  indexTypeDevices,
  listDefinedDevices,
  type MdevAttribute,
  type StartMode,
} from '../devices.js';
import type { Environment } from '../environment.js';
import { MDEV_BUS_DEVICES, MDEV_CLASS } from '../paths.js';
import { readApHost } from '../ap/model.js';
import { listParentNames, readParent } from '../sysfs-model.js';
import {
  readVgpuInventory,
  shortTypeName,
  typeKey,
  typeSizeGb,
  type VfGpuCapacity,
  type VfGpuMode,
} from '../vf-vgpu.js';

export interface InventoryType {
  /** Directory name, e.g. "nvidia-12". */
  readonly id: string;
  readonly name: string | undefined;
  readonly description: string | undefined;
  readonly deviceApi: string;
  /** available_instances as read. */
  readonly available: number;
  /** The type's `aggregation` attribute (how far one new device could aggregate now), when it has one. */
  readonly aggregation: number | undefined;
}

/**
 * What the VF vGPU capacity model needs of one NVIDIA SR-IOV GPU, as sysfs
 * shows it now (src/host/vf-vgpu/capacity.ts).
 */
export interface VfGpuFacts {
  readonly framebufferGb: number | undefined;
  readonly mode: VfGpuMode;
  /** sriov_numvfs: 0 until sriov-manage -e. */
  readonly enabledVfs: number;
  readonly freeVfs: number;
  /** The vGPUs the VFs hold (defined or not): type id and placement (when read). */
  readonly held: readonly { readonly typeId: number; readonly placement: number | undefined }[];
  /** Framebuffer (GB) of each type id the GPU names. */
  readonly sizes: ReadonlyMap<number, number>;
  /** Short names ("L40S-12Q") by type id, for words. */
  readonly names: ReadonlyMap<number, string>;
  /** Type ids a free VF lists as creatable now (undefined: no free VF to ask). */
  readonly creatableNow: readonly number[] | undefined;
}

export interface InventoryParent {
  readonly kind: 'mdev-parent' | 'vf-gpu';
  /** sysfs name: a PCI address, a subchannel id, "matrix", "mtty". */
  readonly name: string;
  /** Driver bound to the parent device, else the types' common prefix. */
  readonly driver: string | undefined;
  readonly vendor: number | undefined;
  readonly device: number | undefined;
  /** numa_node; undefined where the file is absent or says -1. */
  readonly numaNode: number | undefined;
  /** Sorted by id. */
  readonly types: readonly InventoryType[];
  /** A `vf-gpu`'s facts. */
  readonly vf?: VfGpuFacts;
}

export interface InventoryDevice {
  readonly kind: 'mdev' | 'vf-vgpu';
  readonly uuid: string;
  readonly parent: string;
  readonly type: string;
  readonly active: boolean;
  readonly defined: boolean;
  /** From the definition; undefined for a device that is only active. */
  readonly start: StartMode | undefined;
  readonly attrs: readonly MdevAttribute[] | undefined;
  /** Instances' worth it holds: mdev/aggregation/value when active, else the definition's, else 1. */
  readonly aggregation: number;
}

/** The AP facts the vfio-ap model needs (a subset of src/host/ap's ApHost). */
export interface ApView {
  readonly maxAdapterId: number;
  readonly maxDomainId: number;
  readonly apmask: readonly boolean[];
  readonly aqmask: readonly boolean[];
  readonly adapters: readonly { readonly id: number }[];
  readonly domains: readonly number[];
  readonly devices: readonly {
    readonly uuid: string;
    readonly adapters: readonly number[];
    readonly domains: readonly number[];
    readonly controlDomains: readonly number[];
  }[];
}

export interface Inventory {
  /** Sorted by name. */
  readonly parents: readonly InventoryParent[];
  /** Sorted by UUID, then parent. */
  readonly devices: readonly InventoryDevice[];
  /** The AP bus, when the host has one and a reader was given. */
  readonly ap: ApView | undefined;
  /** Definitions that could not be parsed (left alone, reported). */
  readonly invalidDefinitions: readonly { readonly path: string; readonly message: string }[];
}

export interface InventoryOptions {
  /** Reads the AP bus; src/host/ap's readApHost unless given. */
  readonly readAp?: (port: SysfsPort) => ApView;
  /** Active devices only, no definitions read (capacity needs no more: metrics). */
  readonly activeOnly?: boolean;
}

const chomp = (s: string): string => s.trim();
const basename = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

function readOptional(port: SysfsPort, path: string): string | undefined {
  try {
    return chomp(port.read(path));
  } catch (err) {
    if (err instanceof ErrnoError) return undefined;
    throw err;
  }
}

function readInt(port: SysfsPort, path: string): number | undefined {
  const t = readOptional(port, path);
  if (t === undefined) return undefined;
  const n = /^-?\d+$/.test(t) ? Number(t) : /^0x[0-9a-f]+$/i.test(t) ? parseInt(t, 16) : NaN;
  return Number.isSafeInteger(n) ? n : undefined;
}

/** One parent's identity and types. */
export function readInventoryParent(port: SysfsPort, name: string): InventoryParent {
  const info = readParent(port, name);
  const dir = `${MDEV_CLASS}/${name}`;
  let driver: string | undefined;
  try {
    driver = basename(port.readlink(`${dir}/driver`));
  } catch {
    const prefixes = new Set(info.types.map((t) => t.id.slice(0, t.id.indexOf('-'))));
    driver = prefixes.size === 1 ? [...prefixes][0] : undefined;
  }
  const numa = readInt(port, `${dir}/numa_node`);
  const types = info.types.map((t): InventoryType => ({
    id: t.id,
    name: t.name,
    description: t.description,
    deviceApi: t.deviceApi,
    available: t.availableInstances,
    aggregation: readInt(port, `${dir}/mdev_supported_types/${t.id}/aggregation`),
  }));
  return {
    kind: 'mdev-parent',
    name,
    driver,
    vendor: readInt(port, `${dir}/vendor`),
    device: readInt(port, `${dir}/device`),
    numaNode: numa === undefined || numa < 0 ? undefined : numa,
    types,
  };
}

const AGG_VALUE = 'mdev/aggregation/value';

function aggregationOf(
  port: SysfsPort,
  uuid: string,
  attrs: readonly MdevAttribute[] | undefined,
  active: boolean,
  aggregating: boolean,
): number {
  if (active && aggregating) {
    const v = readInt(port, `${MDEV_BUS_DEVICES}/${uuid}/${AGG_VALUE}`);
    if (v !== undefined && v > 0) return v;
  }
  const def = attrs?.filter((a) => a.name === AGG_VALUE).at(-1)?.value;
  const n = def === undefined ? NaN : Number(def);
  return Number.isSafeInteger(n) && n > 0 ? n : 1;
}

/** Read the whole inventory. */
export function readInventory(env: Environment, options: InventoryOptions = {}): Inventory {
  const port = env.port;
  const parents = listParentNames(port).map((p) => readInventoryParent(port, p));
  const aggregatingTypes = new Set<string>();
  for (const p of parents)
    for (const t of p.types)
      if (t.aggregation !== undefined) aggregatingTypes.add(`${p.name}/${t.id}`);

  const invalid: { path: string; message: string }[] = [];
  const defined =
    options.activeOnly === true
      ? new Map()
      : listDefinedDevices(
          env,
          {},
          {
            invalidDefinition: (path, error) =>
              invalid.push({
                path,
                message: error.cause instanceof Error ? error.cause.message : error.message,
              }),
          },
        );
  // Active devices from the types' devices/ listings: one readdir per type.
  const active = indexTypeDevices(port);
  const devices: InventoryDevice[] = [];
  const seen = new Set<string>();
  for (const list of defined.values()) {
    for (const d of list) {
      // A definition whose device runs with another type (or elsewhere) is
      // not that device: the active one is listed on its own below.
      if (d.active) seen.add(`${d.parent}/${d.uuid}`);
      devices.push({
        kind: 'mdev',
        uuid: d.uuid,
        parent: d.parent,
        type: d.type,
        active: d.active,
        defined: true,
        start: d.start,
        attrs: d.attrs,
        aggregation: aggregationOf(
          port,
          d.uuid,
          d.attrs,
          d.active,
          aggregatingTypes.has(`${d.parent}/${d.type}`),
        ),
      });
    }
  }
  for (const [uuid, where] of active) {
    if (seen.has(`${where.parent}/${uuid}`)) continue;
    devices.push({
      kind: 'mdev',
      uuid,
      parent: where.parent,
      type: where.type,
      active: true,
      defined: false,
      start: undefined,
      attrs: undefined,
      aggregation: aggregationOf(
        port,
        uuid,
        undefined,
        true,
        aggregatingTypes.has(`${where.parent}/${where.type}`),
      ),
    });
  }
  devices.sort((a, b) =>
    a.uuid < b.uuid
      ? -1
      : a.uuid > b.uuid
        ? 1
        : a.parent < b.parent
          ? -1
          : a.parent > b.parent
            ? 1
            : 0,
  );
  let ap: ApView | undefined;
  if (port.kind('/sys/bus/ap') !== null) ap = (options.readAp ?? readApHost)(port);
  const vf = readVfInventory(env);
  invalid.push(...vf.invalidDefinitions);
  return {
    parents: [...parents, ...vf.parents].sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    ),
    devices: [...devices, ...vf.devices].sort((a, b) =>
      a.uuid < b.uuid
        ? -1
        : a.uuid > b.uuid
          ? 1
          : a.parent < b.parent
            ? -1
            : a.parent > b.parent
              ? 1
              : 0,
    ),
    ap,
    invalidDefinitions: invalid,
  };
}

/** The attribute a VF vGPU's definition keeps as `vgpu_params`. */
export const VGPU_PARAMS_ATTR = 'nvidia/vgpu_params';

/**
 * NVIDIA's SR-IOV GPUs as parents and their defined vGPUs as devices. A
 * type is `nvidia-<id>` named by its short name ("L40S-12Q", what a
 * configuration may say), its description `framebuffer=<MB>M` (what the
 * type traits read), `available` how many more fit now.
 */
export function readVfInventory(env: Environment): {
  parents: InventoryParent[];
  devices: InventoryDevice[];
  invalidDefinitions: { path: string; message: string }[];
} {
  const inv = readVgpuInventory(env);
  const parents = inv.gpus.map((g): InventoryParent => {
    const cap = inv.capacity.find((c) => c.gpu === g.address)!;
    const sizes = new Map<number, number>();
    const names = new Map<number, string>();
    for (const [id, name] of g.typeNames) {
      const gb = typeSizeGb(g, id);
      if (gb !== undefined) sizes.set(id, gb);
      names.set(id, shortTypeName(name));
    }
    return {
      kind: 'vf-gpu',
      name: g.address,
      driver: 'nvidia',
      vendor: g.vendor,
      device: g.device,
      numaNode: g.numaNode,
      types: vfTypes(cap),
      vf: {
        framebufferGb: cap.framebufferGb,
        mode: cap.mode,
        enabledVfs: g.numVfs,
        freeVfs: cap.vfs.free,
        held: g.vfs
          .filter((v) => v.typeId !== 0)
          .map((v) => ({ typeId: v.typeId, placement: v.placement })),
        sizes,
        names,
        creatableNow: g.creatableNow,
      },
    };
  });
  const devices = inv.entries
    .filter((e) => e.uuid !== undefined)
    .map((e): InventoryDevice => ({
      kind: 'vf-vgpu',
      uuid: e.uuid!,
      parent: e.gpu,
      type: typeKey(e.typeId),
      active: e.state === 'active',
      defined: true,
      start: e.start,
      attrs:
        e.params === undefined || e.params === ''
          ? []
          : [{ name: VGPU_PARAMS_ATTR, value: e.params }],
      aggregation: 1,
    }));
  return { parents, devices, invalidDefinitions: [...inv.invalidDefinitions] };
}

function vfTypes(cap: VfGpuCapacity): InventoryType[] {
  return cap.types.map((t) => ({
    id: t.key,
    name: t.shortName ?? undefined,
    description:
      t.framebufferGb === undefined ? undefined : `framebuffer=${t.framebufferGb * 1024}M`,
    deviceApi: 'vfio-pci',
    available: t.headroom,
    aggregation: undefined,
  }));
}
