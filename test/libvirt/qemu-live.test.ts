import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hasQemuS390x, hasQemuX86, requires } from '../support/capabilities.js';
import { MDEVKIT_BIN, runMdevkit } from '../support/cli.js';
import { FUSE_NEEDS, serveLab, type ServedLab } from '../fuse/served-lab.js';

/**
 * Real QEMU as the client of `mdevkit qemu-args`: for every device kind
 * the lab has, QEMU (run where /sys is the lab's, through `lab shell`)
 * accepts every property we emit, in the classic and the JSON syntax,
 * follows the device's iommu_group link and stops only where no VFIO
 * exists — at /dev/vfio/<the device's group>. An unknown property would
 * stop it earlier, by name.
 *
 * vfio-ap is the exception: the AP bus exists only when the CPU model has
 * the AP facility, which TCG does not offer, so QEMU stops at "No 'ap-bus'
 * bus found" before it looks at properties; for it we check that the
 * argument parses and that QEMU's vfio-ap has every property we set.
 */

const U_GVT = '7c1e4f1a-2b3c-4d5e-8f90-a1b2c3d4e5f6';
const U_TTY = '8d2f5a2b-3c4d-4e6f-9a01-b2c3d4e5f607';
const U_CCW = '9e3f6b3c-4d5e-4f70-8b12-c3d4e5f60718';
const U_AP = 'aa3f6b3c-4d5e-4f70-8b12-c3d4e5f60718';

const X86 = ['qemu-system-x86_64', '-machine', 'pc', '-accel', 'tcg'];
const S390X = ['qemu-system-s390x', '-machine', 's390-ccw-virtio', '-accel', 'tcg'];
const COMMON = ['-nodefaults', '-display', 'none', '-S', '-no-user-config'];

describe('real QEMU accepts what qemu-args emits, on the live lab', () => {
  let lab: ServedLab | undefined;
  before(async () => {
    if (!Object.values(FUSE_NEEDS).every(Boolean)) return;
    lab = await serveLab();
    for (const [uuid, parent, type] of [
      [U_GVT, '0000:00:02.0', 'i915-GVTg_V5_4'],
      [U_TTY, 'mtty', 'mtty-2'],
      [U_CCW, '0.0.0313', 'vfio_ccw-io'],
      [U_AP, 'matrix', 'vfio_ap-passthrough'],
    ] as const) {
      const r = runMdevkit(['start', '-u', uuid, '-p', parent, '-t', type, '--root', lab.dir]);
      assert.equal(r.status, 0, r.stderr);
    }
  });
  after(async () => lab?.close());

  /** The device's IOMMU group, from its link in the lab. */
  const group = (uuid: string): string =>
    path.basename(fs.readlinkSync(path.join(lab!.sys, 'bus/mdev/devices', uuid, 'iommu_group')));

  /** `mdevkit qemu-args` as an argv (no shell in between: --json gives both syntaxes). */
  const qemuArgs = (uuid: string, flags: string[], syntax: 'json' | 'classic'): string[] => {
    const r = runMdevkit(['qemu-args', uuid, ...flags, '--json', '--root', lab!.dir]);
    assert.equal(r.status, 0, r.stderr);
    const args = (JSON.parse(r.stdout) as Record<string, string[]>)[syntax]!;
    assert.equal(args[0], '-device', r.stdout);
    return args;
  };

  /** Run QEMU in the lab's namespace; its stderr. */
  const runQemu = (argv: string[]): string => {
    const r = spawnSync(
      process.execPath,
      [MDEVKIT_BIN, 'lab', 'shell', '--mount', lab!.dir, '--', 'timeout', '60', ...argv],
      { encoding: 'utf8' },
    );
    assert.notEqual(r.status, 0, 'QEMU cannot open VFIO here, so it must fail');
    return r.stderr;
  };

  const cases: { title: string; uuid: string; flags: string[] }[] = [
    { title: 'vfio-pci (GVT-g vGPU)', uuid: U_GVT, flags: [] },
    { title: 'vfio-pci with display', uuid: U_GVT, flags: ['--display'] },
    {
      title: 'vfio-pci-nohotplug with display and ramfb',
      uuid: U_GVT,
      flags: ['--display', '--ramfb'],
    },
    { title: 'vfio-pci (mtty serial card)', uuid: U_TTY, flags: [] },
  ];
  for (const c of cases) {
    for (const syntax of ['json', 'classic'] as const) {
      it(`${c.title}, ${syntax} syntax: gets as far as /dev/vfio/<group>`, (t) => {
        if (
          !requires(
            t,
            { ...FUSE_NEEDS, qemuX86: hasQemuX86 },
            'runs qemu-system-x86_64 (qemu-system-x86)',
          )
        )
          return;
        const args = qemuArgs(c.uuid, c.flags, syntax);
        const err = runQemu([...X86, ...COMMON, ...args]);
        assert.match(err, new RegExp(`failed to open /dev/vfio/${group(c.uuid)}\\b`), err);
        assert.doesNotMatch(err, /not found|Invalid parameter|Property .* not found/);
      });
    }
  }

  for (const syntax of ['json', 'classic'] as const) {
    it(`vfio-ccw, ${syntax} syntax: gets as far as /dev/vfio/<group>`, (t) => {
      if (
        !requires(
          t,
          { ...FUSE_NEEDS, qemuS390x: hasQemuS390x },
          'runs qemu-system-s390x (qemu-system-misc)',
        )
      )
        return;
      const args = qemuArgs(U_CCW, [], syntax);
      const err = runQemu([...S390X, ...COMMON, ...args]);
      assert.match(err, new RegExp(`failed to open /dev/vfio/${group(U_CCW)}\\b`), err);
    });

    it(`vfio-ap, ${syntax} syntax: parses, and QEMU's vfio-ap has every property set`, (t) => {
      if (
        !requires(
          t,
          { ...FUSE_NEEDS, qemuS390x: hasQemuS390x },
          'runs qemu-system-s390x (qemu-system-misc)',
        )
      )
        return;
      const args = qemuArgs(U_AP, [], syntax);
      const err = runQemu([...S390X, ...COMMON, ...args]);
      // Past parsing, stopped where TCG lacks the AP facility.
      assert.match(err, /No 'ap-bus' bus found for device 'vfio-ap'/, err);
      const help = spawnSync(S390X[0]!, ['-device', 'vfio-ap,help'], { encoding: 'utf8' });
      const props = new Set(
        [...`${help.stdout}${help.stderr}`.matchAll(/^\s+([a-z-]+)=/gm)].map((m) => m[1]),
      );
      const spec = args[1]!;
      const names = spec.startsWith('{')
        ? Object.keys(JSON.parse(spec) as Record<string, unknown>).filter((k) => k !== 'driver')
        : spec
            .split(',')
            .slice(1)
            .map((kv) => kv.split('=')[0]!);
      for (const name of names.filter((n) => n !== 'id')) {
        assert.ok(props.has(name), `vfio-ap has property ${name} (${[...props].join(' ')})`);
      }
    });
  }
});
