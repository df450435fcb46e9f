import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isErrnoCode } from '../../../src/common/errno.js';
import type { Uevent } from '../../../src/sim/core/kernel.js';
import type { Lab } from '../../../src/sim/lab.js';
import { labWith } from '../../support/labs.js';

/**
 * The L40S in SR-IOV vGPU mode, through its sysfs files in process: every
 * rule of the driver model with its errno. (The same files over FUSE:
 * test/fuse/nvidia-vf.test.ts.)
 */

const PF = '/sys/bus/pci/devices/0000:41:00.0';
const vfPath = (i: number): string => {
  const devfn = 4 + i;
  const slot = (devfn >> 3).toString(16).padStart(2, '0');
  return `/sys/bus/pci/devices/0000:41:${slot}.${devfn & 7}`;
};
const nv = (i: number, file: string): string => `${vfPath(i)}/nvidia/${file}`;

function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return isErrnoCode(code) ? code : `not an errno: ${String(err)}`;
  }
}

function l40s(options: Record<string, unknown> = {}, enable = true): Lab {
  const lab = labWith([{ driver: 'nvidia-l40s', options }]);
  if (enable) lab.sriovManage(true, 'ALL');
  return lab;
}

/** The ids a VF lists now. */
const creatable = (lab: Lab, i: number): number[] =>
  lab.port
    .read(nv(i, 'creatable_vgpu_types'))
    .split('\n')
    .slice(1)
    .filter((l) => l !== '')
    .map((l) => Number(l.slice(0, 5)));

const ALL_IDS = [
  1145, 1146, 1147, 1148, 1149, 1150, 1151, 1152, 1153, 1154, 1155, 1156, 1157, 1158, 1159, 1160,
  1161, 1162, 1163, 1164, 1165, 1166, 2164,
];

describe('nvidia-l40s: the physical function', () => {
  it('is a 3D controller bound to nvidia, with SR-IOV files and no nvidia/ or mdev types', () => {
    const lab = l40s({}, false);
    const p = lab.port;
    assert.equal(p.read(`${PF}/vendor`), '0x10de\n');
    assert.equal(p.read(`${PF}/device`), '0x26b9\n');
    assert.equal(p.read(`${PF}/class`), '0x030200\n');
    assert.match(p.readlink(`${PF}/driver`), /\/bus\/pci\/drivers\/nvidia$/);
    assert.equal(p.read(`${PF}/sriov_totalvfs`), '32\n');
    assert.equal(p.read(`${PF}/sriov_numvfs`), '0\n');
    assert.equal(p.read(`${PF}/sriov_offset`), '4\n');
    assert.equal(p.read(`${PF}/sriov_stride`), '1\n');
    assert.equal(p.read(`${PF}/sriov_vf_device`), '26b9\n');
    assert.equal(p.read(`${PF}/sriov_drivers_autoprobe`), '1\n');
    assert.equal(p.kind(`${PF}/nvidia`), null);
    assert.equal(p.kind(`${PF}/mdev_supported_types`), null);
    assert.deepEqual(p.list('/sys/class/mdev_bus'), []);
  });

  it('refuses raw sriov_numvfs writes as the kernel does for a driver without sriov_configure', () => {
    const lab = l40s({}, false);
    const f = `${PF}/sriov_numvfs`;
    assert.equal(
      errnoOf(() => lab.port.write(f, '32')),
      'ENOENT',
    );
    assert.equal(
      errnoOf(() => lab.port.write(f, '33')),
      'ERANGE',
    );
    assert.equal(
      errnoOf(() => lab.port.write(f, 'all')),
      'EINVAL',
    );
    assert.equal(
      errnoOf(() => lab.port.write(f, '-1')),
      'EINVAL',
    );
    assert.equal(
      errnoOf(() => lab.port.write(f, '0x10000')),
      'ERANGE',
    );
    lab.port.write(f, '0\n'); // the count it has: nothing to do, no error
    assert.ok(
      lab.kernel.dmesg().some((l) => /does not support SRIOV configuration/.test(l.message)),
    );
    assert.equal(lab.port.read(f), '0\n');
    assert.equal(
      errnoOf(() => lab.port.write(`${PF}/sriov_drivers_autoprobe`, 'x')),
      'EINVAL',
    );
    lab.port.write(`${PF}/sriov_drivers_autoprobe`, '0');
    assert.equal(lab.port.read(`${PF}/sriov_drivers_autoprobe`), '0\n');
  });
});

describe('nvidia-l40s: sriov-manage', () => {
  it('enables all VFs once, idempotently, each bound to nvidia with its own IOMMU group', () => {
    const lab = l40s({}, false);
    const events: string[] = [];
    lab.kernel.onUevent((e: Uevent) => {
      if (e.subsystem === 'pci') {
        const driver = e.properties.find(([k]) => k === 'DRIVER')?.[1];
        events.push(`${e.action} ${e.devpath.split('/').at(-1)}${driver ? ` ${driver}` : ''}`);
      }
    });
    const r = lab.sriovManage(true, 'ALL');
    assert.deepEqual(r.messages, ['Enabling VFs on 0000:41:00.0']);
    assert.deepEqual(r.gpus, [{ address: '0000:41:00.0', numVfs: 32 }]);
    assert.equal(lab.port.read(`${PF}/sriov_numvfs`), '32\n');
    assert.equal(lab.port.readlink(`${PF}/virtfn0`), '../0000:41:00.4');
    assert.equal(lab.port.readlink(`${PF}/virtfn31`), '../0000:41:04.3');
    assert.equal(lab.port.readlink(`${vfPath(31)}/physfn`), '../0000:41:00.0');
    assert.deepEqual(events.slice(0, 2), ['add 0000:41:00.4', 'bind 0000:41:00.4 nvidia']);
    assert.equal(events.length, 64);
    assert.deepEqual(lab.sriovManage(true, '0000:41:00.0').messages, [
      'GPU at 0000:41:00.0 already has VFs enabled.',
    ]);
    assert.deepEqual(lab.sriovManage(true, '41:00.0').messages, [
      'GPU at 0000:41:00.0 already has VFs enabled.',
    ]);
    const groups = new Set(
      Array.from({ length: 32 }, (_, i) => lab.port.realpath(`${vfPath(i)}/iommu_group`)),
    );
    assert.equal(groups.size, 32);
    assert.match(
      lab.port.read(`${vfPath(0)}/uevent`),
      /^DRIVER=nvidia\nPCI_CLASS=30200\nPCI_ID=10DE:26B9\n/,
    );
    assert.deepEqual(lab.port.list(`${vfPath(0)}/vfio-dev`).length, 1, 'registered with VFIO');
  });

  it('disables VFs (vGPUs go with them), refuses while a VM holds one, and says what is not a GPU', () => {
    const lab = l40s();
    lab.port.write(nv(3, 'current_vgpu_type'), '1153');
    lab.open('0000:41:00.7');
    assert.equal(
      errnoOf(() => lab.sriovManage(false, 'ALL')),
      'EBUSY',
    );
    assert.equal(lab.port.read(`${PF}/sriov_numvfs`), '32\n', 'nothing changed');
    lab.close('0000:41:00.7');
    assert.deepEqual(lab.sriovManage(false, '0000:41:00.0').messages, [
      'Disabling VFs on 0000:41:00.0',
    ]);
    assert.equal(lab.port.kind(vfPath(3)), null);
    assert.equal(lab.port.kind(`${PF}/virtfn0`), null);
    assert.deepEqual(lab.sriovManage(false, 'ALL').messages, [
      'GPU at 0000:41:00.0 already has VFs disabled.',
    ]);
    lab.sriovManage(true, 'ALL');
    assert.equal(lab.port.read(nv(3, 'current_vgpu_type')), '0\n', 'a new VF is empty');
    assert.equal(
      errnoOf(() => lab.sriovManage(true, '0000:99:00.0')),
      'ENODEV',
    );
    assert.equal(
      errnoOf(() => lab.sriovManage(true, '0000:41:00.4')),
      'ENODEV',
      'a VF is no GPU',
    );
    assert.equal(
      errnoOf(() => lab.sriovManage(true, 'gpu0')),
      'EINVAL',
    );
  });

  it('loses VFs at a reboot unless a boot unit enables them', () => {
    const lab = l40s({ gpus: ['0000:41:00.0', '0000:42:00.0'] }, false);
    lab.sriovManage(true, 'ALL');
    lab.reboot();
    assert.equal(lab.port.read(`${PF}/sriov_numvfs`), '0\n');
    lab.sriovManage(true, '0000:42:00.0', { boot: true });
    lab.reboot();
    assert.equal(lab.port.read(`${PF}/sriov_numvfs`), '0\n');
    assert.equal(lab.port.read('/sys/bus/pci/devices/0000:42:00.0/sriov_numvfs'), '32\n');
    lab.sriovManage(false, '0000:42:00.0', { boot: true });
    lab.sriovManage(true, 'all', { boot: true });
    lab.reboot();
    assert.equal(lab.port.read(`${PF}/sriov_numvfs`), '32\n');
    assert.deepEqual(lab.sriovAtBoot, ['ALL']);
  });
});

describe('nvidia-l40s: a VF and its nvidia/ files', () => {
  it('has the six files with their modes; an idle GPU lists every type', () => {
    const lab = l40s();
    assert.deepEqual(lab.port.list(`${vfPath(0)}/nvidia`).sort(), [
      'creatable_vgpu_types',
      'current_vgpu_type',
      'gpu_instance_id',
      'placement_id',
      'vgpu_params',
      'warm_update',
    ]);
    const text = lab.port.read(nv(0, 'creatable_vgpu_types'));
    assert.ok(text.startsWith('ID    : vGPU Name\n1145  : NVIDIA L40S-1B\n'));
    assert.ok(text.endsWith('1166  : NVIDIA L40S-48A\n2164  : NVIDIA L40S-3B\n'));
    assert.deepEqual(creatable(lab, 0), ALL_IDS);
    assert.equal(
      errnoOf(() => lab.port.write(nv(0, 'creatable_vgpu_types'), '1')),
      'EACCES',
    );
    assert.equal(lab.port.read(nv(0, 'current_vgpu_type')), '0\n');
    assert.equal(lab.port.read(nv(0, 'warm_update')), '0\n');
  });

  it('current_vgpu_type: decimal only, EPERM for 0 without a vGPU and for a type over a vGPU', () => {
    const lab = l40s();
    const cur = nv(0, 'current_vgpu_type');
    for (const bad of ['L40S-12Q', '0x481', '1153q', '1.5', ' 1153', '1153\n\n']) {
      assert.equal(
        errnoOf(() => lab.port.write(cur, bad)),
        'EINVAL',
        JSON.stringify(bad),
      );
    }
    assert.equal(
      errnoOf(() => lab.port.write(cur, '99999999999999999999')),
      'ERANGE',
    );
    assert.equal(
      errnoOf(() => lab.port.write(cur, '0')),
      'EPERM',
    );
    lab.port.write(cur, '+1153\n');
    assert.equal(lab.port.read(cur), '1153\n');
    assert.equal(
      errnoOf(() => lab.port.write(cur, '1153')),
      'EPERM',
      'the same type again',
    );
    assert.equal(
      errnoOf(() => lab.port.write(cur, '1147')),
      'EPERM',
      'another type over it',
    );
    lab.port.write(cur, '0');
    assert.equal(lab.port.read(cur), '0\n');
  });

  it('a type that cannot be made now is EIO, with the reason in the kernel log', () => {
    const lab = l40s();
    for (const id of ['9999', '-1', '605']) {
      assert.equal(
        errnoOf(() => lab.port.write(nv(0, 'current_vgpu_type'), id)),
        'EIO',
        id,
      );
    }
    assert.match(
      lab.kernel.dmesg().at(-1)!.message,
      /failed to create vGPU type 605: .*not a type/,
    );
    assert.equal(lab.port.read(nv(0, 'current_vgpu_type')), '0\n');
  });

  it('one framebuffer size per GPU: Q and A of that size mix; siblings list only what fits', () => {
    const lab = l40s();
    lab.port.write(nv(0, 'current_vgpu_type'), '1153'); // 12Q
    assert.deepEqual(creatable(lab, 0), [], 'a VF with a vGPU takes nothing else');
    assert.equal(lab.port.read(nv(1, 'creatable_vgpu_types')).split('\n')[0], 'ID    : vGPU Name');
    assert.deepEqual(creatable(lab, 1), [1153, 1163], '12Q and 12A only');
    assert.equal(
      errnoOf(() => lab.port.write(nv(1, 'current_vgpu_type'), '1155')),
      'EIO',
      '24Q',
    );
    assert.match(lab.kernel.dmesg().at(-1)!.message, /runs 12 GB vGPUs/);
    lab.port.write(nv(1, 'current_vgpu_type'), '1163'); // 12A beside 12Q
    lab.port.write(nv(2, 'current_vgpu_type'), '1153');
    assert.deepEqual(creatable(lab, 3), [1153, 1163]);
    lab.port.write(nv(3, 'current_vgpu_type'), '1153');
    // 48 GB taken: every free VF lists the header only.
    for (let i = 4; i < 32; i++) {
      assert.equal(lab.port.read(nv(i, 'creatable_vgpu_types')), 'ID    : vGPU Name\n');
    }
    assert.equal(
      errnoOf(() => lab.port.write(nv(4, 'current_vgpu_type'), '1153')),
      'EIO',
    );
    lab.port.write(nv(2, 'current_vgpu_type'), '0');
    assert.deepEqual(creatable(lab, 4), [1153, 1163], 'room again');
    for (const i of [0, 1, 3]) lab.port.write(nv(i, 'current_vgpu_type'), '0');
    assert.deepEqual(creatable(lab, 4), ALL_IDS, 'an idle GPU takes any size again');
  });

  it('VFs bound the count: 32 vGPUs of 1 GB, not 48', () => {
    const lab = l40s();
    for (let i = 0; i < 32; i++) lab.port.write(nv(i, 'current_vgpu_type'), '1147');
    assert.equal(lab.port.read(nv(31, 'placement_id')), '31\n');
  });

  it('vgpu_params, gpu_instance_id, placement_id: ENXIO until a vGPU exists', () => {
    const lab = l40s();
    for (const f of ['vgpu_params', 'gpu_instance_id', 'placement_id']) {
      assert.equal(
        errnoOf(() => lab.port.read(nv(5, f))),
        'ENXIO',
        f,
      );
    }
    assert.equal(
      errnoOf(() => lab.port.write(nv(5, 'vgpu_params'), 'frame_rate_limiter=0')),
      'ENXIO',
    );
    lab.port.write(nv(4, 'current_vgpu_type'), '1155'); // 24Q at 0
    lab.port.write(nv(5, 'current_vgpu_type'), '1165'); // 24A at 24
    assert.equal(lab.port.read(nv(4, 'placement_id')), '0\n');
    assert.equal(lab.port.read(nv(5, 'placement_id')), '24\n');
    assert.equal(lab.port.read(nv(5, 'vgpu_params')), '\n');
    // The L40S has no MIG: a time-sliced vGPU has no GPU instance.
    assert.equal(
      errnoOf(() => lab.port.read(nv(5, 'gpu_instance_id'))),
      'ENXIO',
    );
    assert.equal(
      errnoOf(() => lab.port.write(nv(5, 'gpu_instance_id'), '0')),
      'ENXIO',
    );
    lab.port.write(nv(5, 'vgpu_params'), 'frame_rate_limiter=0,disable_vnc=1\n');
    assert.equal(lab.port.read(nv(5, 'vgpu_params')), 'frame_rate_limiter=0,disable_vnc=1\n');
    assert.equal(
      errnoOf(() => lab.port.write(nv(5, 'vgpu_params'), 'fast please')),
      'EINVAL',
    );
    lab.port.write(nv(5, 'vgpu_params'), ' \n'); // a blank clears
    assert.equal(lab.port.read(nv(5, 'vgpu_params')), '\n');
    lab.port.write(nv(5, 'vgpu_params'), 'frame_rate_limiter=0');
    lab.port.write(nv(5, 'current_vgpu_type'), '0');
    assert.equal(
      errnoOf(() => lab.port.read(nv(5, 'vgpu_params'))),
      'ENXIO',
      'gone with the vGPU',
    );
    lab.port.write(nv(5, 'current_vgpu_type'), '1155');
    assert.equal(lab.port.read(nv(5, 'vgpu_params')), '\n', 'a new vGPU starts without');
    assert.equal(
      errnoOf(() => lab.port.write(nv(5, 'warm_update'), '2')),
      'EINVAL',
    );
    lab.port.write(nv(5, 'warm_update'), '1');
    assert.equal(lab.port.read(nv(5, 'warm_update')), '1\n');
  });

  it('placement_id moves a vGPU to another free aligned placement before a VM opens it', () => {
    const lab = l40s();
    lab.port.write(nv(0, 'current_vgpu_type'), '1154'); // 16Q at 0
    lab.port.write(nv(1, 'current_vgpu_type'), '1154'); // at 16
    assert.equal(
      errnoOf(() => lab.port.write(nv(1, 'placement_id'), '8')),
      'EINVAL',
      'not aligned',
    );
    assert.equal(
      errnoOf(() => lab.port.write(nv(1, 'placement_id'), '48')),
      'EINVAL',
      'past the end',
    );
    assert.equal(
      errnoOf(() => lab.port.write(nv(1, 'placement_id'), '0')),
      'EBUSY',
      'taken',
    );
    lab.port.write(nv(1, 'placement_id'), '32');
    assert.equal(lab.port.read(nv(1, 'placement_id')), '32\n');
    lab.port.write(nv(2, 'current_vgpu_type'), '1154');
    assert.equal(lab.port.read(nv(2, 'placement_id')), '16\n', 'the freed placement');
    lab.port.write(nv(2, 'current_vgpu_type'), '0');
    lab.open('0000:41:00.5');
    assert.equal(
      errnoOf(() => lab.port.write(nv(1, 'placement_id'), '16')),
      'EBUSY',
      'open',
    );
    lab.close('0000:41:00.5');
  });

  it('opened by a VM: ENODEV without a vGPU; then EBUSY for the type and vgpu_params', () => {
    const lab = l40s();
    assert.equal(
      errnoOf(() => lab.open('0000:41:00.4')),
      'ENODEV',
    );
    assert.match(lab.kernel.dmesg().at(-1)!.message, /current_vgpu_type of VF not configured/);
    lab.port.write(nv(0, 'current_vgpu_type'), '1156'); // 48Q
    assert.equal(lab.open('0000:41:00.4'), 1);
    assert.equal(lab.open('0000:41:00.4'), 2, 'opens nest');
    assert.equal(
      errnoOf(() => lab.port.write(nv(0, 'current_vgpu_type'), '0')),
      'EBUSY',
    );
    assert.equal(
      errnoOf(() => lab.port.write(nv(0, 'current_vgpu_type'), '1156')),
      'EBUSY',
    );
    assert.equal(
      errnoOf(() => lab.port.write(nv(0, 'vgpu_params'), 'frame_rate_limiter=0')),
      'EBUSY',
    );
    lab.close('0000:41:00.4');
    assert.equal(
      errnoOf(() => lab.port.write(nv(0, 'current_vgpu_type'), '0')),
      'EBUSY',
      'still one user',
    );
    lab.close('0000:41:00.4');
    assert.equal(
      errnoOf(() => lab.close('0000:41:00.4')),
      'EINVAL',
      'not open',
    );
    lab.port.write(nv(0, 'current_vgpu_type'), '0');
    assert.equal(
      errnoOf(() => lab.open('0000:41:00.3')),
      'ENODEV',
      'not a VFIO device',
    );
  });
});

describe('nvidia-l40s: heterogeneous (mixed-size) mode', () => {
  it('mixes sizes in aligned placements, so the order of creation matters', () => {
    const lab = l40s({ heterogeneous: true });
    lab.port.write(nv(0, 'current_vgpu_type'), '1154'); // 16Q at 0
    assert.ok(creatable(lab, 1).includes(1155), '24Q fits beside it');
    lab.port.write(nv(1, 'current_vgpu_type'), '1155'); // 24Q at 24
    assert.equal(lab.port.read(nv(1, 'placement_id')), '24\n');
    lab.port.write(nv(2, 'current_vgpu_type'), '1152'); // 8Q at 16
    assert.equal(lab.port.read(nv(2, 'placement_id')), '16\n');
    // 48 GB used: nothing fits, not even 1 GB.
    assert.deepEqual(creatable(lab, 3), []);
    lab.port.write(nv(0, 'current_vgpu_type'), '0'); // 16 GB free at 0..15
    assert.deepEqual(
      creatable(lab, 3).filter((id) => id >= 1147 && id <= 1156),
      [1147, 1148, 1149, 1150, 1151, 1152, 1153, 1154],
      'up to 16 GB; 12Q fits at 0',
    );
    lab.port.write(nv(0, 'current_vgpu_type'), '1150'); // 4Q at 0
    assert.ok(!creatable(lab, 3).includes(1154), 'no aligned 16 GB run left');
    assert.ok(creatable(lab, 3).includes(1152), '8Q at 8');
  });

  it('is off by default: the profile chooses it', () => {
    const lab = l40s();
    lab.port.write(nv(0, 'current_vgpu_type'), '1154');
    assert.equal(
      errnoOf(() => lab.port.write(nv(1, 'current_vgpu_type'), '1155')),
      'EIO',
    );
  });
});
