import { gvtModule } from './gvt.js';
import type { DriverModule } from './module.js';
import { nvidiaM60Module } from './nvidia-m60.js';
import { nvidiaL40sModule } from './nvidia-vgpu-vf/index.js';
import { mbochsModule } from './samples/mbochs.js';
import { mdpyModule } from './samples/mdpy.js';
import { mttyModule } from './samples/mtty.js';
import { siovModule } from './siov.js';
import { vfioCcwModule } from './vfio-ccw.js';
import { vfioApModule } from './vfio-ap/index.js';

/**
 * Every driver model a host profile can name. A new vendor driver adds its
 * module file under src/sim/drivers/ and one line here.
 */
export const DRIVER_MODULES: readonly DriverModule[] = [
  mttyModule,
  mdpyModule,
  mbochsModule,
  vfioApModule,
  nvidiaM60Module,
  gvtModule,
  siovModule,
  vfioCcwModule,
  nvidiaL40sModule,
];

export function driverModule(name: string): DriverModule | undefined {
  return DRIVER_MODULES.find((m) => m.name === name);
}
