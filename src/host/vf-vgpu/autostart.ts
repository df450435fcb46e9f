import type { Uevent } from '../autostart.js';
import type { Environment } from '../environment.js';
import { describeVfError } from './describe.js';
import { autostartGpu, type VfAutostartRun } from './lifecycle.js';
import { PCI_DEVICES, listVfGpus, vfOf } from './sysfs.js';

/**
 * What brings defined VF vGPUs back: once a GPU's VFs exist (at boot, after
 * `sriov-manage -e`), its start=auto definitions are made. On a host it is
 * a udev rule, as mdevctl's is for mdev parents —
 *
 *   ACTION=="bind", SUBSYSTEM=="pci", DRIVER=="nvidia", \
 *     TEST=="nvidia/current_vgpu_type", RUN+="/usr/bin/mdevkit vf autostart $kernel"
 *
 * — and here the same rule fed by a stream of uevents (the lab's, or a
 * netlink listener's) plus a coldplug at start. A burst (sriov-manage binds
 * 32 VFs in a row) runs each GPU once, after the burst.
 */
export class VfAutostart {
  readonly #pending = new Set<string>();
  #scheduled: Promise<void> | undefined;

  constructor(
    readonly env: Environment,
    private readonly options: { readonly onRun?: (run: VfAutostartRun) => void } = {},
  ) {}

  /** Feed one uevent: a VF bound to nvidia queues its GPU. */
  readonly uevent = (e: Uevent): void => {
    if (e.action !== 'bind' || e.subsystem !== 'pci') return;
    const name = e.devpath.slice(e.devpath.lastIndexOf('/') + 1);
    // TEST=="nvidia/current_vgpu_type": the rule's own look at sysfs.
    if (this.env.port.kind(`${PCI_DEVICES}/${name}/nvidia/current_vgpu_type`) !== 'file') return;
    const where = vfOf(this.env.port, name);
    if (where !== undefined) this.queue(where.gpu);
  };

  /** GPUs whose VFs existed before anyone listened. */
  coldplug(): void {
    for (const gpu of listVfGpus(this.env.port, { details: false })) {
      if (gpu.vfs.length > 0) this.queue(gpu.address);
    }
  }

  queue(gpu: string): void {
    this.#pending.add(gpu);
    this.#scheduled ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() =>
      this.#drain(),
    );
  }

  async flush(): Promise<void> {
    while (this.#scheduled !== undefined) await this.#scheduled;
  }

  #drain(): void {
    try {
      while (this.#pending.size > 0) {
        const gpus = [...this.#pending];
        this.#pending.clear();
        for (const gpu of gpus) {
          const run = autostartGpu(this.env, gpu);
          if (run.started.length + run.failed.length > 0) this.options.onRun?.(run);
        }
      }
    } finally {
      this.#scheduled = undefined;
    }
  }
}

/** A run in words, for an operator's log. */
export function describeVfAutostartRun(run: VfAutostartRun): string[] {
  return [
    ...run.failed.map(
      (f) => `vf autostart: ${run.gpu} vGPU ${f.definition.uuid}: ${describeVfError(f.error)}`,
    ),
    `vf autostart ${run.gpu}: ${run.started.length} started, ${run.failed.length} failed`,
  ];
}
