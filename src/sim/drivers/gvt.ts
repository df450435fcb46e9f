import { z } from 'zod';
import { ErrnoError } from '../../common/errno.js';
import type { MdevDriver, MdevTypeSpec } from '../core/driver.js';
import type { MdevDevice } from '../core/mdev-core.js';
import { addPciFunction } from '../core/pci.js';
import { defineDriverModule } from './module.js';

/**
 * Intel GVT-g (drivers/gpu/drm/i915/gvt, seed 001): the integrated GPU at
 * 0000:00:02.0 shares its global graphics memory (GGTT) and fence registers
 * among vGPUs. Facts from the kernel:
 *  - the type table of vgpu.c: GVTg_V5_8/4/2/1 take 64/128/256/512 MB of
 *    low (aperture-mappable) graphics memory, 384/512/1024/2048 MB of high
 *    (hidden) memory, 4 fences each, weight 16/n, EDID 1024x768 for _8
 *    and 1920x1200 for the others; V5 is the Skylake-class generation;
 *  - the host keeps 128 MB low, 384 MB high and 4 fences (gvt.h,
 *    HOST_LOW_GM_SIZE, HOST_HIGH_GM_SIZE, HOST_FENCE); the GGTT spans 4 GB,
 *    of which the aperture (a BIOS setting) is the low part; gen9 has 32
 *    fences;
 *  - a type is registered only if its low memory fits the budget at all
 *    (intel_gvt_init_vgpu_types stops at the first that does not);
 *  - available_instances = min(low left / low, high left / high,
 *    fences left / fence) — one shared budget, so types mix;
 *  - a short budget fails create with ENOSPC (intel_vgpu_alloc_resource);
 *  - type dirs are "i915-GVTg_V5_4" (the parent's driver name plus the
 *    type name, which `name` also shows); `description` is kvmgt.c's
 *    "low_gm_size: 128MB\nhigh_gm_size: 512MB\nfence: 4\nresolution:
 *    1920x1200\nweight: 4\n".
 *
 * With the default 1024 MB aperture all four types register and a fresh
 * GPU offers V5_8: 7, V5_4: 5, V5_2: 2, V5_1: 1 (a 256 MB aperture, common
 * on desktops, offers only V5_8: 2 and V5_4: 1).
 *
 * Aggregation (seed 001, the series "drm/i915/gvt: Add new type with
 * aggregation support"): a device may hold n instances' worth of its type —
 * n times the memory and fences — and its scheduling weight scales with n.
 * Legal weights are 1..16 (VGPU_MAX_WEIGHT), so a type of weight w
 * aggregates up to 16/w: V5_8 up to 8, V5_4 up to 4, V5_2 up to 2; V5_1
 * already has the whole weight and does not aggregate.
 */

interface GvtType extends MdevTypeSpec {
  readonly lowMb: number;
  readonly highMb: number;
  readonly fences: number;
  readonly weight: number;
  readonly resolution: string;
}

const VGPU_MAX_WEIGHT = 16;
const HOST_LOW_GM_MB = 128;
const HOST_HIGH_GM_MB = 384;
const HOST_FENCES = 4;
const GGTT_MB = 4096;
const GEN9_FENCES = 32;

/** vgpu.c's table, in its order (the order types register in). */
const TYPES: readonly GvtType[] = [
  gvtType('8', 64, 384, '1024x768'),
  gvtType('4', 128, 512, '1920x1200'),
  gvtType('2', 256, 1024, '1920x1200'),
  gvtType('1', 512, 2048, '1920x1200'),
];

function gvtType(share: string, lowMb: number, highMb: number, resolution: string): GvtType {
  const name = `GVTg_V5_${share}`;
  return {
    sysfsName: name,
    prettyName: name,
    lowMb,
    highMb,
    fences: 4,
    weight: VGPU_MAX_WEIGHT / Number(share),
    resolution,
  };
}

const gvtTypeOf = (mdev: MdevDevice): GvtType => mdev.type.spec as GvtType;

/** Skylake GT2 server graphics (HD Graphics P530), a GVT-g V5 part. */
const IGD_PCI = {
  address: '0000:00:02.0',
  vendor: 0x8086,
  device: 0x191d,
  subsystemVendor: 0x8086,
  subsystemDevice: 0x2063,
  classCode: 0x030000,
  revision: 0x06,
  driver: 'i915',
  // On-die graphics: a root complex integrated endpoint, no link.
  express: { type: 'rc-integrated' },
} as const;

export const gvtModule = defineDriverModule({
  name: 'gvt',
  summary:
    'Intel GVT-g on 0000:00:02.0 (i915-GVTg_V5_1..8): one shared graphics memory budget, aggregation',
  options: z.strictObject({
    /** Aperture (mappable GGTT) size in MB, as set in the BIOS. */
    aperture_mb: z
      .union([z.literal(256), z.literal(512), z.literal(1024), z.literal(2048)])
      .default(1024),
  }),
  load({ kernel, core }, opts) {
    // The budget vGPUs share (intel_gvt_update_vgpu_types' *_avail).
    const free = {
      lowMb: opts.aperture_mb - HOST_LOW_GM_MB,
      highMb: GGTT_MB - opts.aperture_mb - HOST_HIGH_GM_MB,
      fences: GEN9_FENCES - HOST_FENCES,
    };
    const fits = (t: GvtType): number =>
      Math.min(
        Math.floor(free.lowMb / t.lowMb),
        Math.floor(free.highMb / t.highMb),
        Math.floor(free.fences / t.fences),
      );
    /** Take (n > 0) or give back (n < 0) n instances' worth of `t`. */
    const claim = (t: GvtType, n: number): void => {
      free.lowMb -= n * t.lowMb;
      free.highMb -= n * t.highMb;
      free.fences -= n * t.fences;
    };
    const refuse = (mdev: MdevDevice, n: number): never => {
      const t = gvtTypeOf(mdev);
      throw new ErrnoError(
        'ENOSPC',
        undefined,
        undefined,
        `gvt: ${n} x ${t.sysfsName} needs ${n * t.lowMb}MB low / ${n * t.highMb}MB high gm, ` +
          `${n * t.fences} fences; ${free.lowMb}MB / ${free.highMb}MB / ${free.fences} left`,
      );
    };

    const driver: MdevDriver = {
      name: 'i915',
      mdevDriverName: 'intel_vgpu_mdev', // kvmgt.c's mdev_driver
      deviceApi: 'vfio-pci',
      getAvailable: (type) => fits(type.spec as GvtType),
      showDescription(type) {
        const t = type.spec as GvtType;
        return (
          `low_gm_size: ${t.lowMb}MB\nhigh_gm_size: ${t.highMb}MB\n` +
          `fence: ${t.fences}\nresolution: ${t.resolution}\nweight: ${t.weight}\n`
        );
      },
      probe(mdev) {
        const t = gvtTypeOf(mdev);
        if (fits(t) < 1) refuse(mdev, 1);
        claim(t, 1);
      },
      remove(mdev) {
        claim(gvtTypeOf(mdev), -mdev.aggregation); // pairs with probe and every resize
      },
      aggregation: {
        maxFor: (type) => VGPU_MAX_WEIGHT / (type.spec as GvtType).weight,
        resize(mdev, from, to) {
          const t = gvtTypeOf(mdev);
          if (to > from && fits(t) < to - from) refuse(mdev, to - from);
          claim(t, to - from);
        },
      },
    };

    const fn = addPciFunction(kernel, IGD_PCI);
    // intel_gvt_init_vgpu_types: register types while their low memory fits.
    const firstTooBig = TYPES.findIndex((t) => t.lowMb > free.lowMb);
    const types = firstTooBig === -1 ? TYPES : TYPES.slice(0, firstTooBig);
    const parent = core.registerParent(fn.node, driver, types);
    return {
      parents: [parent.name],
      unload() {
        core.unregisterParent(parent);
        fn.remove();
      },
    };
  },
});
