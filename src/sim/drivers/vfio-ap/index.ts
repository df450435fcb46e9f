import { z } from 'zod';
import type { MdevDriver } from '../../core/driver.js';
import type { MdevDevice } from '../../core/mdev-core.js';
import { defineDriverModule } from '../module.js';
import { ApBus } from './ap-bus.js';
import { fullMask, parseMaskStore } from './bitmap.js';
import { type MatrixDevice, VfioApMatrix } from './matrix.js';

/**
 * s390 vfio-ap (drivers/s390/crypto/vfio_ap_drv.c and vfio_ap_ops.c, with
 * the AP bus of ap_bus.c): crypto adapters and domains of the machine's AP
 * configuration, the host/guest split through /sys/bus/ap/apmask and
 * aqmask, and the matrix parent /sys/devices/vfio_ap/matrix whose one type,
 * vfio_ap-passthrough, makes empty matrix devices that are built up with
 * assign_/unassign_ attributes or one write of ap_config.
 */

/** MAX_ZDEV_ENTRIES_EXT: the kernel's limit on matrix devices (256 × 256). */
const KERNEL_MAX_MATRIX_DEVICES = 256 * 256;
/** What the parent's `features` file lists (vfio_ap_drv.c). */
const FEATURES = 'guest_matrix hotplug ap_config';

const apId = z.number().int().min(0).max(255);

const adapterSchema = z.strictObject({
  id: apId,
  type: z.enum(['CEX4', 'CEX5', 'CEX6', 'CEX7', 'CEX8']).default('CEX7'),
  /** cca: CCA coprocessor ("C"), ep11: EP11 coprocessor ("P"), accel: accelerator ("A"). */
  mode: z.enum(['cca', 'ep11', 'accel']).default('cca'),
});

const optionsSchema = z
  .strictObject({
    /** AP extended addressing: ids up to 255; without it 63 adapters and 15 domains. */
    apxa: z.boolean().default(true),
    adapters: z.array(adapterSchema).default([
      { id: 3, type: 'CEX7', mode: 'cca' },
      { id: 5, type: 'CEX8', mode: 'ep11' },
    ]),
    /** Usage domains of the LPAR's AP configuration. */
    domains: z.array(apId).default([6, 71]),
    /** Control domains of the configuration; the usage domains when absent. */
    controlDomains: z.array(apId).optional(),
    /** Boot value of /sys/bus/ap/apmask in the file's syntax (the ap.apmask= parameter). */
    apmask: z.string().optional(),
    /** Boot value of /sys/bus/ap/aqmask in the file's syntax (the ap.aqmask= parameter). */
    aqmask: z.string().optional(),
    /** available_instances of vfio_ap-passthrough when nothing is created. */
    maxMatrixDevices: z
      .number()
      .int()
      .min(1)
      .max(KERNEL_MAX_MATRIX_DEVICES)
      .default(KERNEL_MAX_MATRIX_DEVICES),
  })
  .superRefine((o, ctx) => {
    const maxAdapter = o.apxa ? 255 : 63;
    const maxDomain = o.apxa ? 255 : 15;
    const seen = new Set<number>();
    o.adapters.forEach((a, i) => {
      if (seen.has(a.id)) {
        ctx.addIssue({
          code: 'custom',
          path: ['adapters', i, 'id'],
          message: `adapter ${a.id} is listed twice`,
        });
      }
      seen.add(a.id);
      if (a.id > maxAdapter) {
        ctx.addIssue({
          code: 'custom',
          path: ['adapters', i, 'id'],
          message: `adapter ${a.id} is above the maximum ${maxAdapter}${o.apxa ? '' : ' (apxa is off)'}`,
        });
      }
    });
    for (const key of ['apmask', 'aqmask'] as const) {
      const text = o[key];
      if (text !== undefined && parseMaskStore(fullMask(), text) === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: `'${text}' is not a mask /sys/bus/ap/${key} would take ("0x" and hex digits, or "+N,-M" entries)`,
        });
      }
    }
    for (const key of ['domains', 'controlDomains'] as const) {
      (o[key] ?? []).forEach((d, i) => {
        if (d > maxDomain) {
          ctx.addIssue({
            code: 'custom',
            path: [key, i],
            message: `domain ${d} is above the maximum ${maxDomain}${o.apxa ? '' : ' (apxa is off)'}`,
          });
        }
      });
    }
  });

export const vfioApModule = defineDriverModule({
  name: 'vfio-ap',
  summary: 's390 vfio-ap: AP bus with apmask/aqmask and matrix devices of crypto queues',
  options: optionsSchema,
  load({ kernel, core }, options) {
    const bus = new ApBus(kernel, options);
    const matrix = new VfioApMatrix(kernel, bus);
    const state = (mdev: MdevDevice): MatrixDevice => mdev.driverData as MatrixDevice;

    const driver: MdevDriver = {
      name: 'vfio_ap',
      mdevDriverName: 'vfio_ap_mdev',
      deviceApi: 'vfio-ap',
      maxInstances: options.maxMatrixDevices,
      probe(mdev) {
        mdev.driverData = matrix.add(mdev.uuid);
      },
      remove(mdev) {
        matrix.delete(state(mdev)); // pairs with probe
      },
      deviceGroups: (mdev) => matrix.attributeGroups(state(mdev)),
      open(mdev) {
        matrix.open(state(mdev));
      },
      release(mdev) {
        matrix.release(state(mdev));
      },
    };

    // vfio_ap_drv.c: the root device "vfio_ap" and its "matrix" device on
    // the matrix bus, bound to the vfio_ap driver, which registers it as
    // the mdev parent.
    kernel.addRootDevice('/sys/devices/vfio_ap');
    const dev = kernel.addDevice('/sys/devices/vfio_ap/matrix', 'matrix', { bus: 'matrix' });
    kernel.bindDriver(dev, 'matrix', 'vfio_ap');
    dev.dir.attr('features', 0o444, { show: () => `${FEATURES}\n` });
    bus.registerNonDefaultDriver(matrix);
    const parent = core.registerParent(dev, driver, [
      { sysfsName: 'passthrough', prettyName: 'VFIO AP Passthrough Device' },
    ]);

    return {
      parents: [parent.name],
      unload() {
        core.unregisterParent(parent);
        bus.unregisterNonDefaultDriver();
        kernel.unbindDriver(dev, 'matrix');
        kernel.removeDevice(dev, { bus: 'matrix' });
        kernel.tree.dirAt('/sys/devices').remove('vfio_ap');
        kernel.tree.dirAt('/sys/bus').remove('matrix');
        bus.teardown();
      },
    };
  },
});
