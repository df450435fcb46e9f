import { z } from 'zod';
import type { MdevDriver, MdevTypeSpec } from '../../core/driver.js';
import type { MdevType } from '../../core/mdev-core.js';
import { defineDriverModule } from '../module.js';

/**
 * samples/vfio-mdev/mdpy.c: a virtual PCI display. Three resolutions share
 * one count of devices (module parameter `count`, default 4). The driver
 * sets max_instances and no get_available, so the core counts and refuses
 * the fifth device with EUSERS.
 */
interface MdpyType extends MdevTypeSpec {
  readonly width: number;
  readonly height: number;
}

const TYPES: readonly MdpyType[] = [
  { sysfsName: 'vga', prettyName: 'mdpy-vga', width: 640, height: 480 },
  { sysfsName: 'xga', prettyName: 'mdpy-xga', width: 1024, height: 768 },
  { sysfsName: 'hd', prettyName: 'mdpy-hd', width: 1920, height: 1080 },
];

const spec = (t: MdevType): MdpyType => t.spec as MdpyType;

export const mdpyModule = defineDriverModule({
  name: 'mdpy',
  summary: 'kernel sample: virtual PCI display (mdpy-vga, -xga, -hd) sharing a device count',
  options: z.strictObject({
    count: z.number().int().min(1).max(4096).default(4),
  }),
  load({ kernel, core }, options) {
    const driver: MdevDriver = {
      name: 'mdpy',
      deviceApi: 'vfio-pci',
      maxInstances: options.count,
      showDescription: (t) => `virtual display, ${spec(t).width}x${spec(t).height} framebuffer\n`,
      probe() {},
      remove() {},
      deviceGroups: (mdev) => [
        {
          name: 'vendor',
          attrs: [
            {
              name: 'resolution',
              mode: 0o444,
              show: () => `${spec(mdev.type).width}x${spec(mdev.type).height}\n`,
            },
          ],
        },
      ],
    };
    const dev = kernel.addDevice('/sys/devices/virtual/mdpy/mdpy', 'mdpy', { class: 'mdpy' });
    const parent = core.registerParent(dev, driver, TYPES);
    return {
      parents: [parent.name],
      unload() {
        core.unregisterParent(parent);
        kernel.removeDevice(dev, { class: 'mdpy' });
      },
    };
  },
});
