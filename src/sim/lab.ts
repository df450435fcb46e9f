import * as os from 'node:os';
import { fail } from '../common/errno.js';
import type { SysfsPort } from '../port/sysfs-port.js';
import { EmulatedKernel } from './core/kernel.js';
import { MdevCore, type MdevDevice } from './core/mdev-core.js';
import { addSystemDevices } from './core/system.js';
import type { LoadedDriver } from './drivers/module.js';
import { driverModule } from './drivers/registry.js';
import { DEFAULT_PROFILE, loadProfile, type HostProfile } from './profiles/profile.js';
import { TreeSysfsPort } from './sysfs/tree-port.js';

/**
 * An emulated host built from a profile: the kernel, the mdev core and the
 * loaded driver models, plus the emulator's control interface (what a VM or
 * a hot-plug would do, which no management tool may do: open/close a
 * device, unplug/replug parents). Management code gets `port` and nothing else.
 */
export class Lab {
  readonly kernel = new EmulatedKernel();
  readonly core = new MdevCore(this.kernel);
  readonly port: SysfsPort = new TreeSysfsPort(this.kernel.tree);
  #loaded: LoadedDriver[] = [];

  constructor(readonly profile: HostProfile) {
    // The host's processors and memory, sized after the machine the lab
    // runs on: a VM started on the lab must get CPUs that exist.
    addSystemDevices(this.kernel, {
      cpus: os.availableParallelism(),
      memoryKiB: Math.floor(os.totalmem() / 1024),
      freeKiB: Math.floor(os.freemem() / 1024),
    });
    this.plugAll();
  }

  static fromProfile(nameOrPath: string = DEFAULT_PROFILE): Lab {
    return new Lab(loadProfile(nameOrPath));
  }

  /** Load every driver of the profile (module init): parents register. */
  plugAll(): void {
    if (this.#loaded.length > 0) return;
    for (const entry of this.profile.devices) {
      const mod = driverModule(entry.driver);
      if (mod === undefined) fail('ENODEV', `no driver model '${entry.driver}'`);
      this.#loaded.push(mod.load({ kernel: this.kernel, core: this.core }, entry.options));
    }
  }

  /** Unload every driver (module exit): devices and parents vanish. */
  unplugAll(): void {
    for (const l of this.#loaded.reverse()) l.unload();
    this.#loaded = [];
  }

  /** Power cycle: every active device is gone; parents register again. */
  reboot(): void {
    this.unplugAll();
    this.plugAll();
  }

  /** Names of the registered mdev parents. */
  get parentNames(): string[] {
    return this.core.parents.map((p) => p.name);
  }

  #device(uuid: string): MdevDevice {
    return this.core.device(uuid) ?? fail('ENODEV', `no mediated device ${uuid}`);
  }

  /** A VM opens the device (VFIO open). */
  open(uuid: string): void {
    this.core.open(this.#device(uuid));
  }

  /** The VM lets go. */
  close(uuid: string): void {
    this.core.release(this.#device(uuid));
  }
}
