/**
 * Desired state on NVIDIA's SR-IOV GPUs: a configuration says "4 × L40S-12Q
 * on this GPU" and apply writes VFs' current_vgpu_type, checked through the
 * VFs' sysfs files and the VF vGPU definitions on disk. The refusals are the
 * same words as `mdevkit vf create` gives; another owner's vGPU is left
 * alone; an open VF blocks its removal; a reboot with the VF boot unit
 * brings everything back and the next apply changes nothing.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { capacityFor } from '../../../src/host/desired/capacity.js';
import { drainParent, hostCapacity } from '../../../src/host/desired/engine.js';
import { readVfInventory } from '../../../src/host/desired/inventory.js';
import { environmentAt, type Environment } from '../../../src/host/environment.js';
import {
  VfAutostart,
  createVgpu,
  listDefinitions,
  readVgpuInventory,
} from '../../../src/host/vf-vgpu.js';
import type { Lab } from '../../../src/sim/lab.js';
import { writeSnapshot } from '../../../src/sim/sysfs/snapshot.js';
import { labWith } from '../../support/labs.js';
import { tmpDir } from '../../support/tmp.js';
import { apply, configFile, count, labHost, plan } from './support.js';

const GPU = '0000:41:00.0';
const PCI = '/sys/bus/pci/devices';

const fourOf = (type: string, extra = ''): string => `version: 1
configs:
  default:
    entries:
      - parents: '${GPU}'
        devices:
          - { type: ${type}, count: 4${extra} }
`;

/** Apply, which (not a dry run) always answers with a summary. */
async function applied(...args: Parameters<typeof apply>) {
  const r = await apply(...args);
  assert.ok(r.summary);
  return r.summary;
}

function l40s(options: Record<string, unknown> = {}): { lab: Lab; env: Environment } {
  const { lab, env } = labHost(labWith([{ driver: 'nvidia-l40s', options }]));
  return { lab, env };
}

/** type id per VF that holds a vGPU, read from the VFs' files. */
function heldTypes(env: Environment): Map<string, string> {
  const out = new Map<string, string>();
  for (const vf of env.port.list(PCI)) {
    const file = `${PCI}/${vf}/nvidia/current_vgpu_type`;
    if (env.port.kind(file) === null) continue;
    const id = env.port.read(file).trim();
    if (id !== '0') out.set(vf, id);
  }
  return out;
}

describe('desired state on NVIDIA VF vGPUs', () => {
  it('VFs not enabled: the plan is blocked, in words, and apply changes nothing', async () => {
    const { lab, env } = l40s();
    const file = configFile(fourOf('L40S-12Q'));
    const p = plan(env, file, lab);
    assert.equal(count(p, 'blocked'), 1);
    assert.equal(count(p, 'create'), 0);
    assert.match(p.items[0]!.reason, /VFs are not enabled on 0000:41:00\.0: run sriov-manage -e$/);
    const summary = await applied(env, file, lab);
    assert.equal(summary.blocked, 1);
    assert.equal(summary.created, 0);
    assert.deepEqual(listDefinitions(env), []);
  });

  it('one apply puts four vGPUs of one size on the GPU; the next keeps them', async () => {
    const { lab, env } = l40s();
    lab.sriovManage(true, 'ALL');
    const file = configFile(
      fourOf('L40S-12Q', ", attrs: { nvidia/vgpu_params: 'frame_rate_limiter=0' }"),
    );
    const p = plan(env, file, lab);
    assert.equal(count(p, 'create'), 4);
    assert.ok(p.items.every((i) => i.kind === 'vf-vgpu' && i.type === 'nvidia-1153'));
    const summary = await applied(env, file, lab);
    assert.equal(summary.created, 4, JSON.stringify(summary.results));
    assert.equal(summary.failed, 0);

    // Four VFs hold type 1153, each with its parameters; the GPU is full.
    const held = heldTypes(env);
    assert.deepEqual([...held.values()], ['1153', '1153', '1153', '1153']);
    for (const vf of held.keys())
      assert.equal(env.port.read(`${PCI}/${vf}/nvidia/vgpu_params`), 'frame_rate_limiter=0\n');
    // 48 of 48 GB taken: a free VF lists no type, only the header.
    const free = env.port
      .list(PCI)
      .find((v) => !held.has(v) && env.port.kind(`${PCI}/${v}/nvidia`) !== null)!;
    const creatable = env.port.read(`${PCI}/${free}/nvidia/creatable_vgpu_types`);
    assert.equal(creatable.trim().split('\n').length, 1, creatable);
    // Definitions: ours, start=auto, by UUID.
    const defs = listDefinitions(env);
    assert.equal(defs.length, 4);
    assert.ok(defs.every((d) => d.owner === 'config:default' && d.start === 'auto'));
    assert.ok(defs.every((d) => d.params === 'frame_rate_limiter=0'));

    const again = await applied(env, file, lab);
    assert.equal(again.kept, 4);
    assert.equal(again.created + again.modified + again.removed, 0);
    assert.deepEqual(
      listDefinitions(env)
        .map((d) => d.uuid)
        .sort(),
      defs.map((d) => d.uuid).sort(),
    );

    // The host's capacity: the GPU under its own model, full.
    const cap = hostCapacity(env);
    const gpu = cap.parents.find((x) => x.parent === GPU)!;
    assert.equal(gpu.model, 'nvidia-vf');
    assert.equal(gpu.devices, 4);
    assert.deepEqual(gpu.counters[0], {
      name: 'framebuffer',
      capacity: 48 * 1024,
      used: 48 * 1024,
    });
  });

  it('a size that does not fit is refused in the driver model words; another owner is left alone', async () => {
    const { lab, env } = l40s();
    lab.sriovManage(true, 'ALL');
    const alice = createVgpu(env, { gpu: GPU, type: 'L40S-12Q', owner: 'user:alice' });
    const file = configFile(`version: 1
configs:
  default:
    entries:
      - parents: '${GPU}'
        devices:
          - { type: L40S-12Q, count: 2 }
          - { type: L40S-24Q, count: 1 }
`);
    const p = plan(env, file, lab);
    assert.equal(count(p, 'create'), 2);
    assert.equal(count(p, 'foreign'), 1);
    const blocked = p.items.filter((i) => i.action === 'blocked');
    assert.equal(blocked.length, 1);
    assert.match(blocked[0]!.reason, /L40S-24Q does not fit: this GPU runs 12 GB types$/);
    const summary = await applied(env, file, lab, { prune: true });
    assert.equal(summary.created, 2);
    assert.equal(summary.removed, 0);
    assert.equal(heldTypes(env).get(alice.vfAddress), '1153', "alice's vGPU stays");
  });

  it('prune changes the size: ours go, an open VF blocks its own removal', async () => {
    const { lab, env } = l40s();
    lab.sriovManage(true, 'ALL');
    await apply(env, configFile(fourOf('L40S-12Q')), lab);
    const vms = [...heldTypes(env).keys()];
    lab.open(vms[0]!);
    const bigger = configFile(`version: 1
configs:
  default:
    entries:
      - parents: '${GPU}'
        devices: [{ type: L40S-24Q, count: 2 }]
`);
    const first = await applied(env, bigger, lab, { prune: true });
    assert.equal(first.removed, 3);
    assert.ok(first.blocked >= 1, JSON.stringify(first.results));
    assert.equal(first.created, 0, 'no 24 GB type fits while a 12 GB one runs');
    assert.deepEqual([...heldTypes(env).entries()], [[vms[0]!, '1153']]);
    lab.close(vms[0]!);
    const second = await applied(env, bigger, lab, { prune: true });
    assert.equal(second.removed, 1);
    assert.equal(second.created, 2);
    assert.deepEqual([...heldTypes(env).values()], ['1155', '1155']);
  });

  it('changed vgpu_params reach the VF; drain removes our vGPUs but not an open VF', async () => {
    const { lab, env } = l40s();
    lab.sriovManage(true, 'ALL');
    await apply(env, configFile(fourOf('L40S-12Q')), lab);
    const changed = await applied(
      env,
      configFile(fourOf('L40S-12Q', ", attrs: { nvidia/vgpu_params: 'frame_rate_limiter=1' }")),
      lab,
    );
    assert.equal(changed.modified, 4);
    for (const vf of heldTypes(env).keys())
      assert.equal(env.port.read(`${PCI}/${vf}/nvidia/vgpu_params`), 'frame_rate_limiter=1\n');
    assert.ok(listDefinitions(env).every((d) => d.params === 'frame_rate_limiter=1'));

    // A VM holds one VF open: drain removes the other three and names it.
    const [held] = heldTypes(env).keys();
    lab.open(held!);
    const drained = await drainParent(env, GPU);
    assert.equal(drained.removed.length, 3);
    assert.equal(drained.open.length, 1);
    assert.match(drained.open[0]!.why, /is in use by a VM$/);
    assert.deepEqual([...heldTypes(env).keys()], [held]);
    lab.close(held!);
    const rest = await drainParent(env, GPU);
    assert.equal(rest.removed.length, 1);
    assert.equal(heldTypes(env).size, 0);
    assert.deepEqual(listDefinitions(env), []);
  });

  it('after a reboot the boot unit and autostart bring them back; apply keeps them', async () => {
    const { lab, env } = l40s();
    lab.sriovManage(true, 'ALL', { boot: true });
    const auto = new VfAutostart(env);
    lab.kernel.onUevent(auto.uevent);
    const file = configFile(fourOf('L40S-12Q'));
    await apply(env, file, lab);
    const before = readVgpuInventory(env)
      .entries.map((e) => `${e.uuid} ${e.state}`)
      .sort();
    lab.reboot();
    await auto.flush();
    assert.deepEqual(
      readVgpuInventory(env)
        .entries.map((e) => `${e.uuid} ${e.state}`)
        .sort(),
      before,
    );
    const after = await applied(env, file, lab);
    assert.equal(after.kept, 4);
    assert.equal(after.created + after.started, 0);
  });

  it('placement: a framebuffer floor picks the size, spread balances GPUs, fill fills each', () => {
    const { lab, env } = l40s({ gpus: [GPU, '0000:c1:00.0'] });
    lab.sriovManage(true, 'ALL');
    const where = (yaml: string): string[] =>
      plan(env, configFile(yaml), lab)
        .items.filter((i) => i.action === 'create')
        .map((i) => `${i.parent} ${i.type}`);
    assert.deepEqual(
      where(`version: 1
configs:
  default:
    policy: spread
    entries:
      - parents: { vendorDevice: '10de:26b9' }
        devices: [{ select: { minFramebuffer: 20G }, count: 4 }]
`),
      [
        `${GPU} nvidia-1155`,
        `${GPU} nvidia-1155`,
        '0000:c1:00.0 nvidia-1155',
        '0000:c1:00.0 nvidia-1155',
      ],
    );
    const fill = where(`version: 1
configs:
  default:
    entries:
      - parents: { vendorDevice: '10de:26b9' }
        devices: [{ type: L40S-12Q, count: fill }]
`);
    assert.equal(fill.length, 8);
    assert.equal(fill.filter((w) => w === `${GPU} nvidia-1153`).length, 4);
  });

  it('plans the same on a snapshot of the lab as on the lab', async () => {
    const { lab, env } = l40s();
    lab.sriovManage(true, 'ALL');
    await applied(env, configFile(fourOf('L40S-12Q').replace('count: 4', 'count: 3')), lab);
    createVgpu(env, { gpu: GPU, type: 'L40S-12Q', owner: 'user:alice' });
    const snap = tmpDir('mdevkit-desired-vf-snap-');
    writeSnapshot(lab.kernel.tree, snap);
    fs.cpSync(path.dirname(env.configDir), path.join(snap, 'etc'), { recursive: true });
    const onSnapshot = environmentAt(snap);
    const file = configFile(fourOf('L40S-12Q').replace('count: 4', 'count: 2'));
    const summary = (e: Environment) =>
      plan(e, file, lab, { prune: true }).items.map(
        (i) => `${i.action} ${i.uuid ?? ''} ${i.reason}`,
      );
    const here = summary(env);
    assert.deepEqual(summary(onSnapshot), here);
    assert.equal(here.filter((l) => l.startsWith('remove ')).length, 1);
    assert.equal(here.filter((l) => l.startsWith('keep ')).length, 2);
    assert.equal(here.filter((l) => l.startsWith('foreign ')).length, 1);
  });

  it("the capacity model agrees with the driver's creatable list, which wins until the plan changes the GPU", () => {
    const { lab, env } = l40s({ heterogeneous: true });
    lab.sriovManage(true, 'ALL');
    createVgpu(env, { gpu: GPU, type: 'L40S-16Q', owner: 'user:alice' });
    createVgpu(env, { gpu: GPU, type: 'L40S-8A', owner: 'user:alice' });
    const gpu = readVfInventory(env).parents[0]!;
    const model = capacityFor(gpu, []);
    // Every type: fits by the model exactly when a free VF lists it.
    const listed = gpu.vf!.creatableNow!;
    for (const t of gpu.types) {
      const id = Number(t.id.slice('nvidia-'.length));
      assert.equal(model.check(t.id) === undefined, listed.includes(id), t.name);
    }
    // A driver that lists less (placements the model cannot see) is believed...
    const narrower = {
      ...gpu,
      vf: { ...gpu.vf!, creatableNow: listed.filter((id) => id !== 1153) },
    };
    const believing = capacityFor(narrower, []);
    assert.match(believing.check('nvidia-1153')!.reason, /do not list it as creatable now$/);
    // ...until the plan itself frees or takes capacity there.
    believing.remove('nvidia-1154'); // alice's L40S-16Q, pruned in the plan
    assert.equal(believing.check('nvidia-1153'), undefined);
  });
});
