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
