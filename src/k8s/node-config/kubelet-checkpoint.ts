import * as fs from 'node:fs';
import * as nodePath from 'node:path';

/**
 * Which devices kubelet has given to pods, from its device manager
 * checkpoint (`kubelet_internal_checkpoint` in the device plugin
 * directory, which the plugin's pod mounts anyway). kubelet rewrites it
 * after every allocation and when pods go, so it names the devices of the
 * pods the node runs: the node configuration must not remove those, and
 * it can tell without looking into other processes (which would need the
 * host's /proc and ptrace rights in the pod).
 *
 * The file is kubelet's JSON: {"Data": {"PodDeviceEntries": [{"PodUID",
 * "ContainerName", "ResourceName", "DeviceIDs": {"<numa>": [ids]},
 * "AllocResp"}], "RegisteredDevices": {...}}, "Checksum": n}. Anything
 * unreadable counts as "no allocations known", never as an error: the
 * kernel still refuses to remove an open device.
 */
export const KUBELET_CHECKPOINT = 'kubelet_internal_checkpoint';

interface Entry {
  PodUID?: unknown;
  ContainerName?: unknown;
  ResourceName?: unknown;
  DeviceIDs?: unknown;
}

/** device ID -> "pod <uid> (container <name>, <resource>)". */
export function readKubeletAllocations(pluginDir: string): Map<string, string> {
  const out = new Map<string, string>();
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(nodePath.join(pluginDir, KUBELET_CHECKPOINT), 'utf8'));
  } catch {
    return out;
  }
  const entries = (doc as { Data?: { PodDeviceEntries?: unknown } } | null)?.Data?.PodDeviceEntries;
  if (!Array.isArray(entries)) return out;
  for (const e of entries as Entry[]) {
    const ids = e?.DeviceIDs;
    if (ids === null || typeof ids !== 'object') continue;
    const who = `pod ${String(e.PodUID)} (container ${String(e.ContainerName)}, ${String(e.ResourceName)})`;
    for (const list of Object.values(ids)) {
      if (!Array.isArray(list)) continue;
      for (const id of list) if (typeof id === 'string') out.set(id, who);
    }
  }
  return out;
}

/** An in-use probe over the checkpoint, read afresh at each call of `probe()`. */
export function kubeletInUse(pluginDir: string): () => (uuid: string) => string | undefined {
  return () => {
    const allocations = readKubeletAllocations(pluginDir);
    return (uuid) => allocations.get(uuid) ?? allocations.get(uuid.toLowerCase());
  };
}
