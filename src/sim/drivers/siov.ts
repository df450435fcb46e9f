import { z } from 'zod';
import { ErrnoError } from '../../common/errno.js';
import type { MdevDriver, MdevTypeSpec } from '../core/driver.js';
import type { MdevDevice } from '../core/mdev-core.js';
import { addPciFunction, isPciAddress } from '../core/pci.js';
import { defineDriverModule } from './module.js';

/**
 * A Scalable-IOV queue device: the kind of device that motivated
 * aggregation in seed 001. Modelled on a DSA-like accelerator (Intel's
 * idxd): the parent PCI function has a pool of hardware work queues (64 by
 * default) and a mediated device is a set of them.
 *
 * Types take 1, 2 or 4 queues: idxd-1wq, idxd-2wq, idxd-4wq (the driver
 * name "idxd" as the PCI driver is called, the type name saying how many
 * work queues one instance holds). Every type aggregates through the
 * standard mdev/aggregation/ namespace, up to a per-device ceiling of
 * queues (16 by default, so 1wq aggregates to 16, 2wq to 8, 4wq to 4):
 * a device of type Nwq at aggregation k holds N*k queues.
 *
 * The device attribute `vendor/queues` lists the queue ids a device holds
 * in the kernel's list format ("0-3,8"). Queues are taken lowest id first;
 * lowering the aggregation gives back the highest ids the device holds, so
 * the ones a guest may already know stay put. A pool too short for a
 * create or a raise fails with ENOSPC.
 */

interface QueueType extends MdevTypeSpec {
  readonly queues: number;
}

const TYPES: readonly QueueType[] = [
  { sysfsName: '1wq', prettyName: 'DSA 1 work queue', queues: 1 },
  { sysfsName: '2wq', prettyName: 'DSA 2 work queues', queues: 2 },
  { sysfsName: '4wq', prettyName: 'DSA 4 work queues', queues: 4 },
];

/** Sapphire Rapids DSA (8086:0b25), a system peripheral. */
const DSA_PCI = {
  vendor: 0x8086,
  device: 0x0b25,
  subsystemVendor: 0x8086,
  subsystemDevice: 0x0000,
  classCode: 0x088000,
  driver: 'idxd',
  // Part of the CPU package: a root complex integrated endpoint, no link.
  express: { type: 'rc-integrated' },
} as const;

const queuesOf = (t: MdevTypeSpec): number => (t as QueueType).queues;
const heldOf = (mdev: MdevDevice): number[] => mdev.driverData as number[];

/** Sorted ids in the kernel's list format (bitmap_print_to_pagebuf): "0-3,8". */
export function formatIdList(ids: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < ids.length;) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j]! + 1) j++;
    parts.push(i === j ? `${ids[i]}` : `${ids[i]}-${ids[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

export const siovModule = defineDriverModule({
  name: 'siov',
  summary: 'SIOV queue device (idxd-1wq, -2wq, -4wq): work queues from a pool, aggregation',
  options: z
    .strictObject({
      address: z
        .string()
        .refine(isPciAddress, 'a PCI address such as 0000:6a:01.0')
        .default('0000:6a:01.0'),
      /** Hardware work queues of the device. */
      queues: z.number().int().min(1).max(1024).default(64),
      /** The most queues one mediated device may hold (the aggregation ceiling). */
      max_queues_per_device: z.number().int().min(1).max(1024).default(16),
    })
    .refine((o) => o.max_queues_per_device <= o.queues, {
      message: 'max_queues_per_device cannot exceed queues',
      path: ['max_queues_per_device'],
    }),
  load({ kernel, core }, opts) {
    /** free[q] is true while queue q belongs to no device. */
    const free = Array.from({ length: opts.queues }, () => true);
    let freeCount = opts.queues;

    /** The n lowest free queue ids, or ENOSPC having taken none. */
    const take = (mdev: MdevDevice, n: number): number[] => {
      if (freeCount < n) {
        throw new ErrnoError(
          'ENOSPC',
          undefined,
          undefined,
          `idxd: ${mdev.uuid} needs ${n} more work queues, ${freeCount} of ${opts.queues} free`,
        );
      }
      const got: number[] = [];
      for (let q = 0; got.length < n; q++) {
        if (free[q]) {
          free[q] = false;
          got.push(q);
        }
      }
      freeCount -= n;
      return got;
    };
    const giveBack = (ids: readonly number[]): void => {
      for (const q of ids) free[q] = true;
      freeCount += ids.length;
    };

    const driver: MdevDriver = {
      name: 'idxd',
      deviceApi: 'vfio-pci',
      getAvailable: (type) => Math.floor(freeCount / queuesOf(type.spec)),
      showDescription: (type) => `work_queues: ${queuesOf(type.spec)}\n`,
      probe(mdev) {
        mdev.driverData = take(mdev, queuesOf(mdev.type.spec));
      },
      remove(mdev) {
        giveBack(heldOf(mdev)); // pairs with probe and every resize
        mdev.driverData = [];
      },
      aggregation: {
        maxFor: (type) => Math.floor(opts.max_queues_per_device / queuesOf(type.spec)),
        resize(mdev, from, to) {
          const per = queuesOf(mdev.type.spec);
          const held = heldOf(mdev);
          if (to > from) {
            mdev.driverData = [...held, ...take(mdev, (to - from) * per)].sort((a, b) => a - b);
          } else {
            const keep = to * per;
            giveBack(held.slice(keep));
            mdev.driverData = held.slice(0, keep);
          }
        },
      },
      deviceGroups: (mdev) => [
        {
          name: 'vendor',
          attrs: [{ name: 'queues', mode: 0o444, show: () => `${formatIdList(heldOf(mdev))}\n` }],
        },
      ],
    };

    const fn = addPciFunction(kernel, { address: opts.address, ...DSA_PCI });
    const parent = core.registerParent(fn.node, driver, TYPES);
    return {
      parents: [parent.name],
      unload() {
        core.unregisterParent(parent);
        fn.remove();
      },
    };
  },
});
