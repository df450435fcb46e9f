import type { SysfsPort } from '../port/sysfs-port.js';
import { listActiveDevices, listParents } from '../host/sysfs-model.js';

/**
 * A readable overview of a host read through sysfs: each parent with its
 * types, device API, free instances and how many devices of each type run.
 */
export function renderHostSummary(port: SysfsPort, title: string): string {
  const parents = listParents(port);
  const active = listActiveDevices(port);
  const running = new Map<string, number>();
  for (const d of active) {
    const key = `${d.parent}\0${d.type}`;
    running.set(key, (running.get(key) ?? 0) + 1);
  }
  const lines: string[] = [];
  const typeCount = parents.reduce((n, p) => n + p.types.length, 0);
  lines.push(`${title}`);
  lines.push(
    `${parents.length} parent${parents.length === 1 ? '' : 's'}, ${typeCount} type${typeCount === 1 ? '' : 's'}, ${active.length} active device${active.length === 1 ? '' : 's'}`,
  );
  for (const p of parents) {
    lines.push('');
    lines.push(p.name);
    const idW = Math.max(4, ...p.types.map((t) => t.id.length));
    const nameW = Math.max(4, ...p.types.map((t) => (t.name ?? '').length));
    const apiW = Math.max(3, ...p.types.map((t) => t.deviceApi.length));
    lines.push(
      `  ${'TYPE'.padEnd(idW)}  ${'NAME'.padEnd(nameW)}  ${'API'.padEnd(apiW)}  ${'FREE'.padStart(4)}  ${'USED'.padStart(4)}`,
    );
    for (const t of p.types) {
      const used = running.get(`${p.name}\0${t.id}`) ?? 0;
      lines.push(
        `  ${t.id.padEnd(idW)}  ${(t.name ?? '').padEnd(nameW)}  ${t.deviceApi.padEnd(apiW)}  ${String(t.availableInstances).padStart(4)}  ${String(used).padStart(4)}`,
      );
    }
  }
  return lines.join('\n') + '\n';
}
