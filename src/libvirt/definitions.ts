import * as fs from 'node:fs';
import { MdevError, getDefinedDevice, type HostHooks, type MdevDevice } from '../host/devices.js';
import type { Environment } from '../host/environment.js';

/**
 * The definition of `uuid`, or undefined when it has none. A host without
 * a config directory (a bare /sys snapshot, a fresh --root) simply has no
 * definitions; several definitions of one UUID stay an error (`ambiguous`).
 */
export function findDefinition(
  env: Environment,
  uuid: string,
  hooks: HostHooks = {},
): MdevDevice | undefined {
  if (!fs.existsSync(env.configDir)) return undefined;
  try {
    return getDefinedDevice(env, uuid, undefined, hooks);
  } catch (err) {
    if (err instanceof MdevError && err.code === 'not-defined') return undefined;
    throw err;
  }
}
