import { formatIdList } from '../../host/ap/ids.js';
import { type ApHost, apqnKey, apqnName, hostOwns, queueOwners } from '../../host/ap/model.js';

/**
 * `mdevkit ap show`: the host/guest split and every matrix device, drawn as
 * an adapters × domains grid that says who holds each queue. Rows are the
 * configured adapters plus any a device names; columns likewise for domains,
 * so the grid stays as small as the machine's real configuration.
 */

/** Domains per block of the grid, so a row fits an 80-column terminal. */
const COLUMNS_PER_BLOCK = 20;

export interface ApShowJson {
  maxAdapterId: number;
  maxDomainId: number;
  apmask: string;
  aqmask: string;
  adapters: { id: number; type: string | null; configured: boolean }[];
  domains: { id: number; configured: boolean }[];
  controlDomains: number[];
  queues: {
    apqn: string;
    adapter: number;
    domain: number;
    present: boolean;
    /** "host", "free" (for guests, in no device) or the matrix device's uuid. */
    holder: string;
    driver: string | null;
    status: string | null;
  }[];
  matrixDevices: {
    uuid: string;
    letter: string;
    adapters: number[];
    domains: number[];
    controlDomains: number[];
    guestQueues: string[];
  }[];
}

/** A, B, ... Z, then AA, AB ...: short names for the grid. */
export function deviceLetter(index: number): string {
  let s = '';
  let n = index;
  do {
    s = String.fromCharCode(65 + (n % 26)) + s;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return s;
}

function axes(host: ApHost): { adapters: number[]; domains: number[] } {
  const adapters = new Set(host.adapters.map((a) => a.id));
  const domains = new Set(host.domains);
  for (const d of host.devices) {
    for (const a of d.adapters) adapters.add(a);
    for (const q of d.domains) domains.add(q);
  }
  const sorted = (s: Set<number>): number[] => [...s].sort((a, b) => a - b);
  return { adapters: sorted(adapters), domains: sorted(domains) };
}

export function apShowJson(host: ApHost): ApShowJson {
  const { adapters, domains } = axes(host);
  const owners = queueOwners(host);
  const configured = new Set(host.adapters.map((a) => a.id));
  const configuredDomains = new Set(host.domains);
  const typeOf = new Map(host.adapters.map((a) => [a.id, a.type]));
  const queues: ApShowJson['queues'] = [];
  for (const a of adapters) {
    for (const d of domains) {
      const q = host.queues.get(apqnKey(a, d));
      const owner = owners.get(apqnKey(a, d));
      if (q === undefined && owner === undefined) continue;
      queues.push({
        apqn: apqnName(a, d),
        adapter: a,
        domain: d,
        present: q !== undefined,
        holder: owner ?? (hostOwns(host, a, d) ? 'host' : 'free'),
        driver: q === undefined || q.driver === '' ? null : q.driver,
        status: q?.status ?? null,
      });
    }
  }
  return {
    maxAdapterId: host.maxAdapterId,
    maxDomainId: host.maxDomainId,
    apmask: maskString(host.apmask),
    aqmask: maskString(host.aqmask),
    adapters: adapters.map((id) => ({
      id,
      type: typeOf.get(id) ?? null,
      configured: configured.has(id),
    })),
    domains: domains.map((id) => ({ id, configured: configuredDomains.has(id) })),
    controlDomains: [...host.controlDomains],
    queues,
    matrixDevices: host.devices.map((d, i) => ({
      uuid: d.uuid,
      letter: deviceLetter(i),
      adapters: [...d.adapters],
      domains: [...d.domains],
      controlDomains: [...d.controlDomains],
      guestQueues: [...d.guestQueues],
    })),
  };
}

function maskString(mask: readonly boolean[]): string {
  let out = '0x';
  for (let n = 0; n < 64; n++) {
    let v = 0;
    for (let b = 0; b < 4; b++) if (mask[n * 4 + b] === true) v |= 0x8 >> b;
    out += v.toString(16);
  }
  return out;
}

export function renderApShow(host: ApHost): string {
  const { adapters, domains } = axes(host);
  const owners = queueOwners(host);
  const letters = new Map(host.devices.map((d, i) => [d.uuid, deviceLetter(i)]));
  const configured = new Set(host.adapters.map((a) => a.id));
  const typeOf = new Map(host.adapters.map((a) => [a.id, a.type ?? '?']));
  const lines: string[] = [];

  let hostQueues = 0;
  let guestQueues = 0;
  for (const q of host.queues.values()) {
    if (hostOwns(host, q.apid, q.apqi)) hostQueues++;
    else guestQueues++;
  }
  lines.push(
    `AP configuration: ${host.adapters.length} adapter${host.adapters.length === 1 ? '' : 's'}, ` +
      `${host.domains.length} domain${host.domains.length === 1 ? '' : 's'} ` +
      `(highest ids: adapter ${host.maxAdapterId}, domain ${host.maxDomainId})`,
  );
  lines.push(
    `queues: ${hostQueues} for the host, ${guestQueues} for guests; ` +
      `${host.devices.length} matrix device${host.devices.length === 1 ? '' : 's'}` +
      (host.vfioApLoaded ? '' : ' (vfio_ap is not loaded)'),
  );
  lines.push(
    `host adapters (apmask): ${formatIdList(idsWhere(host.apmask, host.maxAdapterId), 2)}`,
  );
  lines.push(`host domains  (aqmask): ${formatIdList(idsWhere(host.aqmask, host.maxDomainId), 4)}`);

  if (adapters.length > 0 && domains.length > 0) {
    lines.push('');
    lines.push('Queues (rows: adapters, columns: domains):');
    lines.push(
      "  H  the host's (apmask and aqmask)   .  free for guests   A, B ...  held by a matrix device",
    );
    lines.push('  lower case: assigned, but not in the AP configuration   (blank: no such queue)');
    const labelWidth = Math.max(...adapters.map((a) => rowLabel(a, typeOf, configured).length));
    const cellWidth = Math.max(3, ...[...letters.values()].map((l) => l.length + 1));
    for (let start = 0; start < domains.length; start += COLUMNS_PER_BLOCK) {
      const block = domains.slice(start, start + COLUMNS_PER_BLOCK);
      lines.push('');
      lines.push(
        `${' '.repeat(labelWidth)}  ${block.map((d) => d.toString(16).padStart(2, '0').padStart(cellWidth)).join('')}`,
      );
      for (const a of adapters) {
        const cells = block.map((d) => {
          const key = apqnKey(a, d);
          const owner = owners.get(key);
          const present = host.queues.has(key);
          let cell: string;
          if (owner !== undefined) {
            const l = letters.get(owner) ?? '?';
            cell = present ? l : l.toLowerCase();
          } else if (!present) {
            cell = '';
          } else {
            cell = hostOwns(host, a, d) ? 'H' : '.';
          }
          return cell.padStart(cellWidth);
        });
        lines.push(
          `${rowLabel(a, typeOf, configured).padEnd(labelWidth)}  ${cells.join('')}`.trimEnd(),
        );
      }
    }
  }

  lines.push('');
  if (host.devices.length === 0) {
    lines.push('No matrix devices.');
  } else {
    lines.push('Matrix devices:');
    for (const d of host.devices) {
      const inUse = d.guestQueues.some((q) => {
        const [a, dom] = q.split('.').map((x) => parseInt(x, 16));
        return host.queues.get(apqnKey(a!, dom!))?.status === 'in use';
      });
      lines.push(`  ${letters.get(d.uuid)}  ${d.uuid}${inUse ? '  (in use by a guest)' : ''}`);
      lines.push(
        `     adapters ${formatIdList(d.adapters, 2)}; domains ${formatIdList(d.domains, 4)}; control domains ${formatIdList(d.controlDomains, 4)}`,
      );
      const queues = d.adapters.length * d.domains.length;
      lines.push(
        `     ${queues} queue${queues === 1 ? '' : 's'}, ${d.guestQueues.length} visible to the guest`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

function rowLabel(a: number, typeOf: Map<number, string>, configured: Set<number>): string {
  const id = a.toString(16).padStart(2, '0');
  return configured.has(a) ? `${id} ${typeOf.get(a) ?? '?'}` : `${id} (absent)`;
}

function idsWhere(mask: readonly boolean[], max: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i <= max; i++) if (mask[i] === true) ids.push(i);
  return ids;
}
