import { hostCapacity } from '../host/desired/engine.js';
import type { Environment } from '../host/environment.js';

/**
 * Prometheus lines for the desired-state engine's view of capacity: each
 * parent's counters (framebuffer, aperture, queues, instances: capacity and
 * used, as the vendor capacity models learn them from sysfs) and its
 * fragmentation — the share of its free capacity that no single type can
 * use now (src/host/desired/engine.ts). Read at scrape time, active
 * devices only.
 */
export function desiredMetricsLines(env: Environment): string[] {
  const { parents } = hostCapacity(env, { activeOnly: true });
  const esc = (v: string): string =>
    v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
  const out: string[] = [];
  const family = (name: string, help: string): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
  };
  family(
    'mdevkit_parent_fragmentation',
    "Share (0..1) of a parent's free capacity that no single type can use now.",
  );
  for (const p of parents) {
    out.push(
      `mdevkit_parent_fragmentation{parent="${esc(p.parent)}",model="${p.model}"} ${p.fragmentation}`,
    );
  }
  family(
    'mdevkit_parent_capacity',
    "A parent's capacity by counter, as its vendor model reads it.",
  );
  for (const p of parents) {
    for (const c of p.counters) {
      out.push(
        `mdevkit_parent_capacity{parent="${esc(p.parent)}",counter="${esc(c.name)}"} ${c.capacity}`,
      );
    }
  }
  family('mdevkit_parent_used', 'How much of each counter the running devices take.');
  for (const p of parents) {
    for (const c of p.counters) {
      out.push(`mdevkit_parent_used{parent="${esc(p.parent)}",counter="${esc(c.name)}"} ${c.used}`);
    }
  }
  return out;
}
