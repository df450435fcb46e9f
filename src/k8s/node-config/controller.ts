import type { NodeApi } from './node-api.js';
import { describe } from './node-api.js';

/**
 * Node configuration from the cluster. A node label (`mdevkit.io/config`
 * by default, as NVIDIA's `nvidia.com/vgpu.config`) names one of the
 * configurations of the desired-state file, which the DaemonSet mounts from
 * a ConfigMap. When the label is set or changes — and once at start, so a
 * node that rebooted is brought back to its configuration — the controller
 * applies that configuration with the desired-state engine and reports the
 * outcome:
 *
 * - the label `<label>.state` = `pending` while it runs, then `success` or
 *   `failed` (the label selectors operators and tools wait on);
 * - an Event on the Node: ConfigApplying, then ConfigApplied (Normal, with
 *   the summary) or ConfigFailed (Warning, with the reason);
 * - meanwhile the resources whose devices the apply may change are
 *   advertised unhealthy (`hold`), so kubelet admits no pod onto them.
 *
 * One apply runs at a time; a label changed during an apply is applied
 * after it (only the newest value). A failed apply is not retried until the
 * label or the file changes, so a broken configuration does not spin.
 * Reporting failures (the API server unreachable) are logged and never
 * stop the apply: the host is the truth, the labels a report of it.
 */

/** What the controller needs from the desired-state engine. */
export interface ConfigApplier {
  /** Which (mdev) types applying `config` would create or remove devices of, read from the host now. */
  affectedTypes(config: string): readonly { readonly type: string; readonly name?: string }[];
  /** Apply `config`; resolves with a one-line summary, rejects with the reason it failed. */
  apply(config: string): Promise<string>;
}

export interface NodeConfigControllerOptions {
  readonly api: NodeApi;
  readonly applier: ConfigApplier;
  /** The node label naming the configuration. */
  readonly label: string;
  /** Hold the resources of these types unhealthy; returns the release. */
  readonly hold: (types: readonly { type: string; name?: string }[], reason: string) => () => void;
  readonly log?: (line: string) => void;
}

export type ConfigState = 'pending' | 'success' | 'failed';

export interface ApplyRecord {
  readonly config: string;
  readonly state: ConfigState;
  readonly message: string;
  readonly startedAt: number;
  readonly endedAt: number | undefined;
}

export class NodeConfigController {
  readonly stateLabel: string;
  /** Every apply, oldest first (status, tests). */
  readonly history: ApplyRecord[] = [];
  #stopWatch: (() => void) | undefined;
  #wanted: string | undefined;
  #handled: string | undefined;
  #running: Promise<void> | undefined;
  readonly #log: (line: string) => void;

  constructor(readonly options: NodeConfigControllerOptions) {
    this.stateLabel = `${options.label}.state`;
    this.#log = options.log ?? (() => {});
  }

  start(): void {
    this.#stopWatch = this.options.api.watchNode((labels) => this.#labels(labels));
  }

  async stop(): Promise<void> {
    this.#stopWatch?.();
    this.#stopWatch = undefined;
    await this.#running;
  }

  /** Resolves when no apply runs or waits. */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  /** Apply the labelled configuration again (the desired-state file changed). */
  reapply(): void {
    this.#handled = undefined;
    this.#kick();
  }

  #labels(labels: Readonly<Record<string, string>>): void {
    const v = labels[this.options.label];
    this.#wanted = v === undefined || v === '' ? undefined : v;
    this.#kick();
  }

  #kick(): void {
    if (this.#running !== undefined) return; // the loop picks up #wanted when the apply ends
    if (this.#wanted === undefined || this.#wanted === this.#handled) return;
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
    });
  }

  async #loop(): Promise<void> {
    while (this.#wanted !== undefined && this.#wanted !== this.#handled) {
      const config = this.#wanted;
      this.#handled = config;
      await this.#apply(config);
    }
  }

  async #apply(config: string): Promise<void> {
    const { applier } = this.options;
    const record: { -readonly [K in keyof ApplyRecord]: ApplyRecord[K] } = {
      config,
      state: 'pending',
      message: '',
      startedAt: Date.now(),
      endedAt: undefined,
    };
    this.history.push(record);
    await this.#report(
      'pending',
      'Normal',
      'ConfigApplying',
      `applying mdevkit configuration ${config}`,
    );
    let release: (() => void) | undefined;
    try {
      const types = applier.affectedTypes(config);
      release = this.options.hold(types, `configuration ${config} is being applied`);
      const summary = await applier.apply(config);
      record.state = 'success';
      record.message = summary;
    } catch (err) {
      record.state = 'failed';
      record.message = (err as Error).message;
    } finally {
      release?.();
      record.endedAt = Date.now();
    }
    this.#log(`configuration ${config}: ${record.state}: ${record.message}`);
    if (record.state === 'success') {
      await this.#report(
        'success',
        'Normal',
        'ConfigApplied',
        `mdevkit configuration ${config} applied: ${record.message}`,
      );
    } else {
      await this.#report(
        'failed',
        'Warning',
        'ConfigFailed',
        `mdevkit configuration ${config} failed: ${record.message}`,
      );
    }
  }

  async #report(
    state: ConfigState,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void> {
    const { api } = this.options;
    const results = await Promise.allSettled([
      api.patchLabels({ [this.stateLabel]: state }),
      api.event(type, reason, message),
    ]);
    for (const r of results) {
      if (r.status === 'rejected') this.#log(`reporting ${state}: ${describe(r.reason)}`);
    }
  }
}
