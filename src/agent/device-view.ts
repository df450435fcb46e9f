import { hasCalloutScripts } from '../host/callouts.js';
import * as nodePath from 'node:path';
import {
  listActiveDevices,
  listDefinedDevices,
  parseUuid,
  probeActive,
  type HostHooks,
  type MdevDevice,
} from '../host/devices.js';
import { readAggregation, typeAggregates } from '../host/aggregation.js';
import { MDEV_BUS_DEVICES } from '../host/paths.js';
import type { Environment } from '../host/environment.js';
import type { z } from 'zod';
import type { Aggregation, Device } from './schemas.js';

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
 * A definition file the listing skipped because it cannot be read as one:
 * where it is, and a reason that never quotes the file (it may be a
 * symlink to anything, /etc/shadow included).
 */
export interface SkippedDefinition {
  readonly parent: string;
  /** The file's name: a UUID (the library reads no other names). */
  readonly uuid: string;
  readonly reason: string;
}

/** Why a definition was skipped, from the error's kind only, never its message. */
function skipReason(error: unknown): string {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; depth++, e = e.cause) {
    if (e instanceof SyntaxError) return 'not valid JSON';
  }
  return 'not an mdevctl definition';
}

interface Presence {
  readonly parent: string;
  readonly type: string;
}

/**
 * The merged device list — active devices and definitions, one entry per
 * parent/UUID, as `mdevctl list` and `mdevctl list -d` together show them —
 * kept between requests and rebuilt on the first read after a change. Every
 * change reaches the agent as an event (or is made by the agent itself), so
 * a dashboard polling a host of ten thousand devices costs one rebuild per
 * change rather than one per request.
 *
 * A rebuild reads the definitions through the host library and lists
 * /sys/bus/mdev/devices, but resolves the parent and type of a device only
 * when it first appears: an active device never changes either, and
 * resolving the links of ten thousand devices is the slow part. A device
 * event drops its UUID from that memory (it may come back elsewhere), a
 * parent event all of it. With callout scripts installed, active devices
 * that nobody defined may get attributes from the scripts, so the view
 * then asks the library for the full listing instead.
 *
 * Active devices of a type that aggregates carry their aggregation, so a
 * client drawing the list needs no request per device.
 */
export class DeviceView {
  #devices: readonly ApiDevice[] | undefined;
  #byUuid = new Map<string, ApiDevice[]>();
  #generation = 0;
  #presence = new Map<string, Presence>();
  /** "parent\0type" → whether the type aggregates; forgotten with the parents. */
  #aggregates = new Map<string, boolean>();
  #skipped: readonly SkippedDefinition[] = [];
  /** "parent/uuid" of skipped files already reported, so each is reported once. */
  #reported = new Set<string>();

  /**
   * `onSkipped` hears of each definition file the first time a rebuild
   * skips it (again after it was fixed or removed and broke anew).
   */
  constructor(
    readonly env: Environment,
    private readonly onSkipped: (s: SkippedDefinition) => void = () => {},
  ) {}

  /** Something changed; `uuid` when it concerns one device only. */
  invalidate(uuid?: string): void {
    this.#devices = undefined;
    this.#generation++;
    if (uuid !== undefined) this.#presence.delete(uuid);
  }

  /** A parent came or went: forget every device's whereabouts. */
  forgetAll(): void {
    this.invalidate();
    this.#presence.clear();
    this.#aggregates.clear();
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

  /** Definition files the listing skipped, as of the current generation. */
  skipped(): readonly SkippedDefinition[] {
    if (this.#devices === undefined) this.#rebuild();
    return this.#skipped;
  }

  /** Entries for `uuid` (more than one when several parents define it). */
  byUuid(uuid: string): readonly ApiDevice[] {
    if (this.#devices === undefined) this.#rebuild();
    return this.#byUuid.get(uuid) ?? [];
  }

  /** UUID → parent and type of every active device. */
  #active(): Map<string, Presence> {
    const port = this.env.port;
    const now = new Map<string, Presence>();
    let names: string[];
    try {
      names = port.list(MDEV_BUS_DEVICES);
    } catch {
      names = [];
    }
    for (const name of names) {
      const uuid = parseUuid(name);
      if (uuid === undefined) continue;
      let where = this.#presence.get(uuid);
      if (where === undefined) {
        try {
          where = probeActive(port, uuid);
        } catch {
          where = undefined; // vanished while we looked, or not an mdev
        }
      }
      if (where !== undefined) now.set(uuid, where);
    }
    this.#presence = now;
    return now;
  }

  /**
   * The aggregation of an active device whose type aggregates, read fresh
   * at each rebuild: a value can change without an event (the kernel sends
   * no uevent for an attribute write), and the dashboard shows it from the
   * listing rather than asking for each device on every redraw. Whether a
   * type aggregates is asked once per parent registration, so hosts whose
   * types do not aggregate pay nothing per device.
   */
  #aggregation(d: ApiDevice): z.infer<typeof Aggregation> | undefined {
    const key = `${d.parent}\0${d.type}`;
    let aggregates = this.#aggregates.get(key);
    if (aggregates === undefined) {
      try {
        aggregates = typeAggregates(this.env, d.parent, d.type);
      } catch {
        aggregates = false; // not a name sysfs could have: no such type
      }
      this.#aggregates.set(key, aggregates);
    }
    return aggregates ? readAggregation(this.env, d.uuid) : undefined;
  }

  #rebuild(): void {
    const merged = new Map<string, ApiDevice>();
    // A definition that cannot be parsed is skipped and reported, not a
    // reason to fail the listing: the agent's listing is the server's own
    // state, and one bad file must not blank the dashboard (issue 12).
    const skipped: SkippedDefinition[] = [];
    const hooks: HostHooks = {
      invalidDefinition: (path, error) => {
        skipped.push({
          parent: nodePath.basename(nodePath.dirname(path)),
          uuid: nodePath.basename(path),
          reason: skipReason(error),
        });
      },
    };
    // Definitions first (they know their active state), then the active
    // devices nobody defined: transient ones, or defined on another parent.
    for (const list of listDefinedDevices(this.env, {}, hooks).values()) {
      for (const d of list) merged.set(`${d.parent}/${d.uuid}`, toApi(d));
    }
    if (hasCalloutScripts(this.env)) {
      for (const list of listActiveDevices(this.env).values()) {
        for (const d of list) {
          const key = `${d.parent}/${d.uuid}`;
          if (!merged.has(key)) merged.set(key, toApi(d));
        }
      }
    } else {
      for (const [uuid, where] of this.#active()) {
        const key = `${where.parent}/${uuid}`;
        if (!merged.has(key)) {
          merged.set(key, {
            uuid,
            parent: where.parent,
            type: where.type,
            active: true,
            defined: false,
            attrs: [],
          });
        }
      }
    }
    const devices = [...merged.values()].sort(byParentThenUuid);
    for (let i = 0; i < devices.length; i++) {
      const d = devices[i]!;
      const aggregation = d.active ? this.#aggregation(d) : undefined;
      if (aggregation !== undefined) devices[i] = { ...d, aggregation };
    }
    const byUuid = new Map<string, ApiDevice[]>();
    for (const d of devices) {
      const list = byUuid.get(d.uuid);
      if (list === undefined) byUuid.set(d.uuid, [d]);
      else list.push(d);
    }
    this.#devices = devices;
    this.#byUuid = byUuid;
    this.#skipped = skipped;
    const now = new Set(skipped.map((k) => `${k.parent}/${k.uuid}`));
    for (const k of skipped) if (!this.#reported.has(`${k.parent}/${k.uuid}`)) this.onSkipped(k);
    this.#reported = now;
  }
}
