import * as fs from 'node:fs';
import { ErrnoError } from '../common/errno.js';
import { formatConfig } from './config-store.js';
import { MdevError, listDefinedDevices, modifyDevice, type MdevDevice } from './devices.js';
import type { Environment } from './environment.js';
import { deviceAttributePath, deviceDir, typeDir } from './paths.js';
import { readActiveDevice } from './sysfs-model.js';
import { parseUuid } from './uuid-forms.js';

/**
 * Aggregation (seed 001): a device of a type that aggregates carries the
 * standard namespace `mdev/aggregation/`, whose `value` says how many
 * instances' worth of resources it holds (0644) and `max` how many it may
 * (0444). The kernel checks a new value (EINVAL: not a number, 0 or above
 * max; EBUSY: the device is open; the driver's errno, ENOSPC, when the
 * parent has too little left) and nothing changes when it refuses.
 *
 * Here: read it, and change it on a device — the running one through
 * sysfs, its definition as the attribute mdevctl writes at start.
 */

/** The type attribute: the most instances one new device could aggregate now. */
export const TYPE_AGGREGATION = 'aggregation';
/** The device attributes: what it holds (0644) and its fixed limit (0444). */
export const AGGREGATION_VALUE = 'mdev/aggregation/value';
export const AGGREGATION_MAX = 'mdev/aggregation/max';

export interface Aggregation {
  readonly value: number;
  /** Absent when the driver does not say. */
  readonly max?: number;
}

/** The device an aggregation change is for: running, defined, or both, on one parent. */
export interface AggregationTarget {
  readonly uuid: string;
  readonly parent: string;
  readonly type: string;
  readonly active: boolean;
  /** Its definition on `parent`, if any. */
  readonly definition: MdevDevice | undefined;
}

/** A sysfs integer attribute; undefined when absent, unreadable (the device went away) or not a number. */
function readInt(env: Environment, path: string): number | undefined {
  try {
    const n = Number.parseInt(env.port.read(path).trim(), 10);
    return Number.isNaN(n) ? undefined : n;
  } catch (err) {
    if (err instanceof ErrnoError) return undefined;
    throw err;
  }
}

/** Whether `type` of `parent` aggregates: it has the type attribute `aggregation`. */
export function typeAggregates(env: Environment, parent: string, type: string): boolean {
  return env.port.kind(`${typeDir(parent, type)}/${TYPE_AGGREGATION}`) === 'file';
}

/**
 * The aggregation of running device `uuid`; undefined when it has no
 * `mdev/aggregation/value` (its type does not aggregate, it is not running,
 * or it went away while we read). Listings call this for every device of
 * an aggregating type, so it reads the two files and nothing more: their
 * names are fixed, there is no user's name to guard.
 */
export function readAggregation(env: Environment, uuid: string): Aggregation | undefined {
  const dir = deviceDir(uuid);
  const value = readInt(env, `${dir}/${AGGREGATION_VALUE}`);
  if (value === undefined) return undefined;
  const max = readInt(env, `${dir}/${AGGREGATION_MAX}`);
  return max === undefined ? { value } : { value, max };
}

/**
 * Which device a change of `uuid` (on `parent`, when given) means: the
 * running device and its definition on the same parent. A UUID defined on
 * several parents must be told which (`ambiguous`); one neither running nor
 * defined is `device-unknown`.
 */
export function aggregationTarget(
  env: Environment,
  uuidText: string,
  parent?: string,
): AggregationTarget {
  const uuid = parseUuid(uuidText);
  if (uuid === undefined) {
    throw new MdevError('invalid-name', `Invalid UUID ${JSON.stringify(uuidText)}`, {
      context: { value: uuidText },
    });
  }
  const running = readActiveDevice(env.port, uuid);
  const active = running !== undefined && (parent === undefined || running.parent === parent);
  // A host without a config dir has no definitions (and that is no error here).
  const definitions = fs.existsSync(env.configDir)
    ? [...listDefinedDevices(env, { uuid, parent }).values()].flat()
    : [];
  const parents = new Set(definitions.map((d) => d.parent));
  if (active) parents.add(running.parent);
  if (parents.size === 0) {
    throw new MdevError(
      'device-unknown',
      `No mediated device ${parent === undefined ? uuid : `${parent}/${uuid}`} is running or defined`,
      { context: { uuid, parent } },
    );
  }
  if (parents.size > 1) {
    throw new MdevError(
      'ambiguous',
      `Mediated device ${uuid} is on several parents (${[...parents].sort().join(', ')}); say which`,
      { context: { uuid } },
    );
  }
  const on = [...parents][0]!;
  const definition = definitions.find((d) => d.parent === on);
  return {
    uuid,
    parent: on,
    type: active ? running.type : definition!.type,
    active,
    definition,
  };
}

/**
 * Make `target` aggregate `value` instances: the running device first
 * (the kernel may refuse, with its errno, and then nothing changed), then
 * its definition, where `mdev/aggregation/value` replaces an earlier one at
 * the end of the attributes (mdevctl writes them in order at start; the
 * aggregation goes last, after whatever it depends on). Returns the
 * aggregation now in force: read back from the running device, else the
 * stored value.
 */
export function setAggregation(
  env: Environment,
  target: AggregationTarget,
  value: number,
): Aggregation {
  const text = String(value);
  if (target.active) {
    env.port.write(deviceAttributePath(env.port, target.uuid, AGGREGATION_VALUE), text);
  }
  const def = target.definition;
  if (def !== undefined) {
    const attrs = [
      ...def.attrs.filter((a) => a.name !== AGGREGATION_VALUE),
      { name: AGGREGATION_VALUE, value: text },
    ];
    const doc = formatConfig({ mdevType: def.type, start: def.start, attrs });
    modifyDevice(env, {
      uuid: target.uuid,
      parent: target.parent,
      json: { name: 'the aggregation change', read: () => doc },
    });
  }
  return (target.active ? readAggregation(env, target.uuid) : undefined) ?? { value };
}
