import type { MdevDevice, MdevTypeEntry } from '../../host/devices.js';

/**
 * mdevctl 1.4.0's output, byte for byte. Text listings are the devices'
 * lines and nothing more (an empty listing prints nothing); JSON is serde's
 * pretty printer (two spaces, key order kept, the same as
 * JSON.stringify(v, null, 2)) without a newline at the end. (1.2.0 ended
 * both with one more newline.)
 */

/** A device's config as serde_json's pretty printer writes it, indented by `pad`. */
function deviceConfigText(d: MdevDevice, pad: string): string {
  const q = JSON.stringify;
  let attrs = '[]';
  if (d.attrs.length > 0) {
    const items = d.attrs.map(
      (a) => `${pad}    {\n${pad}      ${q(a.name)}: ${q(a.value)}\n${pad}    }`,
    );
    attrs = `[\n${items.join(',\n')}\n${pad}  ]`;
  }
  return (
    `{\n${pad}  "mdev_type": ${q(d.type)},\n${pad}  "start": ${q(d.start)},\n` +
    `${pad}  "attrs": ${attrs}\n${pad}}`
  );
}

/**
 * `[{parent: [{uuid: config}, ...], ...}]`, written directly rather than
 * built as objects for JSON.stringify: the same bytes, a fraction of the
 * garbage at 10k devices, and parent names keep their sorted order even
 * when they look like numbers (object keys would not).
 */
function hierarchyText(devices: Map<string, MdevDevice[]>): string {
  if (devices.size === 0) return '[]';
  const parents: string[] = [];
  for (const [parent, list] of devices) {
    const children = list.map(
      (d) =>
        `      {\n        ${JSON.stringify(d.uuid)}: ${deviceConfigText(d, '        ')}\n      }`,
    );
    const body = children.length === 0 ? '[]' : `[\n${children.join(',\n')}\n    ]`;
    parents.push(`    ${JSON.stringify(parent)}: ${body}`);
  }
  return `[\n  {\n${parents.join(',\n')}\n  }\n]`;
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
