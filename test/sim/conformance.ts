import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ErrnoCode } from '../../src/common/errno.js';
import { isErrnoCode } from '../../src/common/errno.js';
import { DRIVER_MODULES } from '../../src/sim/drivers/registry.js';
import type { Lab } from '../../src/sim/lab.js';
import type { SysfsPort } from '../../src/port/sysfs-port.js';
import { labWith, uuidN } from '../support/labs.js';

/**
 * The driver conformance suite: what every vendor driver model must honour
 * through sysfs, whatever its resources are (kernel ABI doc
 * sysfs-bus-vfio-mdev). Runs over the port only; each driver supplies how
 * to build a lab with it and which errno its "full" case uses.
 */
export interface ConformanceCase {
  /** Driver module name as profiles use it. */
  driver: string;
  /**
   * What the driver offers: mdev types (the default), or SR-IOV VFs that
   * each take one vGPU through a vendor attribute (NVIDIA's
   * current_vgpu_type), checked by the VF part of the suite instead.
   */
  sriovVgpu?: SriovVgpuCase;
  options?: Record<string, unknown>;
  /** The errno create gives when no instance is left, per type id (default EUSERS/ENOSPC). */
  exhaustedErrno?: (typeId: string) => ErrnoCode | readonly ErrnoCode[];
  /** Types to skip in the fill test (e.g. huge pools); reason required. */
  skipFill?: { types: string[]; reason: string };
  /** Make a device usable after create (e.g. vfio-ap needs nothing; default none). */
}

const read = (port: SysfsPort, p: string): string => port.read(p);
const errnoOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return isErrnoCode(code) ? code : `not an errno: ${String(err)}`;
  }
};

export function runConformance(c: ConformanceCase): void {
  if (c.sriovVgpu !== undefined) {
    runSriovVgpuConformance(c, c.sriovVgpu);
    return;
  }
  describe(`driver conformance: ${c.driver}`, () => {
    const fresh = (): Lab =>
      labWith([{ driver: c.driver, ...(c.options ? { options: c.options } : {}) }]);

    it('registers parents under /sys/class/mdev_bus with well-formed types', () => {
      const lab = fresh();
      const port = lab.port;
      const parents = port.list('/sys/class/mdev_bus');
      assert.ok(parents.length > 0, 'at least one parent');
      for (const p of parents) {
        assert.equal(port.kind(`/sys/class/mdev_bus/${p}`), 'link');
        assert.ok(
          !port.readlink(`/sys/class/mdev_bus/${p}`).startsWith('/'),
          'class link is relative',
        );
        const types = port.list(`/sys/class/mdev_bus/${p}/mdev_supported_types`);
        assert.ok(types.length > 0);
        for (const t of types) {
          const dir = `/sys/class/mdev_bus/${p}/mdev_supported_types/${t}`;
          const drvPrefix = t.slice(0, t.indexOf('-'));
          assert.ok(t.includes('-') && drvPrefix.length > 0, `type id ${t} is <driver>-<name>`);
          for (const f of ['create', 'name', 'device_api', 'available_instances', 'devices']) {
            assert.notEqual(port.kind(`${dir}/${f}`), null, `${dir}/${f} exists`);
          }
          assert.match(read(port, `${dir}/available_instances`), /^\d+\n$/);
          assert.match(read(port, `${dir}/device_api`), /^vfio-(pci|ccw|ap)\n$/);
          assert.match(read(port, `${dir}/name`), /^.+\n$/);
          assert.equal(
            errnoOf(() => port.read(`${dir}/create`)),
            'EACCES',
            'create is write-only',
          );
          assert.equal(
            errnoOf(() => port.write(`${dir}/available_instances`, '1')),
            'EACCES',
          );
          if (port.kind(`${dir}/description`) !== null) {
            assert.match(read(port, `${dir}/description`), /\S/);
          }
        }
      }
    });

    it('creates a device with the standard links and removes it', () => {
      const lab = fresh();
      const port = lab.port;
      const p = port.list('/sys/class/mdev_bus')[0]!;
      const t = firstCreatableType(port, p);
      const dir = `/sys/class/mdev_bus/${p}/mdev_supported_types/${t}`;
      const before = Number(read(port, `${dir}/available_instances`));
      const u = uuidN(1).toUpperCase();
      port.write(`${dir}/create`, `${u}\n`);
      const lower = u.toLowerCase();
      const dev = `/sys/bus/mdev/devices/${lower}`;
      assert.equal(port.kind(dev), 'link');
      assert.equal(port.realpath(`${dev}/mdev_type`), port.realpath(dir));
      assert.equal(
        port.realpath(dev).split('/').at(-2),
        port.realpath(`/sys/class/mdev_bus/${p}`).split('/').at(-1),
      );
      assert.deepEqual(port.list(`${dir}/devices`), [lower]);
      assert.match(port.realpath(`${dev}/iommu_group`), /^\/sys\/kernel\/iommu_groups\/\d+$/);
      assert.deepEqual(port.list(`${port.realpath(`${dev}/iommu_group`)}/devices`), [lower]);
      assert.equal(port.kind(`${dev}/driver`), 'link');
      assert.equal(
        errnoOf(() => port.read(`${dev}/remove`)),
        'EACCES',
      );
      assert.ok(Number(read(port, `${dir}/available_instances`)) <= before);
      // A UUID that exists anywhere on the host: EEXIST (either case).
      assert.equal(
        errnoOf(() => port.write(`${dir}/create`, lower)),
        'EEXIST',
      );
      // remove: 0 does nothing, garbage is EINVAL, 1 removes.
      port.write(`${dev}/remove`, '0');
      assert.equal(port.kind(dev), 'link');
      assert.equal(
        errnoOf(() => port.write(`${dev}/remove`, 'yes')),
        'EINVAL',
      );
      port.write(`${dev}/remove`, '1\n');
      assert.equal(port.kind(dev), null);
      assert.deepEqual(port.list(`${dir}/devices`), []);
      assert.equal(Number(read(port, `${dir}/available_instances`)), before);
    });

    it('rejects malformed UUIDs with EINVAL', () => {
      const lab = fresh();
      const port = lab.port;
      const p = port.list('/sys/class/mdev_bus')[0]!;
      const t = firstCreatableType(port, p);
      const create = `/sys/class/mdev_bus/${p}/mdev_supported_types/${t}/create`;
      // An empty write never reaches the store (sysfs_kf_write returns 0).
      port.write(create, '');
      for (const bad of [
        'x',
        uuidN(1).slice(0, 35),
        `${uuidN(1)}\n\n`,
        uuidN(1).replace(/-/g, 'x'),
        `{${uuidN(1)}}`,
      ]) {
        assert.equal(
          errnoOf(() => port.write(create, bad)),
          'EINVAL',
          JSON.stringify(bad),
        );
      }
      assert.deepEqual(port.list('/sys/bus/mdev/devices'), []);
    });

    it('fills every type to zero and fails with the driver errno, never below zero', () => {
      const lab = fresh();
      const port = lab.port;
      let n = 100;
      for (const p of port.list('/sys/class/mdev_bus')) {
        for (const t of port.list(`/sys/class/mdev_bus/${p}/mdev_supported_types`)) {
          if (c.skipFill?.types.includes(t)) continue;
          const dir = `/sys/class/mdev_bus/${p}/mdev_supported_types/${t}`;
          const created: string[] = [];
          let avail = Number(read(port, `${dir}/available_instances`));
          const start = avail;
          while (avail > 0) {
            const u = uuidN(n++);
            port.write(`${dir}/create`, u);
            created.push(u);
            const next = Number(read(port, `${dir}/available_instances`));
            assert.ok(
              next < avail,
              `${t}: available_instances drops after create (${avail} -> ${next})`,
            );
            avail = next;
            assert.ok(created.length <= 100000, 'bounded');
          }
          assert.equal(avail, 0);
          const code = errnoOf(() => port.write(`${dir}/create`, uuidN(n++)));
          const allowed = c.exhaustedErrno?.(t) ?? ['EUSERS', 'ENOSPC', 'ENOMEM'];
          assert.ok(
            (Array.isArray(allowed) ? allowed : [allowed]).includes(code as ErrnoCode),
            `${t}: full create fails with ${String(allowed)}, got ${code}`,
          );
          assert.equal(Number(read(port, `${dir}/available_instances`)), 0);
          for (const u of created) port.write(`/sys/bus/mdev/devices/${u}/remove`, '1');
          assert.equal(
            Number(read(port, `${dir}/available_instances`)),
            start,
            `${t}: all given back`,
          );
        }
      }
    });

    it('removes the devices of a parent that unregisters, and refuses create with ENODEV meanwhile', () => {
      const lab = fresh();
      const port = lab.port;
      const p = port.list('/sys/class/mdev_bus')[0]!;
      const t = firstCreatableType(port, p);
      port.write(`/sys/class/mdev_bus/${p}/mdev_supported_types/${t}/create`, uuidN(7));
      const events: string[] = [];
      lab.kernel.onUevent((e) => events.push(`${e.action} ${e.env['MDEV_STATE'] ?? e.subsystem}`));
      const heldType = lab.core.parent(p)!.types[0]!; // as a writer holding `create` open
      lab.unplugAll();
      assert.equal(
        errnoOf(() => lab.core.create(heldType, uuidN(8))),
        'ENODEV',
      );
      assert.deepEqual(port.list('/sys/bus/mdev/devices'), []);
      assert.deepEqual(port.list('/sys/class/mdev_bus'), []);
      assert.ok(events.includes('remove mdev'), `device removal announced: ${events.join(', ')}`);
      assert.ok(
        events.includes('change unregistered'),
        `unregistration announced: ${events.join(', ')}`,
      );
      lab.plugAll();
      assert.ok(port.list('/sys/class/mdev_bus').includes(p));
      assert.ok(events.includes('change registered'));
    });
  });
}

function firstCreatableType(port: SysfsPort, parent: string): string {
  for (const t of port.list(`/sys/class/mdev_bus/${parent}/mdev_supported_types`).sort()) {
    if (
      Number(
        port.read(`/sys/class/mdev_bus/${parent}/mdev_supported_types/${t}/available_instances`),
      ) > 0
    )
      return t;
  }
  throw new Error(`no creatable type on ${parent}`);
}

/** Every registered driver module must have a conformance case. */
export function assertAllDriversCovered(covered: string[]): void {
  it('covers every driver model in the registry', () => {
    assert.deepEqual(
      DRIVER_MODULES.map((m) => m.name).filter((n) => !covered.includes(n)),
      [],
      'add a conformance case for each new driver',
    );
  });
}

// ---- SR-IOV VF vGPUs ------------------------------------------------------------

/**
 * A driver whose vGPUs live on SR-IOV virtual functions rather than on the
 * mdev bus (NVIDIA's vendor-specific VFIO): where the model differs from
 * mdev, the suite checks the PCI core's SR-IOV ABI (sriov_* files,
 * virtfn/physfn links, the VFs' identity and IOMMU groups) and the vGPU
 * attribute protocol: a VF lists what it could take now, a write takes it,
 * 0 gives it back, and the listing is never wrong.
 */
export interface SriovVgpuCase {
  /** The machine action that enables every PF's VFs (the driver refuses raw writes). */
  enable(lab: Lab): void;
  disable(lab: Lab): void;
  /** The errno of a raw write to sriov_numvfs (ENOENT: the driver has no sriov_configure). */
  rawNumVfsErrno: ErrnoCode;
  /** The errno of a type id the VF does not list now. */
  notCreatableErrno: ErrnoCode;
  /** The VF's vendor directory: "nvidia". */
  group: string;
  /** The attribute that takes a type id, and the listing of creatable ones. */
  current: string;
  creatable: string;
}

const PCI = '/sys/bus/pci/devices';

function sriovPfs(port: SysfsPort): string[] {
  return port
    .list(PCI)
    .filter((a) => port.kind(`${PCI}/${a}/sriov_totalvfs`) === 'file')
    .sort();
}

function vfsOf(port: SysfsPort, pf: string): string[] {
  return port
    .list(`${PCI}/${pf}`)
    .filter((n) => /^virtfn\d+$/.test(n))
    .sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)))
    .map((n) => {
      const t = port.readlink(`${PCI}/${pf}/${n}`);
      return t.slice(t.lastIndexOf('/') + 1);
    });
}

/** The ids a listing names, after checking its format: the header, then "%-5d : %s" lines. */
function creatableIds(text: string): number[] {
  const lines = text.split('\n');
  assert.equal(lines[0], 'ID    : vGPU Name', 'the header line');
  assert.equal(lines.at(-1), '', 'ends with a newline');
  return lines.slice(1, -1).map((line) => {
    const m = /^(\d+)( *) : (\S.*)$/.exec(line);
    assert.ok(m !== null, `"%-5d : %s": ${JSON.stringify(line)}`);
    assert.equal(
      m[1]!.length + m[2]!.length,
      Math.max(5, m[1]!.length),
      `id left-justified in 5: ${line}`,
    );
    return Number(m[1]);
  });
}

export function runSriovVgpuConformance(c: ConformanceCase, v: SriovVgpuCase): void {
  describe(`driver conformance (SR-IOV vGPU): ${c.driver}`, () => {
    const fresh = (): Lab =>
      labWith([{ driver: c.driver, ...(c.options ? { options: c.options } : {}) }]);
    const file = (vf: string, name: string): string => `${PCI}/${vf}/${v.group}/${name}`;

    it('registers PFs with SR-IOV and no mdev types; VFs start disabled', () => {
      const lab = fresh();
      const port = lab.port;
      assert.deepEqual(port.list('/sys/class/mdev_bus'), [], 'no mdev parents');
      const pfs = sriovPfs(port);
      assert.ok(pfs.length > 0, 'at least one PF');
      for (const pf of pfs) {
        const d = `${PCI}/${pf}`;
        assert.equal(port.kind(`${d}/driver`), 'link', 'bound to its driver');
        assert.ok(Number(port.read(`${d}/sriov_totalvfs`)) >= 2);
        assert.equal(port.read(`${d}/sriov_numvfs`), '0\n');
        assert.equal(port.kind(`${d}/mdev_supported_types`), null);
        assert.equal(port.kind(`${d}/${v.group}`), null, 'the PF has no vGPU directory');
        assert.deepEqual(vfsOf(port, pf), []);
        assert.equal(
          errnoOf(() => port.write(`${d}/sriov_totalvfs`, '1')),
          'EACCES',
        );
      }
    });

    it("refuses raw sriov_numvfs writes with the kernel's errnos", () => {
      const lab = fresh();
      const port = lab.port;
      for (const pf of sriovPfs(port)) {
        const f = `${PCI}/${pf}/sriov_numvfs`;
        const total = Number(port.read(`${PCI}/${pf}/sriov_totalvfs`));
        assert.equal(
          errnoOf(() => port.write(f, 'many')),
          'EINVAL',
        );
        assert.equal(
          errnoOf(() => port.write(f, String(total + 1))),
          'ERANGE',
        );
        assert.equal(
          errnoOf(() => port.write(f, '70000')),
          'ERANGE',
        );
        port.write(f, '0'); // the current count: nothing to do
        assert.equal(
          errnoOf(() => port.write(f, '1')),
          v.rawNumVfsErrno,
        );
        assert.equal(port.read(f), '0\n', 'nothing changed');
      }
    });

    it('enables VFs with consistent links, identity, IOMMU groups and config space', () => {
      const lab = fresh();
      const port = lab.port;
      v.enable(lab);
      const groups = new Set<string>();
      for (const pf of sriovPfs(port)) {
        const d = `${PCI}/${pf}`;
        const total = Number(port.read(`${d}/sriov_totalvfs`));
        assert.equal(Number(port.read(`${d}/sriov_numvfs`)), total);
        const vfs = vfsOf(port, pf);
        assert.equal(vfs.length, total);
        const pfCfg = port.readBytes!(`${d}/config`);
        // The SR-IOV extended capability (id 0x10) at 0x100 agrees with the files.
        assert.equal(pfCfg.length, 4096);
        assert.equal(pfCfg.readUInt16LE(0x100), 0x0010);
        assert.equal(pfCfg.readUInt16LE(0x100 + 0x0e), total, 'TotalVFs');
        assert.equal(pfCfg.readUInt16LE(0x100 + 0x10), total, 'NumVFs');
        assert.equal(pfCfg.readUInt16LE(0x100 + 0x08) & 1, 1, 'VF Enable');
        assert.equal(
          pfCfg.readUInt16LE(0x100 + 0x1a),
          parseInt(port.read(`${d}/sriov_vf_device`), 16),
        );
        vfs.forEach((vf, i) => {
          const vd = `${PCI}/${vf}`;
          assert.equal(port.realpath(`${vd}/physfn`), port.realpath(d), `${vf} physfn`);
          assert.equal(port.realpath(`${d}/virtfn${i}`), port.realpath(vd));
          assert.equal(port.read(`${vd}/vendor`), port.read(`${d}/vendor`));
          assert.equal(
            port.read(`${vd}/device`),
            `0x${port.read(`${d}/sriov_vf_device`).trim()}\n`,
          );
          assert.equal(port.kind(`${vd}/driver`), 'link', 'bound');
          const cfg = port.readBytes!(`${vd}/config`);
          assert.equal(cfg.readUInt32LE(0), 0xffffffff, 'a VF reads 0xffff for its ids');
          const group = port.realpath(`${vd}/iommu_group`);
          assert.ok(!groups.has(group), `${vf} has its own IOMMU group`);
          groups.add(group);
          assert.deepEqual(port.list(`${group}/devices`), [vf]);
          assert.equal(port.kind(`${vd}/sriov_totalvfs`), null, 'a VF has no VFs');
          for (const [name, mode] of [
            [v.creatable, 'r'],
            [v.current, 'rw'],
          ] as const) {
            assert.equal(port.kind(file(vf, name)), 'file');
            if (mode === 'r')
              assert.equal(
                errnoOf(() => port.write(file(vf, name), '1')),
                'EACCES',
              );
          }
          assert.equal(port.read(file(vf, v.current)), '0\n');
        });
      }
      assert.deepEqual(port.list('/sys/class/mdev_bus'), [], 'still no mdev parents');
    });

    it('takes vGPUs until nothing fits, listing exactly what a write would take', () => {
      const lab = fresh();
      const port = lab.port;
      v.enable(lab);
      for (const pf of sriovPfs(port)) {
        const vfs = vfsOf(port, pf);
        const first = creatableIds(port.read(file(vfs[0]!, v.creatable)));
        assert.ok(first.length > 0, 'an idle GPU lists types');
        for (const type of first) {
          // Fill the GPU with one type; each write succeeds exactly when listed.
          const used: string[] = [];
          for (const vf of vfs) {
            const listed = creatableIds(port.read(file(vf, v.creatable)));
            if (!listed.includes(type)) {
              assert.equal(
                errnoOf(() => port.write(file(vf, v.current), String(type))),
                v.notCreatableErrno,
              );
              assert.equal(port.read(file(vf, v.current)), '0\n');
              continue;
            }
            port.write(file(vf, v.current), `${type}\n`);
            assert.equal(port.read(file(vf, v.current)), `${type}\n`);
            assert.deepEqual(
              creatableIds(port.read(file(vf, v.creatable))),
              [],
              'a VF with a vGPU takes no other',
            );
            used.push(vf);
          }
          assert.ok(used.length > 0, `type ${type} fits at least once`);
          for (const vf of vfs.filter((x) => !used.includes(x))) {
            assert.ok(
              !creatableIds(port.read(file(vf, v.creatable))).includes(type),
              'full: not listed',
            );
          }
          for (const vf of used) port.write(file(vf, v.current), '0');
          assert.deepEqual(
            creatableIds(port.read(file(vfs[0]!, v.creatable))),
            first,
            `${type}: all given back`,
          );
        }
      }
    });

    it('keeps the attribute protocol: EINVAL, EPERM, EBUSY while open, ENODEV opening an empty VF', () => {
      const lab = fresh();
      const port = lab.port;
      v.enable(lab);
      const pf = sriovPfs(port)[0]!;
      const [vf, other] = vfsOf(port, pf);
      const cur = file(vf!, v.current);
      const type = creatableIds(port.read(file(vf!, v.creatable)))[0]!;
      for (const bad of ['x', '', '12abc', '0x10', ' 5']) {
        if (bad === '') continue; // an empty write never reaches the store
        assert.equal(
          errnoOf(() => port.write(cur, bad)),
          'EINVAL',
          JSON.stringify(bad),
        );
      }
      assert.equal(
        errnoOf(() => port.write(cur, '0')),
        'EPERM',
        '0 without a vGPU',
      );
      assert.equal(
        errnoOf(() => lab.open(vf!)),
        'ENODEV',
        'an empty VF cannot be opened',
      );
      port.write(cur, String(type));
      assert.equal(
        errnoOf(() => port.write(cur, String(type))),
        'EPERM',
        'a type while one is set',
      );
      lab.open(vf!);
      assert.equal(
        errnoOf(() => port.write(cur, '0')),
        'EBUSY',
        'open by a VM',
      );
      assert.equal(port.read(cur), `${type}\n`);
      assert.equal(
        errnoOf(() => v.disable(lab)),
        'EBUSY',
        'VFs stay while a VM holds one',
      );
      lab.close(vf!);
      port.write(cur, '0');
      assert.equal(port.read(cur), '0\n');
      assert.equal(port.read(file(other!, v.current)), '0\n');
    });

    it('disables VFs and survives an unload and reload', () => {
      const lab = fresh();
      const port = lab.port;
      v.enable(lab);
      const pf = sriovPfs(port)[0]!;
      const vfs = vfsOf(port, pf);
      port.write(
        file(vfs[0]!, v.current),
        String(creatableIds(port.read(file(vfs[0]!, v.creatable)))[0]),
      );
      v.disable(lab);
      assert.deepEqual(vfsOf(port, pf), []);
      for (const vf of vfs) assert.equal(port.kind(`${PCI}/${vf}`), null);
      v.enable(lab);
      assert.equal(port.read(file(vfs[0]!, v.current)), '0\n', 'a VF comes back empty');
      lab.unplugAll();
      assert.equal(port.kind(`${PCI}/${pf}`), null);
      for (const vf of vfs) assert.equal(port.kind(`${PCI}/${vf}`), null);
      lab.plugAll();
      assert.equal(port.read(`${PCI}/${pf}/sriov_numvfs`), '0\n', 'VFs do not survive');
    });
  });
}
