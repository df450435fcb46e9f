import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import {
  MdevError,
  describeError,
  startParentDevices,
  type HostHooks,
  type MdevDevice,
} from './devices.js';
import type { Environment } from './environment.js';
import { listParentNames } from './sysfs-model.js';

/**
 * mdevctl's udev rule, once: when a parent registers, start its
 * start=auto definitions (`mdevctl start-parent-mdevs <kernel name>`).
 * Fed by a stream of uevents — the emulator's, or a netlink listener's —
 * and by a coldplug at start, as `udevadm trigger` replays a boot.
 *
 * The rule fires on a parent's `add` and on its `change` with
 * MDEV_STATE=registered, so a boot or reboot would start every parent
 * twice and fail the second time (mdevctl#53). Here a burst is coalesced:
 * parents queued while the burst runs are started once, after it, and a
 * device that is active already counts as neither started nor failed.
 */

/** The part of a kernel uevent udev rules read; what a netlink listener would give. */
export interface Uevent {
  readonly action: string;
  /** DEVPATH, below /sys: "/devices/virtual/mtty/mtty". */
  readonly devpath: string;
  readonly subsystem: string;
  readonly env: Readonly<Record<string, string>>;
}

/**
 * The parent whose start=auto devices mdevctl's udev rule starts for this
 * event, if any: a parent that registers (change, MDEV_STATE=registered)
 * or, on older kernels, any device that is not an mdev being added. The
 * kernel name is the last component of DEVPATH.
 */
export function parentToAutostart(e: Uevent): string | undefined {
  const registers =
    (e.action === 'change' && e.env['MDEV_STATE'] === 'registered') ||
    (e.action === 'add' && e.subsystem !== 'mdev');
  return registers ? e.devpath.slice(e.devpath.lastIndexOf('/') + 1) : undefined;
}

/** What one run of `start-parent-mdevs` did for one parent. */
export interface AutostartRun {
  readonly parent: string;
  readonly started: readonly MdevDevice[];
  readonly failed: readonly { readonly device: MdevDevice; readonly error: unknown }[];
  /** The library's warnings (a definition it skipped, and so on). */
  readonly warnings: readonly string[];
  /** Set when the parent's definitions could not be listed at all: nothing was started. */
  readonly error?: unknown;
}

export interface AutostartOptions {
  /** Called after each parent's run, for the operator's log. */
  readonly onRun?: (run: AutostartRun) => void;
  /**
   * Skip (and report here) a definition that cannot be parsed, and start
   * the parent's others; without it a broken file stops the parent's run,
   * as in mdevctl. The agent passes it: one bad file must not keep the
   * good ones down.
   */
  readonly invalidDefinition?: HostHooks['invalidDefinition'];
}

export class Autostart {
  readonly #pending = new Set<string>();
  #scheduled: Promise<void> | undefined;

  constructor(
    readonly env: Environment,
    private readonly options: AutostartOptions = {},
  ) {}

  /** Feed one uevent (subscribe this to the uevent stream). */
  readonly uevent = (e: Uevent): void => {
    const parent = parentToAutostart(e);
    if (parent !== undefined) this.parentRegistered(parent);
  };

  /**
   * The parents registered before anyone listened, as at boot before udev
   * runs: queue every parent sysfs lists, as `udevadm trigger` would.
   */
  coldplug(): void {
    for (const parent of listParentNames(this.env.port)) this.parentRegistered(parent);
  }

  parentRegistered(parent: string): void {
    this.#pending.add(parent);
    // After the current synchronous burst, once.
    this.#scheduled ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() =>
      this.#drain(),
    );
  }

  /** Resolves once every queued parent has been handled. */
  async flush(): Promise<void> {
    while (this.#scheduled !== undefined) await this.#scheduled;
  }

  #drain(): void {
    try {
      while (this.#pending.size > 0) {
        const parents = [...this.#pending];
        this.#pending.clear();
        const env = withScriptDirsFixed(this.env);
        for (const parent of parents) {
          const run = startParent(env, parent, this.options.invalidDefinition);
          if (run !== undefined) this.options.onRun?.(run);
        }
      }
    } finally {
      this.#scheduled = undefined;
    }
  }
}

/**
 * A run in words, for an operator's log: each warning and failure, then
 * "autostart PARENT: N started, M failed".
 */
export function describeAutostartRun(run: AutostartRun): string[] {
  return [
    ...run.warnings.map((w) => `autostart: ${w}`),
    ...(run.error === undefined ? [] : [`autostart: ${run.parent}: ${describeError(run.error)}`]),
    ...run.failed.map(
      (f) => `autostart: ${run.parent}/${f.device.uuid}: ${describeError(f.error)}`,
    ),
    `autostart ${run.parent}: ${run.started.length} started, ${run.failed.length} failed`,
  ];
}

/** One parent's run; undefined when the rule would not fire (no config dir for it). */
function startParent(
  env: Environment,
  parent: string,
  invalidDefinition: HostHooks['invalidDefinition'],
): AutostartRun | undefined {
  // TEST=="/etc/mdevctl.d/$kernel" in the udev rule.
  if (!fs.existsSync(nodePath.join(env.configDir, parent))) return undefined;
  const warnings: string[] = [];
  const started: MdevDevice[] = [];
  const failed: { device: MdevDevice; error: unknown }[] = [];
  const hooks: HostHooks = {
    warn: (m) => warnings.push(m),
    ...(invalidDefinition === undefined ? {} : { invalidDefinition }),
  };
  let outcomes;
  try {
    outcomes = startParentDevices(env, parent, hooks);
  } catch (error) {
    // A definition that cannot be read fails the parent's listing (as in
    // mdevctl); it must not fail the burst, nor the process that feeds it.
    return { parent, started, failed, warnings, error };
  }
  for (const o of outcomes) {
    if (o.error === undefined) started.push(o.device);
    else if (!(o.error instanceof MdevError && o.error.code === 'already-active'))
      failed.push({ device: o.device, error: o.error });
  }
  return { parent, started, failed, warnings };
}

/**
 * The environment with its callout and notifier directories narrowed, once
 * per burst, to those that hold at least one entry. The library looks for
 * scripts before and after every device; on a host with none (the usual
 * case) that was most of the time of starting 1000 devices, mostly spent
 * failing to open directories that do not exist. Scripts added while a
 * burst is handled take part from the next one on.
 */
function withScriptDirsFixed(env: Environment): Environment {
  const populated = (dirs: readonly string[]): string[] =>
    dirs.filter((d) => {
      try {
        return fs.readdirSync(d).length > 0;
      } catch {
        return false;
      }
    });
  return {
    ...env,
    calloutDirs: populated(env.calloutDirs),
    notifierDirs: populated(env.notifierDirs),
  };
}
