import { z } from 'zod';
import { fail } from '../../common/errno.js';
import type { DeviceNode } from '../core/kernel.js';
import type { MdevDriver } from '../core/driver.js';
import type { MdevParent } from '../core/mdev-core.js';
import { defineDriverModule } from './module.js';

/**
 * vfio-ccw (drivers/s390/cio/vfio_ccw_drv.c, vfio_ccw_ops.c): an s390 I/O
 * subchannel bound to vfio_ccw becomes an mdev parent with one type,
 * vfio_ccw-io ("I/O subchannel (Non-QDIO)", device_api vfio-ccw), and one
 * instance: the subchannel is passed through whole. The driver sets
 * max_instances = 1 and no get_available, so the core counts and a second
 * create says EUSERS. The driver has no description hook, so the type has
 * no `description` file.
 *
 * Subchannels live under /sys/devices/css0/<cssid>.<ssid>.<schno> on the
 * css bus. A subchannel's `type` is 0 (I/O) and its modalias "css:t0".
 */

/** The channel path the emulated subchannels use. */
const CHPID = '40';

/** Subchannel ids: "0.0.0313" — css id, subchannel-set id, 4 hex digits. */
const SCHID = /^[0-9a-f]\.[0-3]\.[0-9a-f]{4}$/;

export const vfioCcwModule = defineDriverModule({
  name: 'vfio-ccw',
  summary: 's390 vfio-ccw (vfio_ccw-io): one pass-through device per I/O subchannel',
  options: z.strictObject({
    /** I/O subchannels bound to vfio_ccw. */
    subchannels: z
      .array(z.string().regex(SCHID, 'a subchannel id such as 0.0.0313'))
      .min(1)
      .max(256)
      .refine((a) => new Set(a).size === a.length, 'subchannel ids must differ')
      .default(['0.0.0313', '0.0.0314']),
  }),
  load({ kernel, core }, opts) {
    const driver: MdevDriver = {
      name: 'vfio_ccw',
      mdevDriverName: 'vfio_ccw_mdev',
      deviceApi: 'vfio-ccw',
      maxInstances: 1,
      probe() {
        // Nothing to claim: the core's per-parent counter is the whole story.
      },
      remove() {},
    };
    const t = kernel.tree;
    kernel.addRootDevice('/sys/devices/css0'); // the channel subsystem
    // Channel path 0.40, a FICON channel all subchannels share (chp.c's `type`, in hex).
    const chp = kernel.addRootDevice(`/sys/devices/css0/chp0.${CHPID}`);
    if (chp.get('type') === undefined) {
      chp.attr('type', 0o444, { show: () => '1a\n' });
      chp.attr('status', 0o444, { show: () => 'online\n' });
    }
    t.mkdirp('/sys/bus/css/drivers/vfio_ccw');
    const subchannels: DeviceNode[] = [];
    const parents: MdevParent[] = [];
    const unload = (): void => {
      for (const p of parents) core.unregisterParent(p);
      for (const sch of subchannels) {
        kernel.unbindDriver(sch, 'css');
        kernel.removeDevice(sch, { bus: 'css' });
      }
      parents.length = 0;
      subchannels.length = 0;
    };
    try {
      for (const schid of opts.subchannels) {
        const path = `/sys/devices/css0/${schid}`;
        if (t.lookup(path) !== undefined) fail('EEXIST', `css: subchannel ${schid} exists`);
        // css_uevent: the subchannel type (0, I/O) and its modalias.
        const sch = kernel.addDevice(
          path,
          'css',
          { bus: 'css' },
          {
            busVars: () => [
              ['ST', '0'],
              ['MODALIAS', 'css:t0'],
            ],
          },
        );
        sch.dir.attr('type', 0o444, { show: () => '0\n' });
        sch.dir.attr('modalias', 0o444, { show: () => 'css:t0\n' });
        // The I/O device behind the subchannel, and its one channel path:
        // what QEMU's vfio-ccw reads to build the guest's subchannel
        // (css_sch_build_schib) and libvirt shows as <channel_dev_addr>.
        sch.dir.attr('dev_busid', 0o444, { show: () => `${schid}\n` });
        sch.dir.attr('pimpampom', 0o444, { show: () => '80 80 80\n' });
        sch.dir.attr('chpids', 0o444, { show: () => `${CHPID} 00 00 00 00 00 00 00 \n` });
        kernel.bindDriver(sch, 'css', 'vfio_ccw');
        subchannels.push(sch);
        parents.push(
          core.registerParent(sch, driver, [
            { sysfsName: 'io', prettyName: 'I/O subchannel (Non-QDIO)' },
          ]),
        );
      }
    } catch (err) {
      unload(); // a subchannel another entry of the profile already has: undo ours
      throw err;
    }
    return { parents: parents.map((p) => p.name), unload };
  },
});
