import type { ContainerAllocateResponse, DeviceSpec } from './api.js';
import { isIommuGroup, type PluginDevice } from './devices.js';
import { MDEV_ENV_PREFIX, PCI_ENV_PREFIX, resourceEnvName } from './resource-name.js';

/**
 * What the plugin decides for kubelet: which devices it would rather give
 * a container (GetPreferredAllocation) and what a container needs to use
 * the devices it got (Allocate). Pure functions over device records.
 */

/**
 * The devices to give a container: `size` of `available`, including every
 * one of `mustInclude`, kept together where the host allows:
 *
 * 1. on one parent (a GPU's vGPUs share its memory bus and scheduler):
 *    the parent of the must-include devices when they share one, else the
 *    parent with the fewest free devices that still holds the request
 *    (best fit, so whole parents stay free for large requests);
 * 2. else on one NUMA node, filling its parents fullest first;
 * 3. else across parents, largest free groups first.
 *
 * Ties go by parent name, then device ID, so the answer is the same for
 * the same state. IDs not in `devices` are ignored (kubelet only offers
 * what the plugin advertised); fewer than `size` may come back when the
 * request cannot be met, and kubelet then chooses the rest itself.
 */
export function preferredAllocation(
  devices: ReadonlyMap<string, PluginDevice>,
  available: readonly string[],
  mustInclude: readonly string[],
  size: number,
): string[] {
  const must = [...new Set(mustInclude.filter((id) => devices.has(id)))];
  const chosen = new Set(must);
  const free = [...new Set(available)]
    .filter((id) => devices.has(id) && !chosen.has(id))
    .map((id) => devices.get(id)!)
    .sort(byParentThenId);
  const wanted = size - chosen.size;
  if (wanted <= 0) return must.slice(0, Math.max(size, must.length));

  const byParent = groupBy(free, (d) => d.parent);
  const mustParents = new Set(must.map((id) => devices.get(id)!.parent));
  const take = (list: readonly PluginDevice[], n: number): void => {
    for (const d of list.slice(0, n)) chosen.add(d.id);
  };

  // 1. one parent
  if (mustParents.size <= 1) {
    const only = [...mustParents][0];
    const candidates =
      only !== undefined
        ? [[only, byParent.get(only) ?? []] as const]
        : [...byParent].sort((a, b) => a[1].length - b[1].length || cmp(a[0], b[0]));
    const fit = candidates.find(([, list]) => list.length >= wanted);
    if (fit !== undefined) {
      take(fit[1], wanted);
      return [...chosen];
    }
  }

  // 2. one NUMA node
  const mustNuma = new Set(must.map((id) => devices.get(id)!.numaNode));
  const byNuma = groupBy(free, (d) => d.numaNode);
  if (mustNuma.size <= 1) {
    const only = mustNuma.size === 1 ? [...mustNuma][0] : undefined;
    const candidates = [...byNuma]
      .filter(([node]) => node !== undefined && (mustNuma.size === 0 || node === only))
      .sort((a, b) => a[1].length - b[1].length || (a[0] ?? 0) - (b[0] ?? 0));
    const fit = candidates.find(([, list]) => list.length >= wanted);
    if (fit !== undefined) {
      takeFullestParentsFirst(fit[1], wanted, mustParents, take);
      return [...chosen];
    }
  }

  // 3. across parents
  takeFullestParentsFirst(free, wanted, mustParents, take);
  return [...chosen];
}

/** Fill from the parents the must-include devices are on, then from the largest groups. */
function takeFullestParentsFirst(
  list: readonly PluginDevice[],
  wanted: number,
  preferParents: ReadonlySet<string>,
  take: (list: readonly PluginDevice[], n: number) => void,
): void {
  const groups = [...groupBy(list, (d) => d.parent)].sort(
    (a, b) =>
      Number(preferParents.has(b[0])) - Number(preferParents.has(a[0])) ||
      b[1].length - a[1].length ||
      cmp(a[0], b[0]),
  );
  let left = wanted;
  for (const [, group] of groups) {
    if (left <= 0) break;
    const n = Math.min(left, group.length);
    take(group, n);
    left -= n;
  }
}

function groupBy<K>(list: readonly PluginDevice[], key: (d: PluginDevice) => K) {
  const out = new Map<K, PluginDevice[]>();
  for (const d of list) {
    const k = key(d);
    let g = out.get(k);
    if (g === undefined) out.set(k, (g = []));
    g.push(d);
  }
  return out;
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const byParentThenId = (a: PluginDevice, b: PluginDevice): number =>
  cmp(a.parent, b.parent) || cmp(a.id, b.id);

/** The container's VFIO nodes: the container node once, then each device's group. */
export const VFIO_CONTAINER = '/dev/vfio/vfio';
export const VFIO_PERMISSIONS = 'mrw';

/**
 * What one container gets for `granted` devices of resource `resourceName`:
 *
 * - device specs for /dev/vfio/vfio and /dev/vfio/<group> of each device
 *   (read, write, mknod), the nodes QEMU opens;
 * - MDEV_PCI_RESOURCE_<NAME> = the mdevs' UUIDs, comma-joined, and
 *   PCI_RESOURCE_<NAME> = the VFs' PCI addresses, which is where
 *   KubeVirt's virt-launcher looks for the devices of a resource whose
 *   provider is external (`externalResourceProvider: true`).
 *
 * Every group must be digits: nothing from a request becomes a path; the
 * group comes from sysfs and is checked again here.
 */
export function containerResponse(
  resourceName: string,
  granted: readonly PluginDevice[],
): ContainerAllocateResponse {
  const devices: DeviceSpec[] = [
    { container_path: VFIO_CONTAINER, host_path: VFIO_CONTAINER, permissions: VFIO_PERMISSIONS },
  ];
  const groups = new Set<string>();
  for (const d of granted) {
    if (d.iommuGroup === undefined || !isIommuGroup(d.iommuGroup)) {
      throw new Error(`device ${d.id} has no usable IOMMU group`);
    }
    if (groups.has(d.iommuGroup)) continue;
    groups.add(d.iommuGroup);
    const node = `/dev/vfio/${d.iommuGroup}`;
    devices.push({ container_path: node, host_path: node, permissions: VFIO_PERMISSIONS });
  }
  const envs: Record<string, string> = {};
  const mdevs = granted.filter((d) => d.kind === 'mdev').map((d) => d.id);
  const vfs = granted.filter((d) => d.kind === 'vf').map((d) => d.id);
  if (mdevs.length > 0) envs[resourceEnvName(MDEV_ENV_PREFIX, resourceName)] = mdevs.join(',');
  if (vfs.length > 0) envs[resourceEnvName(PCI_ENV_PREFIX, resourceName)] = vfs.join(',');
  return { envs, mounts: [], devices, annotations: {}, cdi_devices: [] };
}
