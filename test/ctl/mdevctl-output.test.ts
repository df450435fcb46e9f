/**
 * mdevctl's JSON is serde_json's pretty printer, which writes the same
 * bytes as JSON.stringify(v, null, 2). The listing writes its JSON
 * directly (faster at 10k devices), so it is checked here against
 * JSON.stringify on random devices with awkward strings.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listJson } from '../../src/ctl/mdevctl/output.js';
import type { MdevDevice } from '../../src/host/devices.js';

const AWKWARD = [
  '"',
  '\\',
  '\n',
  '\t',
  '\u0001',
  '\u007f',
  'é',
  '😀',
  '\u2028',
  '/',
  ' ',
  'x',
  '{}',
  '[]',
];

function randomString(rand: () => number): string {
  let s = '';
  const n = Math.floor(rand() * 6);
  for (let i = 0; i < n; i++) s += AWKWARD[Math.floor(rand() * AWKWARD.length)]!;
  return s;
}

test('listJson is byte-identical to JSON.stringify(v, null, 2)', () => {
  let seed = 42;
  const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let round = 0; round < 200; round++) {
    const devices = new Map<string, MdevDevice[]>();
    const parents = Math.floor(rand() * 4);
    for (let p = 0; p < parents; p++) {
      const parent = `p${p}:${randomString(rand)}`;
      const list: MdevDevice[] = [];
      const n = Math.floor(rand() * 4);
      for (let i = 0; i < n; i++) {
        const attrs = Array.from({ length: Math.floor(rand() * 3) }, () => ({
          name: randomString(rand),
          value: randomString(rand),
        }));
        list.push({
          uuid: `00000000-0000-4000-8000-${String(round * 100 + p * 10 + i).padStart(12, '0')}`,
          parent,
          type: randomString(rand),
          start: rand() < 0.5 ? 'auto' : 'manual',
          attrs,
          active: false,
          defined: true,
        });
      }
      devices.set(parent, list);
    }
    const config = (d: MdevDevice): unknown => ({
      mdev_type: d.type,
      start: d.start,
      attrs: d.attrs.map((a) => ({ [a.name]: a.value })),
    });
    const tree: Record<string, unknown> = {};
    for (const [parent, list] of devices) tree[parent] = list.map((d) => ({ [d.uuid]: config(d) }));
    const expected = devices.size === 0 ? '[]' : JSON.stringify([tree], null, 2);
    assert.equal(listJson(devices, false), expected);
    const all = [...devices.values()].flat();
    if (all.length === 1)
      assert.equal(listJson(devices, true), JSON.stringify(config(all[0]!), null, 2));
  }
});
