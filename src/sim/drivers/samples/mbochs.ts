import { z } from 'zod';
import { ErrnoError } from '../../../common/errno.js';
import type { MdevDriver, MdevTypeSpec } from '../../core/driver.js';
import type { MdevType } from '../../core/mdev-core.js';
import { defineDriverModule } from '../module.js';

/**
 * samples/vfio-mdev/mbochs.c: a bochs-compatible display with a video
 * memory budget (module parameter max_mbytes, default 256). Types take 4,
 * 16 or 64 MB; the driver counts and a short budget fails with ENOSPC.
 */
interface MbochsType extends MdevTypeSpec {
  readonly mbytes: number;
}

const TYPES: readonly MbochsType[] = [
  { sysfsName: 'small', prettyName: 'mbochs-small', mbytes: 4 },
  { sysfsName: 'medium', prettyName: 'mbochs-medium', mbytes: 16 },
  { sysfsName: 'large', prettyName: 'mbochs-large', mbytes: 64 },
];

const mbytesOf = (t: MdevType): number => (t.spec as MbochsType).mbytes;

export const mbochsModule = defineDriverModule({
  name: 'mbochs',
  summary: 'kernel sample: bochs display (mbochs-small, -medium, -large) from a memory budget',
  options: z.strictObject({
    max_mbytes: z
      .number()
      .int()
      .min(1)
      .max(1 << 20)
      .default(256),
  }),
  load({ kernel, core }, options) {
    let availMbytes = options.max_mbytes;
    const driver: MdevDriver = {
      name: 'mbochs',
      deviceApi: 'vfio-pci',
      getAvailable: (t) => Math.floor(availMbytes / mbytesOf(t)),
      showDescription: (t) => `virtual display, ${mbytesOf(t)} MB video memory\n`,
      probe(mdev) {
        const need = mbytesOf(mdev.type);
        if (availMbytes < need) {
          throw new ErrnoError(
            'ENOSPC',
            undefined,
            undefined,
            `mbochs: ${availMbytes} MB left, ${mdev.type.id} needs ${need} MB`,
          );
        }
        availMbytes -= need;
      },
      remove(mdev) {
        availMbytes += mbytesOf(mdev.type); // pairs with probe
      },
      deviceGroups: (mdev) => [
        {
          name: 'vendor',
          attrs: [{ name: 'memory', mode: 0o444, show: () => `${mbytesOf(mdev.type)} MB\n` }],
        },
      ],
    };
    const dev = kernel.addDevice('/sys/devices/virtual/mbochs/mbochs', 'mbochs', {
      class: 'mbochs',
    });
    const parent = core.registerParent(dev, driver, TYPES);
    return {
      parents: [parent.name],
      unload() {
        core.unregisterParent(parent);
        kernel.removeDevice(dev, { class: 'mbochs' });
      },
    };
  },
});
