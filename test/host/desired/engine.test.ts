/**
 * The desired-state engine on the in-process lab, driven as the CLI and
 * the agent drive it, checked through sysfs (the lab's devices) and the
 * definitions on disk. Modelled on the failure modes of the tools people
 * use today: KubeVirt deleting others' mdevs (#9037), a type that never
 * comes back (#8425), vendor rules, partial fills, order dependence.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startDevice, defineDevice, listDefinedDevices } from '../../../src/host/devices.js';
import { DesiredError } from '../../../src/host/desired/errors.js';
import { desiredStatus, drainParent, hostCapacity } from '../../../src/host/desired/engine.js';
import { OwnershipRecord, stateDirOf } from '../../../src/host/desired/ownership.js';
import { acquireApplyLock } from '../../../src/host/desired/lock.js';
import type { SysfsPort } from '../../../src/port/sysfs-port.js';
import { Lab } from '../../../src/sim/lab.js';
import { U1, U2, U3 } from '../../support/labs.js';
import { activeByType, apply, configFile, count, definitions, labHost, plan } from './support.js';

const GPU0 = '0000:85:00.0';
const GPU1 = '0000:86:00.0';
const IGD = '0000:00:02.0';

const yaml = (entries: string, name = 'default', policy = 'pack'): string =>
  `version: 1\nconfigs:\n  ${name}:\n    policy: ${policy}\n    entries:\n${entries}`;

test('apply makes the host match, keeps UUIDs, and a second apply changes nothing', async () => {
  const { lab, env } = labHost();
  const file = configFile(
    yaml(`      - parents: "${GPU0}"
        devices: [{ type: nvidia-12, count: 3, attrs: { nvidia/vgpu_params: "frame_rate_limiter=0" } }]
      - parents: { driver: i915 }
        devices: [{ type: i915-GVTg_V5_4, count: 2, aggregation: 2 }]
      - parents: mtty
        devices: [{ type: mtty-2, count: 2, start: manual }]
`),
  );
  const first = plan(env, file, lab);
  assert.equal(count(first, 'create'), 7);
  const { summary } = await apply(env, file, lab);
  assert.equal(summary!.created, 7);
  assert.equal(summary!.failed, 0);
  assert.equal(activeByType(lab).get(`${GPU0} nvidia-12`), 3);
  assert.equal(activeByType(lab).get(`${IGD} i915-GVTg_V5_4`), 2);
  // Aggregation and vendor attributes reached the devices.
  for (const d of lab.core.devices.values()) {
    if (d.type.id === 'i915-GVTg_V5_4') assert.equal(d.aggregation, 2);
    if (d.type.id === 'nvidia-12') {
      assert.equal(
        lab.port.read(`/sys/bus/mdev/devices/${d.uuid}/nvidia/vgpu_params`),
        'frame_rate_limiter=0\n',
      );
    }
  }
  // Persistent: mdevctl definitions, start as asked, attributes in order.
  const defs = listDefinedDevices(env);
  const all = [...defs.values()].flat();
  assert.equal(all.length, 7);
  assert.ok(all.every((d) => d.active));
  assert.equal(all.filter((d) => d.start === 'manual').length, 2);
  const gvt = all.find((d) => d.type === 'i915-GVTg_V5_4')!;
  assert.deepEqual(gvt.attrs, [{ name: 'mdev/aggregation/value', value: '2' }]);

  const uuidsBefore = [...lab.core.devices.keys()].sort();
  const defsBefore = definitions(env);
  const second = await apply(env, file, lab);
  assert.equal(second.plan.counts.keep, 7);
  assert.equal(second.summary!.created + second.summary!.removed + second.summary!.modified, 0);
  assert.deepEqual([...lab.core.devices.keys()].sort(), uuidsBefore);
  assert.deepEqual(definitions(env), defsBefore);
  // Every device is recorded as the configuration's.
  const rec = OwnershipRecord.open(env);
  assert.deepEqual(
    rec.entries().map((e) => [e.uuid, e.owner, e.state]),
    uuidsBefore.map((u) => [u, 'config:default', 'owned']),
  );
});

test('a foreign device survives prune, whoever made it (kubevirt#9037)', async () => {
  const { lab, env } = labHost();
  // mdevctl (libvirt) made one, defined; another config made one through mdevkit.
  defineDevice(env, { uuid: U1, parent: 'mtty', type: 'mtty-2' });
  startDevice(env, { uuid: U1 });
  startDevice(env, { uuid: U2, parent: 'mtty', type: 'mtty-1' });
  const other = configFile(
    yaml(`      - parents: mtty\n        devices: [{ type: mtty-1, count: 1 }]\n`, 'other'),
  );
  await apply(env, other, lab, { config: 'other' });
  const otherUuid = OwnershipRecord.open(env).entries()[0]!.uuid;

  const mine = configFile(
    yaml(`      - parents: mtty\n        devices: [{ type: mtty-2, count: 2 }]\n`),
  );
  await apply(env, mine, lab);
  // Now the configuration wants nothing on mtty: prune removes only its own.
  const empty = configFile(
    yaml(`      - parents: mdpy\n        devices: [{ type: mdpy-vga, count: 1 }]\n`),
  );
  const p = plan(env, empty, lab, { prune: true });
  assert.equal(count(p, 'remove'), 2);
  const { summary } = await apply(env, empty, lab, { prune: true });
  assert.equal(summary!.removed, 2);
  for (const u of [U1, U2, otherUuid]) assert.ok(lab.core.device(u) !== undefined, `${u} survived`);
  assert.ok(fs.existsSync(path.join(env.configDir, 'mtty', U1)), 'its definition too');
  // Planning the mtty entry again reports them as foreign, never as removable.
  const back = plan(env, mine, lab, { prune: true });
  const foreign = back.items
    .filter((i) => i.action === 'foreign')
    .map((i) => i.uuid)
    .sort();
  assert.deepEqual(foreign, [U1, U2, otherUuid].sort());
  assert.ok(back.items.find((i) => i.uuid === otherUuid)!.reason.includes('config:other'));
});

test('a type removed from the configuration and added back is created again (kubevirt#8425)', async () => {
  const { lab, env } = labHost();
  const both = configFile(
    yaml(`      - parents: mtty
        devices: [{ type: mtty-2, count: 2 }]
      - parents: mdpy
        devices: [{ type: mdpy-xga, count: 1 }]
`),
  );
  const without = configFile(
    yaml(`      - parents: mtty\n        devices: [{ type: mtty-2, count: 2 }]\n`),
  );
  await apply(env, both, lab);
  assert.equal(activeByType(lab).get('mdpy mdpy-xga'), 1);
  const dropped = await apply(env, without, lab, { prune: true });
  assert.equal(dropped.summary!.removed, 1);
  assert.equal(activeByType(lab).get('mdpy mdpy-xga'), undefined);
  assert.ok(
    !fs.existsSync(path.join(env.configDir, 'mdpy')) ||
      fs.readdirSync(path.join(env.configDir, 'mdpy')).length === 0,
  );
  const again = await apply(env, both, lab);
  assert.equal(again.summary!.created, 1);
  assert.equal(again.plan.counts.keep, 2);
  assert.equal(activeByType(lab).get('mdpy mdpy-xga'), 1);
});

test('without prune, devices no longer wanted are stale and stay', async () => {
  const { lab, env } = labHost();
  await apply(
    env,
    configFile(yaml(`      - parents: mdpy\n        devices: [{ type: mdpy-hd, count: 2 }]\n`)),
    lab,
  );
  const p = await apply(
    env,
    configFile(yaml(`      - parents: mdpy\n        devices: [{ type: mdpy-hd, count: 1 }]\n`)),
    lab,
  );
  assert.equal(p.plan.counts.stale, 1);
  assert.equal(p.plan.counts.keep, 1);
  assert.equal(activeByType(lab).get('mdpy mdpy-hd'), 2);
});

test('GVT-g mixes types on one GPU; an M60 GPU refuses a second type', async () => {
  const { lab, env } = labHost();
  const gvt = configFile(
    yaml(`      - parents: "${IGD}"
        devices:
          - { type: i915-GVTg_V5_4, count: 2 }
          - { type: i915-GVTg_V5_8, count: 2 }
`),
  );
  const g = await apply(env, gvt, lab);
  assert.equal(g.summary!.created, 4);
  assert.equal(g.plan.counts.blocked, 0);
  const m60 = configFile(
    yaml(`      - parents: "${GPU0}"
        devices:
          - { type: nvidia-12, count: 2 }
          - { type: nvidia-18, count: 1 }
`),
  );
  const m = await apply(env, m60, lab);
  assert.equal(m.summary!.created, 2);
  const blocked = m.plan.items.find((i) => i.action === 'blocked')!;
  assert.equal(blocked.type, 'nvidia-18');
  assert.match(
    blocked.reason,
    new RegExp(`${GPU0} runs nvidia-12; nvidia-18 needs a GPU with no devices`),
  );
  assert.equal(activeByType(lab).get(`${GPU0} nvidia-18`), undefined);
});

test('partial fills say how many fit and why', async () => {
  const { lab, env } = labHost();
  const file = configFile(
    yaml(`      - parents: "${IGD}"
        devices: [{ type: i915-GVTg_V5_2, count: 3 }]
      - parents: mdpy
        devices: [{ type: mdpy-vga, count: 6 }]
      - parents: "0000:*"
        devices: [{ type: nvidia-18, count: fill }]
`),
  );
  const { plan: p, summary } = await apply(env, file, lab);
  const reasons = p.items.filter((i) => i.action === 'blocked').map((i) => i.reason);
  assert.ok(
    reasons.some((r) =>
      /i915-GVTg_V5_2: 2 of 3 fit: the (high graphics memory|aperture) budget is spent/.test(r),
    ),
    reasons.join('\n'),
  );
  assert.ok(
    reasons.some((r) => /mdpy-vga: 4 of 6 fit: no instances left/.test(r)),
    reasons.join('\n'),
  );
  assert.equal(activeByType(lab).get(`${GPU0} nvidia-18`), 1);
  assert.equal(activeByType(lab).get(`${GPU1} nvidia-18`), 1);
  assert.equal(summary!.created, 2 + 4 + 2);
  // A fill that already holds everything is not blocked.
  const again = await apply(env, file, lab);
  assert.equal(again.summary!.created, 0);
  assert.equal(
    again.plan.items.filter((i) => i.action === 'blocked' && i.type === 'nvidia-18').length,
    0,
  );
});

test('a type left to placement: the smallest that satisfies the constraints, where it fits', async () => {
  const { lab, env } = labHost();
  const file = configFile(
    yaml(`      - parents: { vendorDevice: "10de:13f2" }
        devices: [{ select: { minFramebuffer: 2G }, count: 6 }]
`),
  );
  const { summary } = await apply(env, file, lab);
  assert.equal(summary!.created, 6);
  // nvidia-15 (2048M) is the smallest type with >= 2 GB: 4 on the first GPU, 2 on the next (pack).
  assert.equal(activeByType(lab).get(`${GPU0} nvidia-15`), 4);
  assert.equal(activeByType(lab).get(`${GPU1} nvidia-15`), 2);
});

/** A port whose directory listings come back in another order. */
function reorderingPort(inner: SysfsPort, reverse: boolean): SysfsPort {
  return {
    description: inner.description,
    read: (p) => inner.read(p),
    write: (p, d) => inner.write(p, d),
    list: (p) => {
      const l = inner.list(p).sort();
      return reverse
        ? l.reverse()
        : [l[l.length - 1]!, ...l.slice(0, -1)].filter((x) => x !== undefined);
    },
    readlink: (p) => inner.readlink(p),
    kind: (p) => inner.kind(p),
    realpath: (p) => inner.realpath(p),
  };
}

test('the plan is the same whatever order sysfs lists parents in', () => {
  const file = configFile(
    yaml(
      `      - parents: all
        devices:
          - { select: { minFramebuffer: 1G }, count: 5 }
          - { type: mtty-1, count: 3 }
      - parents: "0000:*"
        devices: [{ type: idxd-1wq, count: 2 }]
`,
      'default',
      'spread',
    ),
  );
  const plans = [false, true].map((reverse) => {
    const lab = Lab.fromProfile('lab');
    startDevice(labHost(lab).env, { uuid: U3, parent: GPU1, type: 'nvidia-14' });
    const { env } = labHost(lab, reorderingPort(lab.port, reverse));
    return JSON.stringify(plan(env, file, lab).items);
  });
  assert.equal(plans[0], plans[1]);
});

test('an open device is never removed: the plan says blocked, and so does the kernel', async () => {
  const { lab, env } = labHost();
  const two = configFile(
    yaml(`      - parents: mbochs\n        devices: [{ type: mbochs-small, count: 2 }]\n`),
  );
  await apply(env, two, lab);
  const [a, b] = [...lab.core.devices.keys()];
  lab.open(a!);
  const none = configFile(
    yaml(`      - parents: mtty\n        devices: [{ type: mtty-1, count: 1 }]\n`),
  );
  const p = plan(env, none, lab, { prune: true });
  const blocked = p.items.find((i) => i.action === 'blocked' && i.uuid === a)!;
  assert.equal(blocked.reason, `device ${a} is open (open by a test VM): not removed`);
  // Without the probe, the kernel's EBUSY is reported as blocked too.
  const { summary } = await apply(env, none, lab, { prune: true, inUse: () => undefined });
  assert.equal(summary!.removed, 1);
  const r = summary!.results.find((x) => x.uuid === a)!;
  assert.equal(r.blocked, true);
  assert.equal(r.errno, 'EBUSY');
  assert.match(r.error!, /Device or resource busy \(EBUSY\)/);
  assert.ok(lab.core.device(a!) !== undefined && lab.core.device(b!) === undefined);
  assert.equal(OwnershipRecord.open(env).get(a!)?.owner, 'config:default', 'still recorded');
});

test('--adopt takes over matching foreign devices, visibly', async () => {
  const { lab, env } = labHost();
  startDevice(env, { uuid: U1, parent: 'mtty', type: 'mtty-2' });
  startDevice(env, { uuid: U2, parent: 'mtty', type: 'mtty-1' });
  const file = configFile(
    yaml(`      - parents: mtty\n        devices: [{ type: mtty-2, count: 2 }]\n`),
  );
  const without = plan(env, file, lab);
  assert.equal(count(without, 'create'), 2);
  assert.equal(count(without, 'foreign'), 2);
  const { plan: p, summary } = await apply(env, file, lab, { adopt: true });
  assert.equal(summary!.adopted, 1);
  assert.equal(summary!.created, 1);
  assert.match(
    p.items.find((i) => i.action === 'adopt')!.reason,
    /foreign device matching .*: adopt it; running but not defined/,
  );
  assert.equal(OwnershipRecord.open(env).get(U1)?.owner, 'config:default');
  assert.equal(OwnershipRecord.open(env).get(U2), undefined);
  assert.ok(
    fs.existsSync(path.join(env.configDir, 'mtty', U1)),
    'adopted devices become persistent',
  );
});

test('a failing step is reported with the errno in words; nothing half-made is left', async () => {
  const { lab, env } = labHost();
  const file = configFile(
    yaml(`      - parents: "${GPU0}"
        devices: [{ type: nvidia-13, count: 2, attrs: { nvidia/vgpu_params: "not params" } }]
`),
  );
  const { summary } = await apply(env, file, lab);
  assert.equal(summary!.failed, 2);
  for (const r of summary!.results) {
    assert.equal(r.errno, 'EINVAL');
    assert.match(r.error!, /Invalid argument \(EINVAL\)/);
  }
  assert.equal(lab.core.devices.size, 0, 'the devices were removed again');
  assert.equal(OwnershipRecord.open(env).size, 0, 'and are not recorded');
  assert.equal(definitions(env).size, 0);
});

test('modify: start policy, attributes and a live aggregation change keep the UUID', async () => {
  const { lab, env } = labHost();
  const v1 = configFile(
    yaml(
      `      - parents: "0000:6a:01.0"\n        devices: [{ type: idxd-2wq, count: 1, aggregation: 2 }]\n`,
    ),
  );
  await apply(env, v1, lab);
  const [u] = [...lab.core.devices.keys()];
  const v2 = configFile(
    yaml(
      `      - parents: "0000:6a:01.0"\n        devices: [{ type: idxd-2wq, count: 1, aggregation: 4, start: manual }]\n`,
    ),
  );
  const { plan: p, summary } = await apply(env, v2, lab);
  assert.equal(summary!.modified, 1);
  assert.match(p.items[0]!.reason, /start auto -> manual/);
  assert.match(p.items[0]!.reason, /aggregation 2 -> 4 \(live\)/);
  assert.deepEqual([...lab.core.devices.keys()], [u]);
  assert.equal(lab.core.device(u!)!.aggregation, 4);
  assert.equal(lab.port.read(`/sys/bus/mdev/devices/${u}/vendor/queues`), '0-7\n');
  const def = JSON.parse(fs.readFileSync(path.join(env.configDir, '0000:6a:01.0', u!), 'utf8'));
  assert.deepEqual(def, {
    mdev_type: 'idxd-2wq',
    start: 'manual',
    attrs: [{ 'mdev/aggregation/value': '4' }],
  });
});

test('a defined but stopped device of the configuration is started, not duplicated', async () => {
  const { lab, env } = labHost();
  const file = configFile(
    yaml(`      - parents: mdpy\n        devices: [{ type: mdpy-vga, count: 2 }]\n`),
  );
  await apply(env, file, lab);
  lab.reboot(); // active devices vanish; definitions stay
  assert.equal(lab.core.devices.size, 0);
  const { summary } = await apply(env, file, lab);
  assert.equal(summary!.started, 2);
  assert.equal(summary!.created, 0);
  assert.equal(lab.core.devices.size, 2);
});

test('vfio-ap matrix devices: created, kept, and refused with the queue named', async () => {
  const { lab, env } = labHost();
  const file = configFile(
    yaml(
      `      - parents: { driver: vfio_ap }
        matrix:
          - { adapters: "5", domains: "0x47", controlDomains: "0x47" }
          - { adapters: "6", domains: "0xff" }
          - { adapters: "3", domains: "4" }
          - { adapters: "5", domains: "0x47" }
`,
      'crypto',
    ),
  );
  const { plan: p, summary } = await apply(env, file, lab, { config: 'crypto' });
  assert.equal(summary!.created, 2);
  const reasons = p.items.filter((i) => i.action === 'blocked').map((i) => i.reason);
  assert.ok(
    reasons.some((r) => /queue 03\.0004 belongs to the host/.test(r)),
    reasons.join('\n'),
  );
  assert.ok(
    reasons.some((r) => /queue 05\.0047 is held by matrix device/.test(r)),
    reasons.join('\n'),
  );
  const matrix = [...lab.core.devices.values()].map((d) =>
    lab.port.read(`/sys/bus/mdev/devices/${d.uuid}/matrix`).trim(),
  );
  assert.deepEqual(matrix.sort(), ['05.0047', '06.00ff']);
  const again = await apply(env, file, lab, { config: 'crypto' });
  assert.equal(again.summary!.created, 0);
  assert.equal(again.plan.counts.keep, 2);
  // The definition rebuilds the matrix in mdevctl's way.
  const def = [...definitions(env).values()].map((t) => JSON.parse(t) as { attrs: object[] });
  assert.ok(
    def.some(
      (d) =>
        JSON.stringify(d.attrs) ===
        JSON.stringify([
          { assign_adapter: '0x5' },
          { assign_domain: '0x47' },
          { assign_control_domain: '0x47' },
        ]),
    ),
  );
});

test('impossible requests are errors naming file and field; nothing is changed', async () => {
  const { lab, env } = labHost();
  const bad = [
    [
      `      - parents: mtty\n        devices: [{ type: nvidia-12, count: 1 }]\n`,
      'devices[0].type',
      /no parent this entry selects has type "nvidia-12"/,
    ],
    [
      `      - parents: mtty\n        devices: [{ type: mtty-1, count: 1, aggregation: 2 }]\n`,
      'devices[0].aggregation',
      /does not aggregate/,
    ],
    [
      `      - parents: mtty\n        matrix: [{ adapters: 1, domains: 1 }]\n`,
      'matrix[0]',
      /vfio-ap/,
    ],
    [
      `      - parents: all\n        devices: [{ select: { minFramebuffer: 64G }, count: 1 }]\n`,
      'devices[0].select',
      /no type/,
    ],
  ] as const;
  for (const [entries, field, message] of bad) {
    const file = configFile(yaml(entries));
    await assert.rejects(apply(env, file, lab), (err: unknown) => {
      assert.ok(err instanceof DesiredError);
      assert.equal(err.code, 'request-impossible');
      assert.equal(err.context.field, `configs.default.entries[0].${field}`);
      assert.equal(err.context.line, '7');
      assert.match(err.message, message);
      assert.ok(err.message.startsWith(`${file.file}:7:`), err.message);
      return true;
    });
  }
  assert.equal(lab.core.devices.size, 0);
  assert.equal(definitions(env).size, 0);
  assert.ok(!fs.existsSync(path.join(stateDirOf(env), 'owners.journal')));
});

test('two applies cannot interleave: the second fails clearly, or waits', async () => {
  const { lab, env } = labHost();
  const file = configFile(
    yaml(`      - parents: mtty\n        devices: [{ type: mtty-1, count: 1 }]\n`),
  );
  const held = await acquireApplyLock(stateDirOf(env), { owner: 'config:other' });
  await assert.rejects(apply(env, file, lab), (err: unknown) => {
    assert.ok(err instanceof DesiredError && err.code === 'locked');
    assert.match(err.message, new RegExp(`pid ${process.pid}, config:other`));
    return true;
  });
  let waited = false;
  const waiting = apply(env, file, lab, { wait: true, onWait: () => (waited = true) });
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(lab.core.devices.size, 0, 'nothing happened while the lock was held');
  held.release();
  const { summary } = await waiting;
  assert.ok(waited);
  assert.equal(summary!.created, 1);
});

test('a stale lock of a dead process is broken', async () => {
  const { lab, env } = labHost();
  const dir = stateDirOf(env);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'apply.lock'),
    JSON.stringify({ pid: 999999, start: '1', boot: 'another-boot', owner: 'config:x', since: '' }),
  );
  const { summary } = await apply(
    env,
    configFile(yaml(`      - parents: mtty\n        devices: [{ type: mtty-1, count: 1 }]\n`)),
    lab,
  );
  assert.equal(summary!.created, 1);
  assert.ok(!fs.existsSync(path.join(dir, 'apply.lock')));
});

test('capacity: exclusivity and shared budgets, and why none where none fits', async () => {
  const { lab, env } = labHost();
  startDevice(env, { uuid: U1, parent: GPU0, type: 'nvidia-12' });
  const { types, parents } = hostCapacity(env);
  const t18 = types.find((t) => t.type === 'nvidia-18')!;
  assert.equal(t18.more, 1, 'a full-GPU type fits only on the empty GPU');
  assert.match(t18.parents.find((c) => c.parent === GPU0)!.why!, /runs nvidia-12/);
  assert.equal(types.find((t) => t.type === 'nvidia-12')!.more, 15 + 16);
  assert.equal(types.find((t) => t.type === 'i915-GVTg_V5_8')!.more, 7);
  assert.equal(types.find((t) => t.type === 'idxd-4wq')!.more, 16);
  const gpu = parents.find((p) => p.parent === GPU0)!;
  assert.deepEqual(gpu.counters, [{ name: 'framebuffer', capacity: 8192, used: 512 }]);
  assert.equal(hostCapacity(env, { type: 'mtty-2' }).types.length, 1);
  assert.throws(() => hostCapacity(env, { type: 'nope' }), /no parent of this host has type/);
  void lab;
});

test('drain removes owned idle devices, reports open and foreign ones, and keeps placement away', async () => {
  const { lab, env } = labHost();
  startDevice(env, { uuid: U1, parent: GPU0, type: 'nvidia-16' });
  const file = configFile(
    yaml(
      `      - parents: { vendorDevice: "10de:13f2" }\n        devices: [{ type: nvidia-16, count: 3 }]\n`,
    ),
  );
  await apply(env, file, lab);
  const owned = OwnershipRecord.open(env)
    .entries()
    .map((e) => e.uuid);
  assert.equal(owned.length, 3);
  lab.open(owned[0]!);
  const r = await drainParent(env, GPU0, {
    inUse: (u) => (lab.core.device(u)?.isOpen === true ? 'a VM' : undefined),
  });
  assert.deepEqual(r.foreign, [U1]);
  assert.deepEqual(
    r.open.map((o) => o.uuid),
    [owned[0]],
  );
  assert.deepEqual([...r.removed].sort(), owned.slice(1).sort());
  // The next apply places the missing devices on the other GPU only.
  const again = await apply(env, file, lab);
  assert.equal(again.summary!.created, 2);
  assert.ok(again.plan.items.filter((i) => i.action === 'create').every((i) => i.parent === GPU1));
  await drainParent(env, GPU0, { undo: true });
  assert.equal(
    hostCapacity(env, { type: 'nvidia-16' }).types[0]!.parents.find((c) => c.parent === GPU0)!
      .drained,
    undefined,
  );
});

test('desired next to actual: what the last apply wanted, and what runs now', async () => {
  const { lab, env } = labHost();
  const file = configFile(
    yaml(
      `      - parents: mtty\n        devices: [{ type: mtty-2, count: 3 }]\n      - parents: "${IGD}"\n        devices: [{ type: i915-GVTg_V5_1, count: 2 }]\n`,
    ),
  );
  await apply(env, file, lab);
  // Someone removes one of the configuration's devices behind its back.
  const [victim] = OwnershipRecord.open(env)
    .entries()
    .filter((e) => e.type === 'mtty-2');
  lab.port.write(`/sys/bus/mdev/devices/${victim!.uuid}/remove`, '1');
  const status = desiredStatus(env);
  assert.deepEqual(status.rows, [
    { config: 'default', parent: IGD, type: 'i915-GVTg_V5_1', wanted: 1, actual: 1 },
    { config: 'default', parent: 'mtty', type: 'mtty-2', wanted: 3, actual: 2 },
  ]);
  assert.equal(status.configs[0]!.blocked.length, 1);
  assert.match(status.configs[0]!.blocked[0]!, /i915-GVTg_V5_1: 1 of 2 fit/);
});
