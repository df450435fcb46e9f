import type { Environment } from '../../host/environment.js';
import {
  loadConfigFile,
  parseConfigText,
  selectConfig,
  type ConfigFile,
} from '../../host/desired/config.js';
import { applyHost, ownershipEntries, planHost } from '../../host/desired/engine.js';
import { configOwner } from '../../host/desired/ownership.js';
import type { Plan } from '../../host/desired/plan.js';
import type { ConfigApplier } from './controller.js';

/**
 * The node configuration loop's applier: mdevkit's desired-state engine
 * (src/host/desired) on the configuration a node label names.
 *
 * The node's configuration owns what it makes, and only that: devices
 * KubeVirt, libvirt or people made are `foreign` to every configuration
 * and never removed. A node label moving from configuration A to B first
 * releases A's devices — an apply of A with no entries and `prune`, so
 * the engine removes A's devices and nothing else, leaving those in use —
 * then applies B with `prune` (B's devices the file no longer asks for
 * go). Devices kubelet gave to pods (its checkpoint) or that a VM holds
 * open (`inUse`) stay; the apply then fails and says which.
 *
 * The desired-state file is read at each apply (a ConfigMap update shows
 * up without a restart).
 */
export interface DesiredApplierOptions {
  /** Who holds a device, asked afresh at each apply (kubelet's checkpoint, a lab's VMs...). */
  readonly inUse?: () => (uuid: string) => string | undefined;
}

const CHANGES = new Set(['create', 'remove', 'modify', 'start', 'adopt', 'forget']);

export function desiredApplier(
  env: Environment,
  file: string,
  options: DesiredApplierOptions = {},
): ConfigApplier {
  const inUseNow = (): { inUse?: (uuid: string) => string | undefined } => {
    const probe = options.inUse?.();
    return probe === undefined ? {} : { inUse: probe };
  };

  /** The file's other configurations that own devices here (earlier labels). */
  const previous = (f: ConfigFile, config: string): string[] => {
    const owners = new Set(ownershipEntries(env).map((e) => e.owner));
    return [...f.configs.keys()].filter((n) => n !== config && owners.has(configOwner(n)));
  };

  /** The same file's configuration `name` with nothing in it: applying it with prune releases its devices. */
  const emptied = (f: ConfigFile, name: string): ConfigFile =>
    parseConfigText(JSON.stringify({ version: 1, configs: { [name]: { entries: [] } } }), f.file);

  return {
    affectedTypes(config) {
      const f = loadConfigFile(file);
      selectConfig(f, config); // a name the file lacks fails here, with the engine's message
      const plans: Plan[] = [];
      const probe = inUseNow();
      for (const old of previous(f, config)) {
        plans.push(planHost(env, emptied(f, old), { config: old, prune: true, ...probe }).plan);
      }
      const { plan, inventory } = planHost(env, f, { config, prune: true, ...probe });
      plans.push(plan);
      const names = new Map<string, string | undefined>();
      for (const p of inventory.parents) for (const t of p.types) names.set(t.id, t.name);
      const types = new Set<string>();
      for (const p of plans) {
        for (const i of p.items)
          if (CHANGES.has(i.action) && i.type !== undefined) types.add(i.type);
      }
      return [...types].sort().map((type) => {
        const name = names.get(type);
        return name === undefined ? { type } : { type, name };
      });
    },

    async apply(config) {
      const f = loadConfigFile(file);
      const problems: string[] = [];
      let released = 0;
      for (const old of previous(f, config)) {
        const { plan, summary } = await applyHost(env, emptied(f, old), {
          config: old,
          prune: true,
          wait: true,
          ...inUseNow(),
        });
        if (summary === undefined) continue;
        released += summary.removed;
        problems.push(...problemsOf(plan, summary.results, `releasing ${old}`));
      }
      const { plan, summary } = await applyHost(env, f, {
        config,
        prune: true,
        wait: true,
        ...inUseNow(),
      });
      if (summary === undefined) throw new Error('the apply did not run');
      problems.push(...problemsOf(plan, summary.results, config));
      const words =
        `${summary.created} created, ${summary.removed + released} removed, ${summary.modified} modified, ` +
        `${summary.started} started, ${summary.kept} kept` +
        (summary.foreign > 0 ? `, ${summary.foreign} foreign left alone` : '');
      if (problems.length > 0) {
        const more = problems.length > 3 ? ` (and ${problems.length - 3} more)` : '';
        throw new Error(`${words}; ${problems.slice(0, 3).join('; ')}${more}`);
      }
      return words;
    },
  };
}

/** What kept a plan from being carried out, in words. */
function problemsOf(
  plan: Plan,
  results: readonly {
    ok: boolean;
    error?: string;
    item: { parent?: string; type?: string; uuid?: string };
  }[],
  what: string,
): string[] {
  const out: string[] = [];
  for (const i of plan.items) {
    if (i.action === 'blocked') out.push(`${what}: ${i.reason}`);
  }
  for (const r of results) {
    if (!r.ok) {
      const dev = r.item.uuid ?? `${r.item.type ?? 'device'} on ${r.item.parent ?? '?'}`;
      out.push(`${what}: ${dev}: ${r.error ?? 'failed'}`);
    }
  }
  return out;
}
