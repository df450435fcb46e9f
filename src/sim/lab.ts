import * as os from 'node:os';
import { fail } from '../common/errno.js';
import type { SysfsPort } from '../port/sysfs-port.js';
import { EmulatedKernel } from './core/kernel.js';
import { MdevCore, type MdevDevice } from './core/mdev-core.js';
import { addSystemDevices } from './core/system.js';
import { isPciAddress } from './core/pci.js';
import { openVfioPci, releaseVfioPci, vfioPciDevice } from './core/vfio.js';
import type { LoadedDriver } from './drivers/module.js';
import { sriovManage, type SriovManageResult } from './drivers/nvidia-vgpu-vf/sriov-manage.js';
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
  /**
   * The machine's boot units that enable SR-IOV VFs (NVIDIA's
   * nvidia-sriov-manage@<gpu|ALL>.service): run again at every boot, since
   * VFs do not survive one. Set by `sriovManage(..., { boot: true })`.
   */
  readonly #sriovAtBoot = new Set<string>();

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

  /**
   * Power cycle: every active device is gone (vGPUs and VFs with them);
   * parents register again, then the boot units enable the VFs they name.
   */
  reboot(): void {
    this.unplugAll();
    this.plugAll();
    for (const target of this.#sriovAtBoot) {
      try {
        sriovManage(this.kernel, true, target);
      } catch (err) {
        this.kernel.log('err', `nvidia-sriov-manage@${target}: ${(err as Error).message}`);
      }
    }
  }

  /**
   * NVIDIA's `sriov-manage -e|-d <gpu|ALL>` (a machine action; see
   * drivers/nvidia-vgpu-vf/sriov-manage.ts). With `boot`, the boot unit for
   * `target` is enabled (or, with -d, disabled) too, so VFs come back at
   * every reboot.
   */
  sriovManage(enable: boolean, target: string, opts: { boot?: boolean } = {}): SriovManageResult {
    const result = sriovManage(this.kernel, enable, target);
    if (opts.boot === true) {
      const unit = target.toLowerCase() === 'all' ? 'ALL' : target.toLowerCase();
      if (enable) this.#sriovAtBoot.add(unit);
      else if (unit === 'ALL') this.#sriovAtBoot.clear();
      else this.#sriovAtBoot.delete(unit);
    }
    return result;
  }

  /** The boot units that enable VFs, as `sriovManage(..., { boot: true })` left them. */
  get sriovAtBoot(): readonly string[] {
    return [...this.#sriovAtBoot];
  }

  /** Names of the registered mdev parents. */
  get parentNames(): string[] {
    return this.core.parents.map((p) => p.name);
  }

  #device(uuid: string): MdevDevice {
    return this.core.device(uuid) ?? fail('ENODEV', `no mediated device ${uuid}`);
  }

  /**
   * A VM opens the device (VFIO open): a mediated device by UUID, or a PCI
   * function a VFIO driver registered (an NVIDIA VF) by address. Returns
   * how many users hold it now.
   */
  open(id: string): number {
    if (isPciAddress(id)) return openVfioPci(this.kernel, id).openCount;
    const mdev = this.#device(id);
    this.core.open(mdev);
    return mdev.openCount;
  }

  /** The VM lets go. */
  close(id: string): number {
    if (isPciAddress(id)) return releaseVfioPci(this.kernel, id).openCount;
    const mdev = this.#device(id);
    this.core.release(mdev);
    return mdev.openCount;
  }

  /** Users holding a device open (mdev UUID or PCI address); 0 when unknown. */
  openCount(id: string): number {
    if (isPciAddress(id)) return vfioPciDevice(this.kernel, id)?.openCount ?? 0;
    return this.core.device(id)?.openCount ?? 0;
  }
}
