import type { z } from 'zod';
import type { EmulatedKernel } from '../core/kernel.js';
import type { MdevCore } from '../core/mdev-core.js';

/**
 * What the emulator needs to load a driver model from a host profile: a
 * schema for its options (checked when the profile is loaded, so a bad
 * profile names the field) and a function that creates its physical
 * device(s) and registers them as mdev parents — a kernel module's init.
 */
export interface DriverContext {
  readonly kernel: EmulatedKernel;
  readonly core: MdevCore;
}

/** One loaded instance: it can unplug (module exit) and plug again. */
export interface LoadedDriver {
  /** Names of the mdev parents this instance registered. */
  readonly parents: readonly string[];
  /** Unregister every parent (devices go away) and remove the physical devices. */
  unload(): void;
}

export interface DriverModule<O extends z.ZodType = z.ZodType> {
  /** Name used in profiles ("mtty", "nvidia-m60", ...). */
  readonly name: string;
  readonly summary: string;
  readonly options: O;
  load(ctx: DriverContext, options: z.output<O>): LoadedDriver;
}

/** Identity helper that keeps the option type of a module precise. */
export function defineDriverModule<O extends z.ZodType>(m: DriverModule<O>): DriverModule<O> {
  return m;
}
