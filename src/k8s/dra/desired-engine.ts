import type { Environment } from '../../host/environment.js';
import { withApplyLock } from '../../host/desired/apply.js';
import { capacityOf, typeTraits } from '../../host/desired/capacity.js';
import { readInventory } from '../../host/desired/inventory.js';
import { OwnershipRecord, checkOwnerName, stateDirOf } from '../../host/desired/ownership.js';
import type { DraEngine, HostView, OwnerEntry } from './engine.js';

/**
 * The DRA driver's engine: src/host/desired over an Environment.
 *
 * - `read()`: the inventory of active devices (definitions play no part in
 *   what a node offers now) and the capacity model of every parent; the
 *   types carry the framebuffer their description states.
 * - `withOwnership()`: the ownership record under the host's apply lock —
 *   the record has one writer at a time (compaction rewrites it), so a
 *   Prepare waits for a running apply of the node's configuration, and an
 *   apply for a Prepare. The record is compacted when its journal has grown.
 */
export function desiredEngine(env: Environment): DraEngine {
  return {
    read(): HostView {
      // NVIDIA's SR-IOV GPUs (kind vf-gpu) are made through their VFs, not
      // mdev `create`: this driver offers mdev parents only, as before the
      // inventory held them.
      const all = readInventory(env, { activeOnly: true });
      const inv = {
        ...all,
        parents: all.parents.filter((p) => p.kind === 'mdev-parent'),
        devices: all.devices.filter((d) => d.kind === 'mdev'),
      };
      return {
        parents: inv.parents.map((p) => ({
          name: p.name,
          driver: p.driver,
          numaNode: p.numaNode,
          types: p.types.map((t) => ({
            id: t.id,
            name: t.name,
            description: t.description,
            deviceApi: t.deviceApi,
            available: t.available,
            framebufferMb: typeTraits(t).framebufferMb,
          })),
        })),
        devices: inv.devices,
        ap: inv.ap,
        capacity: capacityOf(inv),
      };
    },

    owners(): readonly OwnerEntry[] {
      return OwnershipRecord.open(env).entries();
    },

    async withOwnership(owner, fn) {
      checkOwnerName(owner);
      return withApplyLock(stateDirOf(env), owner, { wait: true }, async () => {
        const r = OwnershipRecord.open(env);
        try {
          const out = await fn({
            get: (uuid) => r.get(uuid),
            entries: () => r.entries(),
            set: (entries) => r.set(entries),
            forget: (uuids) => r.forget(uuids),
          });
          r.maybeCompact();
          return out;
        } finally {
          r.close();
        }
      });
    },
  };
}
