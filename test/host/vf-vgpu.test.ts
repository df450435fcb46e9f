import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { environmentAt, type Environment } from '../../src/host/environment.js';
import {
  VfAutostart,
  VfVgpuError,
  createVgpu,
  formatDefinition,
  listDefinitions,
  listVfGpus,
  readVgpuInventory,
  removeVgpu,
  startVgpu,
  stopVgpu,
  vfAddresses,
  vfStoreDir,
} from '../../src/host/vf-vgpu.js';
import type { Lab } from '../../src/sim/lab.js';
import { writeSnapshot } from '../../src/sim/sysfs/snapshot.js';
import { labWith } from '../support/labs.js';

/**
 * The management side of NVIDIA's VF vGPUs on the lab, through sysfs files
 * and the definitions store only: discovery, capacity, create (chosen or
 * placed VF), start/stop/remove with their refusals in words, identity,
 * autostart after the VFs appear and after a reboot, and the same reads on
 * a snapshot of the lab.
 */

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function setup(
  options: Record<string, unknown> = {},
  enable = true,
): { lab: Lab; env: Environment } {
  const lab = labWith([{ driver: 'nvidia-l40s', options }]);
  if (enable) lab.sriovManage(true, 'ALL');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mdevkit-vf-'));
  dirs.push(root);
  fs.mkdirSync(path.join(root, 'etc', 'mdevctl.d'), { recursive: true });
  return { lab, env: environmentAt(root, lab.port) };
}

const GPU = '0000:41:00.0';
const OWNER = 'user:alice';

function codeOf(fn: () => unknown): { code: string; message: string; errno: string } {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof VfVgpuError, `a VfVgpuError, got ${String(err)}`);
    return { code: err.code, message: err.message, errno: err.errno };
  }
  assert.fail('no error');
}

describe('VF vGPU discovery and capacity (sysfs only)', () => {
  it('finds the GPU with its VFs disabled, then its 32 slots', () => {
    const { lab, env } = setup({}, false);
    let [gpu] = listVfGpus(env.port);
    assert.equal(gpu!.address, GPU);
    assert.equal(gpu!.numVfs, 0);
    assert.deepEqual(gpu!.vfs, []);
    lab.sriovManage(true, 'ALL');
    [gpu] = listVfGpus(env.port);
    assert.equal(gpu!.vfs.length, 32);
    assert.deepEqual(
      gpu!.vfs.map((v) => v.address),
      vfAddresses(GPU, 4, 1, 32),
    );
    assert.equal(gpu!.vfs[31]!.address, '0000:41:04.3');
    assert.equal(gpu!.typeNames.get(1153), 'NVIDIA L40S-12Q');
    assert.equal(gpu!.creatableNow!.length, 23);
  });

  it('computes headroom per type in equal-size mode and says why not in words', () => {
    const { env } = setup();
    createVgpu(env, { gpu: GPU, type: 'L40S-12Q', owner: OWNER });
    const cap = readVgpuInventory(env).capacity[0]!;
    assert.equal(cap.mode, 'equal-size');
    assert.equal(cap.runningSizeGb, 12);
    assert.equal(cap.usedGb, 12);
    assert.deepEqual(
      cap.types.filter((t) => t.headroom > 0).map((t) => [t.shortName, t.headroom]),
      [
        ['L40S-12Q', 3],
        ['L40S-12A', 3],
      ],
    );
    const e = codeOf(() => createVgpu(env, { gpu: GPU, type: 'L40S-24Q', owner: OWNER }));
    assert.equal(e.code, 'vgpu-size-mismatch');
    assert.equal(e.message, 'L40S-24Q does not fit: this GPU runs 12 GB types');
    assert.equal(e.errno, 'EIO');
  });

  it('in mixed-size mode counts aligned free placements from placement_id', () => {
    const { env } = setup({ heterogeneous: true });
    createVgpu(env, { gpu: GPU, type: 'L40S-16Q', owner: OWNER }); // at 0
    createVgpu(env, { gpu: GPU, type: 'L40S-8Q', owner: OWNER }); // at 16
    const cap = readVgpuInventory(env).capacity[0]!;
    assert.equal(cap.mode, 'mixed-size');
    const h = (n: string): number => cap.types.find((t) => t.shortName === n)!.headroom;
    assert.equal(h('L40S-24Q'), 1, 'one aligned 24 GB run: 24..47');
    assert.equal(h('L40S-16Q'), 1, 'one aligned 16 GB run: 32..47');
    assert.equal(h('L40S-8Q'), 3, '24, 32, 40');
    assert.equal(h('L40S-48Q'), 0);
  });
});

describe('VF vGPU create, start, stop, remove', () => {
  it('places four vGPUs on the first free VFs, stores them, and lists them as active', () => {
    const { env } = setup();
    const made = [1, 2, 3, 4].map(() =>
      createVgpu(env, { gpu: GPU, type: 1153, owner: OWNER, start: 'auto' }),
    );
    assert.deepEqual(
      made.map((m) => m.vfAddress),
      ['0000:41:00.4', '0000:41:00.5', '0000:41:00.6', '0000:41:00.7'],
    );
    const d = made[0]!.definition;
    const file = path.join(vfStoreDir(env), GPU, d.uuid);
    assert.equal(
      fs.readFileSync(file, 'utf8'),
      '{\n  "vgpu_type": 1153,\n  "vgpu_type_name": "NVIDIA L40S-12Q",\n  "vf": 0,\n  "start": "auto",\n  "owner": "user:alice"\n}\n',
    );
    assert.equal(formatDefinition(d), fs.readFileSync(file, 'utf8'));
    assert.equal(
      env.port.read(`/sys/bus/pci/devices/0000:41:00.7/nvidia/current_vgpu_type`),
      '1153\n',
    );
    const inv = readVgpuInventory(env);
    assert.deepEqual(
      inv.entries.map((e) => [e.vf, e.state, e.uuid]),
      made.map((m, i) => [i, 'active', m.definition.uuid]),
    );
    const full = codeOf(() => createVgpu(env, { gpu: GPU, type: 'L40S-12A', owner: OWNER }));
    assert.equal(full.code, 'vgpu-no-room');
    assert.match(full.message, /^L40S-12A does not fit: 0000:41:00.0 has 0 GB of 48 GB free/);
  });

  it('says the VFs are not enabled, in the words operators know', () => {
    const { env } = setup({}, false);
    const e = codeOf(() => createVgpu(env, { gpu: GPU, type: 'L40S-12Q', owner: OWNER }));
    assert.equal(e.code, 'vf-not-enabled');
    assert.equal(e.message, 'VFs are not enabled on 0000:41:00.0: run sriov-manage -e');
    assert.deepEqual(listDefinitions(env), [], 'nothing stored');
    assert.equal(
      codeOf(() => createVgpu(env, { gpu: '0000:41:00.4', type: 1, owner: OWNER })).code,
      'not-vgpu-gpu',
    );
  });

  it('pins to a chosen VF; refuses a pinned or taken VF, naming the holder', () => {
    const { lab, env } = setup();
    const a = createVgpu(env, { gpu: GPU, type: 'L40S-6Q', owner: OWNER, vf: 5 });
    assert.equal(a.vfAddress, '0000:41:01.1');
    const pinned = codeOf(() =>
      createVgpu(env, { gpu: GPU, type: 'L40S-6Q', owner: OWNER, vf: 5 }),
    );
    assert.equal(pinned.code, 'vf-pinned');
    assert.match(pinned.message, new RegExp(a.definition.uuid));
    // Someone else writes a type to VF 6 by hand: a foreign vGPU.
    lab.port.write('/sys/bus/pci/devices/0000:41:01.2/nvidia/current_vgpu_type', '1161');
    const taken = codeOf(() => createVgpu(env, { gpu: GPU, type: 'L40S-6Q', owner: OWNER, vf: 6 }));
    assert.equal(taken.code, 'vf-taken');
    assert.equal(
      taken.message,
      'VF 0000:41:01.2 is taken: it holds a L40S-6A vGPU that mdevkit did not make',
    );
    const inv = readVgpuInventory(env);
    assert.deepEqual(
      inv.entries.map((e) => [e.vf, e.state, e.uuid ?? null, e.typeName]),
      [
        [5, 'active', a.definition.uuid, 'NVIDIA L40S-6Q'],
        [6, 'foreign', null, 'NVIDIA L40S-6A'],
      ],
    );
    // A definition of VF 7 whose VF meanwhile holds another vGPU: starting it names the holder.
    const b = createVgpu(env, { gpu: GPU, type: 'L40S-6Q', owner: OWNER, vf: 7, defineOnly: true });
    const vf7 = '/sys/bus/pci/devices/0000:41:01.3/nvidia/current_vgpu_type';
    lab.port.write(vf7, '1161');
    const e = codeOf(() => startVgpu(env, b.definition.uuid));
    assert.equal(e.code, 'vf-taken');
    assert.equal(
      e.message,
      `cannot make vGPU ${b.definition.uuid} (L40S-6Q): VF 0000:41:01.3 is taken by a L40S-6A vGPU that mdevkit did not make`,
    );
    assert.equal(
      readVgpuInventory(env).entries.find((x) => x.uuid === b.definition.uuid)!.state,
      'conflict',
    );
    // Its own type written by someone else: sysfs cannot tell it apart, so it is its vGPU.
    lab.port.write(vf7, '0');
    lab.port.write(vf7, '1151');
    assert.equal(
      readVgpuInventory(env).entries.find((x) => x.uuid === b.definition.uuid)!.state,
      'active',
    );
  });

  it('a VF in use by a VM keeps its vGPU; stop works once the VM lets go', () => {
    const { lab, env } = setup();
    const a = createVgpu(env, {
      gpu: GPU,
      type: 'L40S-48Q',
      owner: OWNER,
      params: 'frame_rate_limiter=0',
    });
    assert.equal(
      env.port.read(`/sys/bus/pci/devices/${a.vfAddress}/nvidia/vgpu_params`),
      'frame_rate_limiter=0\n',
    );
    lab.open(a.vfAddress);
    const e = codeOf(() => stopVgpu(env, a.definition.uuid));
    assert.equal(e.code, 'vf-in-use');
    assert.match(e.message, /the VF 0000:41:00\.4 is in use by a VM$/);
    assert.equal(e.errno, 'EBUSY');
    lab.close(a.vfAddress);
    stopVgpu(env, a.definition.uuid);
    assert.equal(readVgpuInventory(env).entries[0]!.state, 'inactive');
    assert.equal(codeOf(() => stopVgpu(env, a.definition.uuid)).code, 'not-active');
    startVgpu(env, a.definition.uuid);
    assert.equal(codeOf(() => startVgpu(env, a.definition.uuid)).code, 'already-active');
  });

  it('a failed start leaves no definition; bad params are refused before anything is written', () => {
    const { env } = setup();
    createVgpu(env, { gpu: GPU, type: 'L40S-24Q', owner: OWNER });
    createVgpu(env, { gpu: GPU, type: 'L40S-24Q', owner: OWNER });
    assert.equal(
      codeOf(() => createVgpu(env, { gpu: GPU, type: 'L40S-24Q', owner: OWNER })).code,
      'vgpu-no-room',
    );
    assert.equal(listDefinitions(env).length, 2);
    assert.equal(
      codeOf(() => createVgpu(env, { gpu: GPU, type: 'L40S-2Q', owner: OWNER, params: 'x' })).code,
      'invalid-argument',
    );
    assert.equal(
      codeOf(() => createVgpu(env, { gpu: GPU, type: 'L40S-99Q', owner: OWNER })).code,
      'unknown-vgpu-type',
    );
    assert.equal(
      codeOf(() => createVgpu(env, { gpu: GPU, type: 1, owner: 'alice' })).code,
      'invalid-argument',
    );
  });

  it("removes by UUID or VF address; another owner's or a foreign vGPU needs force", () => {
    const { lab, env } = setup();
    const a = createVgpu(env, { gpu: GPU, type: 'L40S-4Q', owner: 'config:default' });
    const no = codeOf(() => removeVgpu(env, a.definition.uuid, { as: OWNER }));
    assert.equal(no.code, 'foreign-vgpu');
    assert.match(no.message, /belongs to config:default, not user:alice; use --force/);
    const r = removeVgpu(env, a.vfAddress, { as: OWNER, force: true });
    assert.deepEqual([r.uuid, r.destroyed, r.undefined], [a.definition.uuid, true, true]);
    assert.deepEqual(listDefinitions(env), []);
    lab.port.write('/sys/bus/pci/devices/0000:41:00.5/nvidia/current_vgpu_type', '1150');
    assert.equal(codeOf(() => removeVgpu(env, '41:00.5', { as: OWNER })).code, 'foreign-vgpu');
    removeVgpu(env, '0000:41:00.5', { as: OWNER, force: true });
    assert.equal(
      env.port.read('/sys/bus/pci/devices/0000:41:00.5/nvidia/current_vgpu_type'),
      '0\n',
    );
  });

  it('keeps identity by UUID while the VF path is reused', () => {
    const { env } = setup();
    const a = createVgpu(env, { gpu: GPU, type: 'L40S-8Q', owner: OWNER });
    removeVgpu(env, a.definition.uuid, { as: OWNER });
    const b = createVgpu(env, { gpu: GPU, type: 'L40S-8Q', owner: OWNER });
    assert.equal(b.vfAddress, a.vfAddress, 'the same VF');
    assert.notEqual(b.definition.uuid, a.definition.uuid, 'another vGPU');
    const [entry] = readVgpuInventory(env).entries;
    assert.equal(entry!.uuid, b.definition.uuid);
  });

  it('skips a broken definition file and reports it', () => {
    const { env } = setup();
    createVgpu(env, { gpu: GPU, type: 'L40S-8Q', owner: OWNER });
    const bad = path.join(vfStoreDir(env), GPU, '00000000-0000-4000-8000-000000000001');
    fs.writeFileSync(bad, '{"vgpu_type": "twelve"}');
    fs.writeFileSync(path.join(vfStoreDir(env), GPU, '.#tmp.1.0'), 'debris');
    const inv = readVgpuInventory(env);
    assert.equal(inv.entries.length, 1);
    assert.equal(inv.invalidDefinitions.length, 1);
    assert.match(inv.invalidDefinitions[0]!.message, /"vgpu_type" must be a positive type id/);
  });
});

describe('VF vGPU autostart and snapshots', () => {
  it('makes start=auto vGPUs again once VFs are enabled, and after a reboot with a boot unit', async () => {
    const { lab, env } = setup();
    for (let i = 0; i < 4; i++)
      createVgpu(env, { gpu: GPU, type: 'L40S-12Q', owner: OWNER, start: 'auto' });
    const manual = createVgpu(env, {
      gpu: GPU,
      type: 'L40S-12A',
      owner: OWNER,
      vf: 9,
      defineOnly: true,
    });
    const runs: string[] = [];
    const auto = new VfAutostart(env, {
      onRun: (r) => runs.push(`${r.gpu} ${r.started.length}/${r.failed.length}`),
    });
    lab.kernel.onUevent(auto.uevent);
    lab.sriovManage(false, 'ALL');
    lab.sriovManage(true, 'ALL', { boot: true });
    await auto.flush();
    assert.deepEqual(runs, ['0000:41:00.0 4/0'], 'one run for the burst of 32 binds');
    const active = () => readVgpuInventory(env).entries.filter((e) => e.state === 'active').length;
    assert.equal(active(), 4);
    assert.equal(
      readVgpuInventory(env).entries.find((e) => e.uuid === manual.definition.uuid)!.state,
      'inactive',
    );
    lab.reboot();
    await auto.flush();
    assert.equal(active(), 4, 'back after the reboot');
    assert.deepEqual(runs, ['0000:41:00.0 4/0', '0000:41:00.0 4/0']);
  });

  it('reads the same inventory from a snapshot of the lab', () => {
    const { lab, env } = setup({ gpus: ['0000:41:00.0', '0000:c1:00.0'], heterogeneous: true });
    createVgpu(env, { gpu: GPU, type: 'L40S-16Q', owner: OWNER, params: 'frame_rate_limiter=0' });
    createVgpu(env, { gpu: GPU, type: 'L40S-8A', owner: OWNER });
    createVgpu(env, { gpu: '0000:c1:00.0', type: 'L40S-1B', owner: OWNER });
    lab.port.write('/sys/bus/pci/devices/0000:c1:00.5/nvidia/current_vgpu_type', '1145');
    const snap = fs.mkdtempSync(path.join(os.tmpdir(), 'mdevkit-vf-snap-'));
    dirs.push(snap);
    writeSnapshot(lab.kernel.tree, snap);
    fs.cpSync(
      path.join(path.dirname(env.configDir), 'mdevkit'),
      path.join(snap, 'etc', 'mdevkit'),
      {
        recursive: true,
      },
    );
    const onSnapshot = environmentAt(snap);
    assert.deepEqual(readVgpuInventory(onSnapshot), readVgpuInventory(env));
    assert.equal(readVgpuInventory(onSnapshot).entries.length, 4);
  });
});
