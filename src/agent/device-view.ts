import { listActiveDevices, listDefinedDevices, type MdevDevice } from '../host/devices.js';
import type { Environment } from '../host/environment.js';
import type { z } from 'zod';
import type { Device } from './schemas.js';

/** A device as the API returns it. */
export type ApiDevice = z.infer<typeof Device>;

/** A library device as the API shows it (start mode only for definitions). */
export function toApi(d: MdevDevice): ApiDevice {
  const out: ApiDevice = {
    uuid: d.uuid,
    parent: d.parent,
    type: d.type,
    active: d.active,
    defined: d.defined,
    attrs: d.attrs.map((a) => ({ name: a.name, value: a.value })),
  };
  return d.defined ? { ...out, start: d.start } : out;
}

const byParentThenUuid = (a: ApiDevice, b: ApiDevice): number =>
  a.parent < b.parent
    ? -1
    : a.parent > b.parent
      ? 1
      : a.uuid < b.uuid
        ? -1
        : a.uuid > b.uuid
          ? 1
          : 0;

/**
 * The merged device list — active devices and definitions, one entry per
 * parent/UUID, as `mdevctl list` and `mdevctl list -d` together show them —
 * kept between requests and rebuilt on the first read after a change. Every
 * change reaches the agent as an event (or is made by the agent itself), so
 * a dashboard polling a host of ten thousand devices costs one rebuild per
 * change rather than one per request.
 */
export class DeviceView {
  #devices: readonly ApiDevice[] | undefined;
  #byUuid = new Map<string, ApiDevice[]>();
  #generation = 0;

  constructor(readonly env: Environment) {}

  invalidate(): void {
    this.#devices = undefined;
    this.#generation++;
  }

  /** Changes with every invalidation: an ETag for listings. */
  get generation(): number {
    return this.#generation;
  }

  /** All devices, sorted by parent then UUID. */
  all(): readonly ApiDevice[] {
    if (this.#devices === undefined) this.#rebuild();
    return this.#devices!;
  }

  /** Entries for `uuid` (more than one when several parents define it). */
  byUuid(uuid: string): readonly ApiDevice[] {
    if (this.#devices === undefined) this.#rebuild();
    return this.#byUuid.get(uuid) ?? [];
  }

  #rebuild(): void {
    const merged = new Map<string, ApiDevice>();
    // Definitions first (they know their active state), then the active
    // devices nobody defined: transient ones, or defined on another parent.
    for (const list of listDefinedDevices(this.env).values()) {
      for (const d of list) merged.set(`${d.parent}/${d.uuid}`, toApi(d));
    }
    for (const list of listActiveDevices(this.env).values()) {
      for (const d of list) {
        const key = `${d.parent}/${d.uuid}`;
        if (!merged.has(key)) merged.set(key, toApi(d));
      }
    }
    const devices = [...merged.values()].sort(byParentThenUuid);
    const byUuid = new Map<string, ApiDevice[]>();
    for (const d of devices) {
      const list = byUuid.get(d.uuid);
      if (list === undefined) byUuid.set(d.uuid, [d]);
      else list.push(d);
    }
    this.#devices = devices;
    this.#byUuid = byUuid;
  }
}
