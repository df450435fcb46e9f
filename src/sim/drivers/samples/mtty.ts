import { z } from 'zod';
import { ErrnoError } from '../../../common/errno.js';
import type { MdevDriver, MdevTypeSpec } from '../../core/driver.js';
import type { MdevType } from '../../core/mdev-core.js';
import { defineDriverModule } from '../module.js';

/**
 * samples/vfio-mdev/mtty.c: a virtual serial card. Two types draw on one
 * pool of ports (MAX_MTTYS, 24): mtty-1 takes one port, mtty-2 two. The
 * driver counts (get_available), so a short pool fails probe with ENOSPC.
 */
interface MttyType extends MdevTypeSpec {
  readonly nrPorts: number;
}

const TYPES: readonly MttyType[] = [
  { sysfsName: '1', prettyName: 'Single port serial', nrPorts: 1 },
  { sysfsName: '2', prettyName: 'Dual port serial', nrPorts: 2 },
];

export const mttyModule = defineDriverModule({
  name: 'mtty',
  summary: 'kernel sample: virtual serial ports (mtty-1, mtty-2) from a pool of ports',
  options: z.strictObject({
    ports: z.number().int().min(1).max(1_000_000).default(24),
  }),
  load({ kernel, core }, options) {
    let availPorts = options.ports;
    const portsOf = (t: MdevType): number => (t.spec as MttyType).nrPorts;
    const driver: MdevDriver = {
      name: 'mtty',
      deviceApi: 'vfio-pci',
      getAvailable: (t) => Math.floor(availPorts / portsOf(t)),
      probe(mdev) {
        const need = portsOf(mdev.type);
        if (availPorts < need) {
          throw new ErrnoError(
            'ENOSPC',
            undefined,
            undefined,
            `mtty: ${availPorts} ports left, ${mdev.type.id} needs ${need}`,
          );
        }
        availPorts -= need;
      },
      remove(mdev) {
        availPorts += portsOf(mdev.type); // pairs with probe
      },
      deviceGroups: (mdev) => [
        {
          name: 'vendor',
          attrs: [
            { name: 'sample_mdev_dev', mode: 0o444, show: () => `This is MDEV ${mdev.uuid}\n` },
          ],
        },
      ],
    };
    const dev = kernel.addDevice('/sys/devices/virtual/mtty/mtty', 'mtty', { class: 'mtty' });
    const parent = core.registerParent(dev, driver, TYPES);
    return {
      parents: [parent.name],
      unload() {
        core.unregisterParent(parent);
        kernel.removeDevice(dev, { class: 'mtty' });
      },
    };
  },
});
