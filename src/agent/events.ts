import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { ErrnoError } from '../common/errno.js';
import type { Uevent } from '../host/autostart.js';
import { TEMP_PREFIX } from '../host/config-store.js';
import { MDEV_BUS_DEVICES, MDEV_CLASS } from '../host/paths.js';
import { listActiveDevices, readActiveDevice, type ActiveDevice } from '../host/sysfs-model.js';
import type { SysfsPort } from '../port/sysfs-port.js';
import type { HostEvent } from './event-kinds.js';

/*
 * Where a host's change events come from. The events themselves (kinds and
 * shapes) are defined in event-kinds.ts, which the dashboard bundles too;
 * the agent streams them (server-sent events) from three sources:
 *
 * - kernel uevents, when the agent runs beside an in-process lab (the
 *   emulator hands them in through `ueventSource`, wired in src/cli);
 * - a poller over /sys/bus/mdev/devices and /sys/class/mdev_bus on a real
 *   host, where sysfs cannot be watched (inotify sees no sysfs changes);
 * - a watcher of the mdevctl config directory, on both, for definitions.
 */

export { HOST_EVENT_KINDS, type HostEvent, type HostEventKind } from './event-kinds.js';

export type HostEventListener = (event: HostEvent) => void;

/** Something that reports host changes; `subscribe` returns the unsubscribe function. */
export interface HostEventSource {
  subscribe(listener: HostEventListener): () => void;
  /** Stop whatever timers or watchers the source holds. */
  close?(): void;
}

// ---- kernel uevents (the in-process lab) ---------------------------------

/**
 * The part of a kernel uevent the agent reads: what udev would see. The
 * emulator's uevents have this shape; src/host names it, so the agent
 * never imports the emulator.
 */
export type KernelUevent = Uevent;

export type UeventSubscribe = (listener: (event: KernelUevent) => void) => () => void;

/**
 * The types of the active devices, as the uevent translation needs them.
 * The kernel names an mdev's type in sysfs (the device's `mdev_type` link),
 * never in its uevents; and by the time `remove` is sent the link is gone.
 * So the type is read when the device appears (or, for a device older than
 * the listener, when the listener starts) and remembered until it goes.
 */
export class MdevTypeMemory {
  readonly #types = new Map<string, string>();

  constructor(readonly port: SysfsPort) {
    for (const d of listActiveDevices(port)) this.#types.set(d.uuid, d.type);
  }

  /** A device was added: its type from sysfs ('' if it is gone again already). */
  added(uuid: string): string {
    const type = readActiveDevice(this.port, uuid)?.type ?? '';
    this.#types.set(uuid, type);
    return type;
  }

  /** A device was removed: the type it had ('' if it was never seen). */
  removed(uuid: string): string {
    const type = this.#types.get(uuid) ?? '';
    this.#types.delete(uuid);
    return type;
  }
}

/**
 * Translate uevents as mdevctl's udev rule reads them: add/remove with
 * SUBSYSTEM=mdev for devices (parent = the directory holding the device,
 * type = its mdev_type link, through `types`), change with
 * MDEV_STATE=registered|unregistered for parents.
 */
export function hostEventOfUevent(u: KernelUevent, types: MdevTypeMemory): HostEvent | undefined {
  const parts = u.devpath.split('/');
  const name = parts[parts.length - 1] ?? '';
  if (u.subsystem === 'mdev' && (u.action === 'add' || u.action === 'remove')) {
    const parent = parts[parts.length - 2] ?? '';
    return u.action === 'add'
      ? { kind: 'device-created', uuid: name, parent, type: types.added(name) }
      : { kind: 'device-removed', uuid: name, parent, type: types.removed(name) };
  }
  if (u.action === 'change') {
    const state = u.env['MDEV_STATE'];
    if (state === 'registered') return { kind: 'parent-registered', parent: name };
    if (state === 'unregistered') return { kind: 'parent-unregistered', parent: name };
  }
  return undefined;
}

/** Host events from a uevent stream; `port` is the same host's sysfs, for device types. */
export function ueventSource(subscribeUevents: UeventSubscribe, port: SysfsPort): HostEventSource {
  return {
    subscribe(listener) {
      const types = new MdevTypeMemory(port);
      return subscribeUevents((u) => {
        const event = hostEventOfUevent(u, types);
        if (event !== undefined) listener(event);
      });
    },
  };
}

// ---- a source made of several ------------------------------------------------

export function mergeSources(...sources: HostEventSource[]): HostEventSource {
  return {
    subscribe(listener) {
      const offs = sources.map((s) => s.subscribe(listener));
      return () => offs.forEach((off) => off());
    },
    close() {
      for (const s of sources) s.close?.();
    },
  };
}

/** A source with its own listener set; pollers and watchers build on it. */
class Emitter {
  readonly #listeners = new Set<HostEventListener>();
  subscribe(listener: HostEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  get active(): boolean {
    return this.#listeners.size > 0;
  }
  emit(event: HostEvent): void {
    for (const l of this.#listeners) l(event);
  }
}

// ---- sysfs poller (a real host) ----------------------------------------------

/**
 * Polls the two sysfs directories that say what exists — the registered
 * parents and the active devices — and reports the difference since the
 * last look. sysfs does not support inotify, and a uevent socket needs
 * privileges and a netlink binding Node lacks; a one-second poll of two
 * directory listings costs next to nothing.
 */
export class SysfsPoller implements HostEventSource {
  readonly #emitter = new Emitter();
  #parents = new Set<string>();
  #devices = new Map<string, ActiveDevice>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly port: SysfsPort,
    readonly intervalMs = 1000,
  ) {
    this.#parents = new Set(this.#listParents());
    this.#devices = this.#readDevices(new Map());
  }

  subscribe(listener: HostEventListener): () => void {
    const off = this.#emitter.subscribe(listener);
    if (this.#timer === undefined && this.intervalMs > 0) {
      this.#timer = setInterval(() => this.poll(), this.intervalMs);
      this.#timer.unref();
    }
    return off;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #listParents(): string[] {
    return this.port.kind(MDEV_CLASS) === null ? [] : this.port.list(MDEV_CLASS);
  }

  #readDevices(previous: Map<string, ActiveDevice>): Map<string, ActiveDevice> {
    const now = new Map<string, ActiveDevice>();
    if (this.port.kind(MDEV_BUS_DEVICES) === null) return now;
    for (const uuid of this.port.list(MDEV_BUS_DEVICES)) {
      // A device that stays is not read again: its parent and type cannot change.
      const dev = previous.get(uuid) ?? readActiveDevice(this.port, uuid);
      if (dev !== undefined) now.set(uuid, dev);
    }
    return now;
  }

  /** Look once and report what changed (also called by tests). */
  poll(): void {
    let parents: Set<string>;
    let devices: Map<string, ActiveDevice>;
    try {
      parents = new Set(this.#listParents());
      devices = this.#readDevices(this.#devices);
    } catch (err) {
      if (err instanceof ErrnoError) return; // a directory vanished mid-read: look again next time
      throw err;
    }
    const emit = (e: HostEvent): void => this.#emitter.emit(e);
    // Removals first, in the order the kernel makes them: devices, then parents.
    for (const [uuid, d] of this.#devices) {
      if (!devices.has(uuid))
        emit({ kind: 'device-removed', uuid, parent: d.parent, type: d.type });
    }
    for (const p of this.#parents)
      if (!parents.has(p)) emit({ kind: 'parent-unregistered', parent: p });
    for (const p of parents)
      if (!this.#parents.has(p)) emit({ kind: 'parent-registered', parent: p });
    for (const [uuid, d] of devices) {
      if (!this.#devices.has(uuid))
        emit({ kind: 'device-created', uuid, parent: d.parent, type: d.type });
    }
    this.#parents = parents;
    this.#devices = devices;
  }
}

// ---- config dir watcher (both) ---------------------------------------------------

/** What identifies one version of a definition file: a rename over it changes the inode. */
type FileStamp = string;

/**
 * Watches the mdevctl config directory (<dir>/<parent>/<uuid>) and reports
 * definitions that appeared, vanished or changed. fs.watch gives prompt
 * wake-ups (one watcher on the directory, one per parent directory); a slow
 * periodic rescan covers what inotify can miss (a parent directory created
 * and filled between two events). Each scan diffs stat stamps, so a burst of
 * notifications costs one scan.
 */
export class ConfigDirWatcher implements HostEventSource {
  readonly #emitter = new Emitter();
  #known = new Map<string, FileStamp>();
  readonly #watchers = new Map<string, fs.FSWatcher>();
  #timer: NodeJS.Timeout | undefined;
  #scheduled: NodeJS.Timeout | undefined;
  #started = false;
  #closed = false;

  constructor(
    readonly configDir: string,
    readonly rescanMs = 2000,
  ) {
    this.#known = this.#scan();
  }

  subscribe(listener: HostEventListener): () => void {
    const off = this.#emitter.subscribe(listener);
    if (!this.#started && !this.#closed) this.#start();
    return off;
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#scheduled);
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
  }

  #start(): void {
    this.#started = true;
    if (this.rescanMs > 0) {
      this.#timer = setInterval(() => this.rescan(), this.rescanMs);
      this.#timer.unref();
    }
    this.#watch(this.configDir);
  }

  #watch(dir: string): void {
    if (this.#closed || this.#watchers.has(dir)) return;
    try {
      const w = fs.watch(dir, { persistent: false }, () => this.#schedule());
      w.on('error', () => {
        w.close();
        this.#watchers.delete(dir);
      });
      this.#watchers.set(dir, w);
    } catch {
      // The directory does not exist (yet): the periodic rescan picks it up.
    }
  }

  /** Coalesce a burst of notifications into one scan shortly after. */
  #schedule(): void {
    if (this.#scheduled !== undefined || this.#closed) return;
    this.#scheduled = setTimeout(() => {
      this.#scheduled = undefined;
      this.rescan();
    }, 20);
    this.#scheduled.unref();
  }

  #scan(): Map<string, FileStamp> {
    const out = new Map<string, FileStamp>();
    let parents: string[];
    try {
      parents = fs.readdirSync(this.configDir);
    } catch {
      return out;
    }
    for (const parent of parents) {
      if (parent === 'scripts.d' || parent.startsWith('.')) continue;
      const dir = nodePath.join(this.configDir, parent);
      let names: string[];
      try {
        names = fs.readdirSync(dir);
      } catch {
        continue; // a file, or gone
      }
      if (this.#started) this.#watch(dir);
      for (const uuid of names) {
        if (uuid.startsWith(TEMP_PREFIX)) continue;
        let st: fs.Stats | undefined;
        try {
          st = fs.statSync(nodePath.join(dir, uuid));
        } catch {
          // Gone, a symlink loop (ELOOP), a dangling link, no permission:
          // not a definition anyone can read; nothing in this directory may
          // stop the agent (issue 12).
          continue;
        }
        if (!st.isFile()) continue;
        out.set(`${parent}/${uuid}`, `${st.ino}:${st.size}:${st.mtimeMs}`);
      }
    }
    return out;
  }

  /** Scan now and report the difference (also called by tests). */
  rescan(): void {
    if (this.#closed) return;
    const now = this.#scan();
    const split = (key: string): { parent: string; uuid: string } => {
      const slash = key.indexOf('/');
      return { parent: key.slice(0, slash), uuid: key.slice(slash + 1) };
    };
    for (const key of this.#known.keys()) {
      if (!now.has(key)) this.#emitter.emit({ kind: 'device-undefined', ...split(key) });
    }
    for (const [key, stamp] of now) {
      const before = this.#known.get(key);
      if (before === undefined) this.#emitter.emit({ kind: 'device-defined', ...split(key) });
      else if (before !== stamp) this.#emitter.emit({ kind: 'device-modified', ...split(key) });
    }
    this.#known = now;
  }
}
