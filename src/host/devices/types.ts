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

export interface HostHooks {
  /** mdevctl's WARN-level log lines. */
  readonly warn?: (message: string) => void;
  /** stderr of a callout script, shown by mdevctl as "<script>: <text>". */
  readonly calloutStderr?: (script: string, text: string) => void;
  /** Go on although a pre callout refused (mdevctl 1.3's --force). */
  readonly force?: boolean;
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
