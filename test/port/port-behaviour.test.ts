import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isErrnoCode } from '../../src/common/errno.js';
import { FsSysfsPort } from '../../src/port/fs-port.js';
import type { SysfsPort } from '../../src/port/sysfs-port.js';
import { requires } from '../support/capabilities.js';
import { labWith, uuidN } from '../support/labs.js';
import { FUSE_NEEDS, serveLab, writeProfile, type ServedLab } from '../fuse/served-lab.js';

/**
 * One behaviour suite, both port implementations: the in-process port on
 * the emulator's tree, and the node:fs port (FsSysfsPort) over the same
 * kind of lab served as a real FUSE mount by another process. Every
 * answer — contents, link targets, canonical paths, errno codes — must be
 * the same, which is what lets management code tested in process run on a
 * mounted lab (and, we hope, on a host) unchanged.
 */

const DEVICES = [
  { driver: 'mtty', options: { ports: 4 } },
  { driver: 'mdpy', options: { count: 2 } },
];
const MTTY = '/sys/class/mdev_bus/mtty/mdev_supported_types';
const MDPY = '/sys/class/mdev_bus/mdpy/mdev_supported_types';

const errnoOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return isErrnoCode(code) ? code : `not an errno: ${String(err)}`;
  }
};

interface PortUnderTest {
  name: string;
  needs: Record<string, boolean>;
  /** Set up in before(); returns the port and how to tear it down. */
  open(): Promise<{ port: SysfsPort; close(): Promise<void> }>;
}

const IMPLEMENTATIONS: PortUnderTest[] = [
  {
    name: 'in-process port (TreeSysfsPort)',
    needs: {},
    open: async () => ({ port: labWith(DEVICES).port, close: async () => {} }),
  },
  {
    name: 'node:fs port over a FUSE-served lab (FsSysfsPort)',
    needs: FUSE_NEEDS,
    async open() {
      const lab: ServedLab = await serveLab(['--profile', writeProfile(DEVICES)]);
      return { port: new FsSysfsPort(lab.dir), close: () => lab.close() };
    },
  },
];

for (const impl of IMPLEMENTATIONS) {
  describe(`sysfs port behaviour: ${impl.name}`, { concurrency: false }, () => {
    let port: SysfsPort;
    let close: (() => Promise<void>) | undefined;
    const usable = Object.values(impl.needs).every(Boolean);
    before(async () => {
      if (!usable) return;
      ({ port, close } = await impl.open());
    });
    after(() => close?.());
    const gate = (t: Parameters<typeof requires>[0]) =>
      requires(t, impl.needs, 'serves a lab over FUSE in a child process');

    it('finds parents, types and their attributes', (t) => {
      if (!gate(t)) return;
      assert.deepEqual(port.list('/sys/class/mdev_bus').sort(), ['mdpy', 'mtty']);
      assert.equal(port.kind('/sys/class/mdev_bus/mtty'), 'link');
      assert.equal(port.readlink('/sys/class/mdev_bus/mtty'), '../../devices/virtual/mtty/mtty');
      assert.equal(port.realpath('/sys/class/mdev_bus/mtty'), '/sys/devices/virtual/mtty/mtty');
      assert.deepEqual(port.list(MTTY).sort(), ['mtty-1', 'mtty-2']);
      assert.equal(port.kind(`${MTTY}/mtty-1`), 'dir');
      assert.equal(port.kind(`${MTTY}/mtty-1/create`), 'file');
      assert.equal(port.kind(`${MTTY}/mtty-1/nothing-here`), null);
      assert.equal(port.read(`${MTTY}/mtty-1/available_instances`), '4\n');
      assert.equal(port.read(`${MTTY}/mtty-2/available_instances`), '2\n');
      assert.equal(port.read(`${MTTY}/mtty-2/name`), 'Dual port serial\n');
      assert.equal(port.read(`${MTTY}/mtty-2/device_api`), 'vfio-pci\n');
      assert.deepEqual(port.list(`${MTTY}/mtty-1/devices`), []);
    });

    it('creates a device with its links, and removes it', (t) => {
      if (!gate(t)) return;
      const u = uuidN(1);
      port.write(`${MTTY}/mtty-2/create`, `${u.toUpperCase()}\n`);
      const dev = `/sys/bus/mdev/devices/${u}`;
      assert.deepEqual(port.list('/sys/bus/mdev/devices'), [u]);
      assert.equal(port.kind(dev), 'link');
      assert.equal(port.realpath(dev), `/sys/devices/virtual/mtty/mtty/${u}`);
      assert.equal(
        port.realpath(`${dev}/mdev_type`),
        `/sys/devices/virtual/mtty/mtty/mdev_supported_types/mtty-2`,
      );
      assert.equal(port.read(`${dev}/mdev_type/name`), 'Dual port serial\n');
      assert.match(port.realpath(`${dev}/iommu_group`), /^\/sys\/kernel\/iommu_groups\/\d+$/);
      assert.deepEqual(port.list(`${MTTY}/mtty-2/devices`), [u]);
      assert.equal(port.read(`${MTTY}/mtty-2/available_instances`), '1\n');
      assert.equal(port.read(`${MTTY}/mtty-1/available_instances`), '2\n', 'one pool of ports');
      assert.equal(
        errnoOf(() => port.write(`${MTTY}/mtty-1/create`, u)),
        'EEXIST',
      );
      port.write(`${dev}/remove`, '0');
      assert.equal(port.kind(dev), 'link', 'remove 0 does nothing');
      assert.equal(
        errnoOf(() => port.write(`${dev}/remove`, 'yes')),
        'EINVAL',
      );
      port.write(`${dev}/remove`, '1\n');
      assert.equal(port.kind(dev), null);
      assert.equal(
        errnoOf(() => port.read(`${dev}/remove`)),
        'ENOENT',
      );
      assert.deepEqual(port.list('/sys/bus/mdev/devices'), []);
      assert.equal(port.read(`${MTTY}/mtty-1/available_instances`), '4\n');
    });

    it('answers mistakes with the errno the kernel gives', (t) => {
      if (!gate(t)) return;
      const create = `${MTTY}/mtty-1/create`;
      assert.equal(
        errnoOf(() => port.read(create)),
        'EACCES',
      );
      assert.equal(
        errnoOf(() => port.write(`${MTTY}/mtty-1/available_instances`, '1')),
        'EACCES',
      );
      // An empty write succeeds without reaching the store (sysfs_kf_write).
      port.write(create, '');
      for (const bad of ['x', uuidN(1).slice(0, 35), `${uuidN(1)}\n\n`, `{${uuidN(1)}}`]) {
        assert.equal(
          errnoOf(() => port.write(create, bad)),
          'EINVAL',
          JSON.stringify(bad),
        );
      }
      assert.equal(
        errnoOf(() => port.write(create, 'x'.repeat(5000))),
        'E2BIG',
      );
      assert.equal(
        errnoOf(() => port.read(`${MTTY}/mtty-1/missing`)),
        'ENOENT',
      );
      assert.equal(
        errnoOf(() => port.read(`${MTTY}/mtty-1`)),
        'EISDIR',
      );
      assert.equal(
        errnoOf(() => port.list(`${MTTY}/mtty-1/name`)),
        'ENOTDIR',
      );
      assert.equal(
        errnoOf(() => port.readlink(`${MTTY}/mtty-1/name`)),
        'EINVAL',
      );
      assert.equal(
        errnoOf(() => port.realpath('/sys/bus/mdev/devices/missing')),
        'ENOENT',
      );
      assert.deepEqual(port.list('/sys/bus/mdev/devices'), []);
    });

    it("fills a type to zero with the driver's errno, and gives everything back", (t) => {
      if (!gate(t)) return;
      const cases = [
        { typeDir: `${MTTY}/mtty-1`, start: 4, full: 'ENOSPC' }, // the driver counts
        { typeDir: `${MDPY}/${port.list(MDPY).sort()[0]!}`, start: 2, full: 'EUSERS' }, // the core counts
      ];
      let n = 100;
      for (const c of cases) {
        const made: string[] = [];
        for (let left = c.start; left > 0; left--) {
          assert.equal(port.read(`${c.typeDir}/available_instances`), `${left}\n`);
          const u = uuidN(n++);
          port.write(`${c.typeDir}/create`, u);
          made.push(u);
        }
        assert.equal(port.read(`${c.typeDir}/available_instances`), '0\n');
        assert.equal(
          errnoOf(() => port.write(`${c.typeDir}/create`, uuidN(n++))),
          c.full,
        );
        assert.deepEqual(port.list(`${c.typeDir}/devices`).sort(), made.sort());
        for (const u of made) port.write(`/sys/bus/mdev/devices/${u}/remove`, '1');
        assert.equal(port.read(`${c.typeDir}/available_instances`), `${c.start}\n`);
      }
    });
  });
}
