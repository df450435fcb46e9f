import type { MdevDevice, MdevTypeEntry } from '../../host/devices.js';
import { configToJson } from '../../host/config-store.js';

/**
 * mdevctl 1.2.0's output, byte for byte. Text listings are printed with a
 * trailing println, so they end in an extra blank line; JSON is serde's
 * pretty printer (two spaces, key order kept), the same as
 * JSON.stringify(v, null, 2).
 */

function deviceJson(d: MdevDevice): ReturnType<typeof configToJson> {
  return configToJson({ mdevType: d.type, start: d.start, attrs: d.attrs });
}

function hierarchy(devices: Map<string, MdevDevice[]>): unknown {
  if (devices.size === 0) return [];
  const parents: Record<string, unknown> = {};
  for (const [parent, list] of devices)
    parents[parent] = list.map((d) => ({ [d.uuid]: deviceJson(d) }));
  return [parents];
}

/** `list --dumpjson`: the hierarchy, or a single device's config when selected by UUID. */
export function listJson(devices: Map<string, MdevDevice[]>, byUuid: boolean): string {
  let count = 0;
  for (const list of devices.values()) count += list.length;
  if (!byUuid || count > 1) return JSON.stringify(hierarchy(devices), null, 2);
  const first = [...devices.values()][0]?.[0];
  return JSON.stringify(first === undefined ? [] : deviceJson(first), null, 2);
}

/** One device's lines of `list` (active) or `list -d` (defined). */
export function deviceText(d: MdevDevice, defined: boolean, verbose: boolean): string {
  let line = `${d.uuid} ${d.parent} ${d.type} ${d.start}`;
  if (defined ? d.active : d.defined) line += defined ? ' (active)' : ' (defined)';
  line += '\n';
  if (verbose && d.attrs.length > 0) {
    line += '  Attrs:\n';
    d.attrs.forEach((a, i) => {
      line += `    @{${i}}: {"${a.name}":"${a.value}"}\n`;
    });
  }
  return line;
}

export function listText(
  devices: Map<string, MdevDevice[]>,
  defined: boolean,
  verbose: boolean,
): string {
  let out = '';
  for (const list of devices.values()) {
    for (const d of list) {
      // mdevctl drops a defined device whose file is not named by its canonical UUID.
      if (defined && !d.defined) continue;
      out += deviceText(d, defined, verbose);
    }
  }
  return out;
}

export function typesJson(types: Map<string, MdevTypeEntry[]>): string {
  if (types.size === 0) return '[]';
  const parents: Record<string, unknown> = {};
  for (const [parent, list] of types) {
    parents[parent] = list.map((t) => {
      const o: Record<string, unknown> = {
        available_instances: t.availableInstances,
        device_api: t.deviceApi,
      };
      if (t.name !== '') o['name'] = t.name;
      if (t.description !== '') o['description'] = t.description;
      return { [t.id]: o };
    });
  }
  return JSON.stringify([parents], null, 2);
}

export function typesText(types: Map<string, MdevTypeEntry[]>): string {
  let out = '';
  for (const [parent, list] of types) {
    out += `${parent}\n`;
    for (const t of list) {
      out += `  ${t.id}\n    Available instances: ${t.availableInstances}\n    Device API: ${t.deviceApi}\n`;
      if (t.name !== '') out += `    Name: ${t.name}\n`;
      if (t.description !== '') out += `    Description: ${t.description}\n`;
    }
  }
  return out;
}
