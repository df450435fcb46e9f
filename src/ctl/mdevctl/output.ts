import type { MdevDevice, MdevTypeEntry } from '../../host/devices.js';

/**
 * mdevctl 1.4.0's output, byte for byte. Text listings are the devices'
 * lines and nothing more (an empty listing prints nothing); JSON is serde's
 * pretty printer (two spaces, key order kept, the same as
 * JSON.stringify(v, null, 2)) without a newline at the end. (1.2.0 ended
 * both with one more newline.)
 */

/** What JSON.stringify would escape in a string (lone surrogates too: any surrogate, to be safe). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/**
 * A string as JSON, as JSON.stringify writes it: quoted as it is when
 * nothing in it needs escaping (UUIDs, types, start modes: nearly every
 * string of a listing), which at 10k devices costs a fraction of calling
 * JSON.stringify for each.
 */
const q = (s: string): string => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`);

/** A device's config as serde_json's pretty printer writes it, indented by `pad`. */
function deviceConfigText(d: MdevDevice, pad: string): string {
  let out = `{\n${pad}  "mdev_type": ${q(d.type)},\n${pad}  "start": ${q(d.start)},\n${pad}  "attrs": `;
  if (d.attrs.length === 0) return `${out}[]\n${pad}}`;
  out += '[';
  for (let i = 0; i < d.attrs.length; i++) {
    const a = d.attrs[i]!;
    out += `${i > 0 ? ',' : ''}\n${pad}    {\n${pad}      ${q(a.name)}: ${q(a.value)}\n${pad}    }`;
  }
  return `${out}\n${pad}  ]\n${pad}}`;
}

/**
 * `[{parent: [{uuid: config}, ...], ...}]`, written directly rather than
 * built as objects for JSON.stringify: the same bytes, and parent names
 * keep their sorted order even when they look like numbers (object keys
 * would not). One string grown piece by piece (a rope, flattened once when
 * it is written) rather than arrays of pieces joined: at 10k devices that
 * is a third of the time.
 */
function hierarchyText(devices: Map<string, MdevDevice[]>): string {
  if (devices.size === 0) return '[]';
  let out = '[\n  {';
  let first = true;
  for (const [parent, list] of devices) {
    out += `${first ? '' : ','}\n    ${q(parent)}: `;
    first = false;
    if (list.length === 0) {
      out += '[]';
      continue;
    }
    out += '[';
    for (let i = 0; i < list.length; i++) {
      const d = list[i]!;
      out += `${i > 0 ? ',' : ''}\n      {\n        ${q(d.uuid)}: ${deviceConfigText(d, '        ')}\n      }`;
    }
    out += '\n    ]';
  }
  return `${out}\n  }\n]`;
}

/** `list --dumpjson`: the hierarchy, or a single device's config when selected by UUID. */
export function listJson(devices: Map<string, MdevDevice[]>, byUuid: boolean): string {
  let count = 0;
  for (const list of devices.values()) count += list.length;
  if (!byUuid || count > 1) return hierarchyText(devices);
  const first = [...devices.values()].flat()[0];
  return first === undefined ? '[]' : deviceConfigText(first, '');
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
