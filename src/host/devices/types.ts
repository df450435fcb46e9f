/** The data the host library's operations take and return. */
import type { MdevAttribute, StartMode } from '../config-store.js';
import type { MdevError } from '../errors.js';

/** A device as mdevctl sees it: a definition, an active device, or both. */
export interface MdevDevice {
  readonly uuid: string;
  readonly parent: string;
  readonly type: string;
  readonly start: StartMode;
  readonly attrs: readonly MdevAttribute[];
  /** Present in /sys/bus/mdev/devices on this parent with this type. */
  readonly active: boolean;
  /** <configDir>/<parent>/<uuid> exists. */
  readonly defined: boolean;
}

export interface MdevTypeEntry {
  readonly id: string;
  readonly availableInstances: number;
  readonly deviceApi: string;
  /** Empty when absent or empty. */
  readonly name: string;
  /** Trimmed, inner newlines joined with ", "; empty when absent. */
  readonly description: string;
}

export interface DeviceFilter {
  readonly uuid?: string | undefined;
  readonly parent?: string | undefined;
}

/**
 * Which part of mdevctl logs a warning: the listings (mdevctl's
 * environment module), the callouts, one device's sysfs and definition
 * (mdev), or the command itself. The CLI shows it as mdevctl's logger
 * would; nothing else depends on it.
 */
export type WarnSource = 'listing' | 'callouts' | 'device' | 'command';

export interface HostHooks {
  /** mdevctl's WARN-level log lines. */
  readonly warn?: (message: string, source?: WarnSource) => void;
  /** stderr of a callout script, shown by mdevctl as "<script>: <text>". */
  readonly calloutStderr?: (script: string, text: string) => void;
  /**
   * Go on although a pre callout refused (mdevctl 1.3's --force), or
   * sysfs could not be read for a device to define or stop (1.4).
   */
  readonly force?: boolean;
  /**
   * Time limit for each callout script in ms (0: none); default
   * DEFAULT_CALLOUT_TIMEOUT_MS. A script that runs out is killed and the
   * operation fails with `callout-timeout`.
   */
  readonly calloutTimeoutMs?: number;
  /**
   * When given, a definition that cannot be parsed is reported here and
   * skipped, instead of failing the whole listing as mdevctl does (the
   * agent and dashboard use this; the mdevctl CLI keeps mdevctl's rule).
   */
  readonly invalidDefinition?: (path: string, error: MdevError) => void;
}

export const noHooks: HostHooks = {};

/** Definition content read from a JSON document (`--jsonfile`). */
export interface JsonSource {
  /** How to name it in messages (the file path). */
  readonly name: string;
  /** Reads the document; called only once the checks before it passed. */
  readonly read: () => string;
}
