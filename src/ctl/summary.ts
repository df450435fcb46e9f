import type { SysfsPort } from '../port/sysfs-port.js';
import { readCapacity } from '../host/capacity.js';

/**
 * A readable overview of a host read through sysfs: each parent with its
 * types, device API, free instances and how many devices of each type run.
 */
export function renderHostSummary(port: SysfsPort, title: string): string {
  const parents = readCapacity(port);
  const lines: string[] = [];
  const typeCount = parents.reduce((n, p) => n + p.types.length, 0);
  const active = parents.reduce((n, p) => p.types.reduce((m, t) => m + t.activeDevices, n), 0);
  lines.push(`${title}`);
  lines.push(
    `${parents.length} parent${parents.length === 1 ? '' : 's'}, ${typeCount} type${typeCount === 1 ? '' : 's'}, ${active} active device${active === 1 ? '' : 's'}`,
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
      lines.push(
        `  ${t.id.padEnd(idW)}  ${(t.name ?? '').padEnd(nameW)}  ${t.deviceApi.padEnd(apiW)}  ${String(t.availableInstances).padStart(4)}  ${String(t.activeDevices).padStart(4)}`,
      );
    }
  }
  return lines.join('\n') + '\n';
}
