import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { ErrnoError } from '../common/errno.js';
import type { Environment } from '../host/environment.js';
import { listVfGpus, vfStoreDir } from '../host/vf-vgpu.js';
import type { HostEvent } from './event-kinds.js';
import type { HostEventListener, HostEventSource } from './events.js';

/**
 * Changes of NVIDIA's VF vGPUs as `vgpu-changed` events. A write to a VF's
 * `current_vgpu_type` sends no uevent (the driver's attribute changes, no
 * device comes or goes), and sysfs cannot be watched, so the poller looks:
 * each GPU's VF count and every VF's type (one file per VF) and the GPU's
 * definition files (one directory read), and reports the GPUs and VFs that
 * differ from last time. Writes made through the agent are announced by
 * the routes at once; this catches everything else (the CLI, a script,
 * sriov-manage, a reboot).
 */
export class VfPoller implements HostEventSource {
  readonly #listeners = new Set<HostEventListener>();
  #state: Map<string, GpuState>;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly env: Environment,
    readonly intervalMs = 1000,
  ) {
    this.#state = this.#read() ?? new Map();
  }

  subscribe(listener: HostEventListener): () => void {
    this.#listeners.add(listener);
    if (this.#timer === undefined && this.intervalMs > 0) {
      this.#timer = setInterval(() => this.poll(), this.intervalMs);
      this.#timer.unref();
    }
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #read(): Map<string, GpuState> | undefined {
    try {
      const out = new Map<string, GpuState>();
      for (const gpu of listVfGpus(this.env.port, { details: false })) {
        out.set(gpu.address, {
          vfs: new Map(gpu.vfs.map((v) => [v.address, v.typeId])),
          definitions: definitionNames(this.env, gpu.address),
        });
      }
      return out;
    } catch (err) {
      if (err instanceof ErrnoError) return undefined; // a VF went mid-read: look again next time
      throw err;
    }
  }

  /** Look once and report what changed (also called by tests). */
  poll(): void {
    const now = this.#read();
    if (now === undefined) return;
    const events: HostEvent[] = [];
    for (const gpu of new Set([...this.#state.keys(), ...now.keys()])) {
      const before = this.#state.get(gpu);
      const after = now.get(gpu);
      if (before === undefined || after === undefined || before.vfs.size !== after.vfs.size) {
        events.push({ kind: 'vgpu-changed', gpu });
        continue;
      }
      let changed = before.definitions !== after.definitions;
      for (const [vf, type] of after.vfs) {
        if (before.vfs.get(vf) !== type) {
          events.push({ kind: 'vgpu-changed', gpu, vf });
          changed = false;
        }
      }
      if (changed) events.push({ kind: 'vgpu-changed', gpu });
    }
    this.#state = now;
    for (const e of events) for (const l of this.#listeners) l(e);
  }
}

interface GpuState {
  readonly vfs: Map<string, number>;
  /** The GPU's definition file names, joined: a cheap fingerprint. */
  readonly definitions: string;
}

function definitionNames(env: Environment, gpu: string): string {
  try {
    const dir = nodePath.join(vfStoreDir(env), gpu);
    return fs
      .readdirSync(dir)
      .map((n) => `${n}:${fs.statSync(nodePath.join(dir, n)).mtimeMs}`)
      .sort()
      .join(',');
  } catch {
    return '';
  }
}
