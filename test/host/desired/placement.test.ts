/**
 * Placement as a pure function over an inventory (no host): pack and
 * spread, NUMA and named-parent constraints, anti-affinity, determinism,
 * and the capacity models' arithmetic on descriptions as sysfs shows them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { capacityFor, capacityOf } from '../../../src/host/desired/capacity.js';
import { parseConfigText } from '../../../src/host/desired/config.js';
import type {
  Inventory,
  InventoryParent,
  InventoryType,
} from '../../../src/host/desired/inventory.js';
import { computePlan } from '../../../src/host/desired/plan.js';

const gridTypes = (): InventoryType[] =>
  [
    ['nvidia-12', 512],
    ['nvidia-16', 2048],
    ['nvidia-18', 8192],
  ].map(([id, fb]) => ({
    id: id as string,
    name: `GRID ${id}`,
    description: `num_heads=4, frl_config=60, framebuffer=${fb}M, max_resolution=4096x2160, max_instance=${8192 / (fb as number)}`,
    deviceApi: 'vfio-pci',
    available: 8192 / (fb as number),
    aggregation: undefined,
  }));

const gpu = (name: string, numaNode: number): InventoryParent => ({
  kind: 'mdev-parent',
  name,
  driver: 'nvidia',
  vendor: 0x10de,
  device: 0x13f2,
  numaNode,
  types: gridTypes(),
});

/** Eight GPUs over two NUMA nodes, listed in a scrambled order. */
function inventory(order: number[] = [5, 2, 7, 0, 3, 6, 1, 4]): Inventory {
  return {
    parents: order.map((i) => gpu(`0000:${(0x80 + i).toString(16)}:00.0`, i < 4 ? 0 : 1)),
    devices: [],
    ap: undefined,
    invalidDefinitions: [],
  };
}

function planOf(yaml: string, inv: Inventory) {
  const file = parseConfigText(`version: 1\nconfigs:\n  default:\n${yaml}`, 'test.yaml');
  return computePlan(file, file.configs.get('default')!, inv, new Map(), {
    owner: 'config:default',
  });
}

const creates = (p: ReturnType<typeof planOf>): Map<string, number> => {
  const m = new Map<string, number>();
  for (const i of p.items) if (i.action === 'create') m.set(i.parent!, (m.get(i.parent!) ?? 0) + 1);
  return m;
};

test('pack fills the parents in use first; spread balances parents and NUMA nodes', () => {
  const inv = inventory();
  const pack = planOf(
    `    policy: pack\n    entries:\n      - parents: all\n        devices: [{ type: nvidia-16, count: 6 }]\n`,
    inv,
  );
  assert.deepEqual(
    [...creates(pack)],
    [
      ['0000:80:00.0', 4],
      ['0000:81:00.0', 2],
    ],
  );
  const spread = planOf(
    `    policy: spread\n    entries:\n      - parents: all\n        devices: [{ type: nvidia-16, count: 6 }]\n`,
    inv,
  );
  const s = creates(spread);
  assert.equal(s.size, 6, 'one per GPU');
  const perNuma = [0, 0];
  for (const p of inv.parents) perNuma[p.numaNode!]! += s.get(p.name) ?? 0;
  assert.deepEqual(perNuma, [3, 3]);
});

test('NUMA node and named parents narrow the candidates; anti-affinity separates devices', () => {
  const inv = inventory();
  const numa = planOf(
    `    entries:\n      - parents: all\n        devices: [{ type: nvidia-18, count: 3, numaNode: 1 }]\n`,
    inv,
  );
  assert.deepEqual([...creates(numa).keys()], ['0000:84:00.0', '0000:85:00.0', '0000:86:00.0']);
  const named = planOf(
    `    entries:\n      - parents: all\n        devices: [{ type: nvidia-16, count: 9, parents: ["0000:8[67]:00.0"] }]\n`,
    inv,
  );
  assert.deepEqual(
    [...creates(named)],
    [
      ['0000:86:00.0', 4],
      ['0000:87:00.0', 4],
    ],
  );
  assert.match(named.items.find((i) => i.action === 'blocked')!.reason, /8 of 9 fit/);
  const anti = planOf(
    `    entries:
      - parents: all
        devices:
          - { type: nvidia-12, count: 2, antiAffinity: db }
          - { type: nvidia-12, count: 2, antiAffinity: db }
`,
    inv,
  );
  assert.equal(creates(anti).size, 4, 'four devices labelled db on four parents');
});

test('the same request gives the same assignment whatever the inventory order', () => {
  const yaml = `    policy: spread\n    entries:\n      - parents: all\n        devices:\n          - { type: nvidia-16, count: 11 }\n          - { select: { minFramebuffer: 4G }, count: 3 }\n`;
  const a = planOf(yaml, inventory([0, 1, 2, 3, 4, 5, 6, 7]));
  const b = planOf(yaml, inventory([7, 6, 5, 4, 3, 2, 1, 0]));
  assert.deepEqual(a.items, b.items);
});

test('capacity models learn from descriptions and available_instances', () => {
  // GVT-g as sysfs shows a fresh 1024 MB-aperture GPU (kvmgt.c's description format).
  const gvt = (share: number, low: number, high: number, avail: number): InventoryType => ({
    id: `i915-GVTg_V5_${share}`,
    name: `GVTg_V5_${share}`,
    description: `low_gm_size: ${low}MB\nhigh_gm_size: ${high}MB\nfence: 4\nresolution: 1920x1200\nweight: ${16 / share}`,
    deviceApi: 'vfio-pci',
    available: avail,
    aggregation: share > 1 ? Math.min(share, avail) : undefined,
  });
  const igd: InventoryParent = {
    kind: 'mdev-parent',
    name: '0000:00:02.0',
    driver: 'i915',
    vendor: 0x8086,
    device: 0x191d,
    numaNode: undefined,
    types: [gvt(8, 64, 384, 7), gvt(4, 128, 512, 5), gvt(2, 256, 1024, 2), gvt(1, 512, 2048, 1)],
  };
  const st = capacityFor(igd, []);
  assert.equal(st.kind, 'gvt');
  assert.equal(st.headroom('i915-GVTg_V5_8'), 7);
  st.add('i915-GVTg_V5_4', 2);
  assert.equal(st.headroom('i915-GVTg_V5_4'), 3);
  // High graphics memory is what the driver counts by here (2688M free, V5_1 needs 2048M).
  assert.match(
    st.check('i915-GVTg_V5_1')!.reason,
    /the high graphics memory budget is spent: 1664M left on 0000:00:02.0, i915-GVTg_V5_1 needs 2048M/,
  );
  st.remove('i915-GVTg_V5_4', 2);
  assert.equal(st.check('i915-GVTg_V5_1'), undefined);
  st.add('i915-GVTg_V5_1');
  assert.equal(st.headroom('i915-GVTg_V5_8'), 1);
  assert.deepEqual(st.consumption('i915-GVTg_V5_2'), { aperture: 256, 'high-gm': 1024, fences: 4 });

  // A generic parent whose types share a pool (mtty: 24 ports; mtty-2 takes two).
  const mtty = capacityFor(
    {
      kind: 'mdev-parent',
      name: 'mtty',
      driver: 'mtty',
      vendor: undefined,
      device: undefined,
      numaNode: undefined,
      types: [
        {
          id: 'mtty-1',
          name: 'Single port serial',
          description: undefined,
          deviceApi: 'vfio-pci',
          available: 24,
          aggregation: undefined,
        },
        {
          id: 'mtty-2',
          name: 'Dual port serial',
          description: undefined,
          deviceApi: 'vfio-pci',
          available: 12,
          aggregation: undefined,
        },
      ],
    },
    [],
  );
  assert.equal(mtty.kind, 'generic');
  for (let i = 0; i < 10; i++) mtty.add('mtty-2');
  assert.equal(mtty.headroom('mtty-1'), 4);
  assert.equal(mtty.headroom('mtty-2'), 2);
  assert.deepEqual(mtty.counters(), [{ name: 'instances', capacity: 24, used: 20 }]);

  const all = capacityOf(inventory());
  assert.equal(all.get('0000:80:00.0')!.kind, 'nvidia-grid');
  assert.deepEqual(all.get('0000:80:00.0')!.consumption('nvidia-16'), { framebuffer: 2048 });
});
