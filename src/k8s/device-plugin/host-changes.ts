import * as fs from 'node:fs';
import { ErrnoError } from '../../common/errno.js';
import { MDEV_BUS_DEVICES, MDEV_CLASS } from '../../host/paths.js';
import type { SysfsPort } from '../../port/sysfs-port.js';

/**
 * When to look at the host again. A plugin must tell kubelet within 100 ms
 * that a device appeared, went or failed; sysfs cannot be watched with
 * inotify, so the signals are:
 *
 * - kernel uevents where they reach us (the in-process lab's, wired in
 *   src/cli; a host's through a netlink listener could join the same way);
 * - a fast poll of the listings that change when devices come, go or lose
 *   their driver: /sys/class/mdev_bus, /sys/bus/mdev/devices and each
 *   /sys/bus/mdev/drivers/<driver>. Three to five readdirs of small
 *   directories every 50 ms cost a few microseconds on a real sysfs
 *   (`npm run bench k8s` measures the latency);
 * - inotify on /dev/vfio, which is a devtmpfs and can be watched (a group
 *   node that vanishes makes its device unhealthy).
 *
 * A signal carries nothing: the manager reads the host afresh, so a missed
 * or doubled signal costs at most one read.
 */
export type HostChanges = (listener: () => void) => () => void;

/** The listings (and `files`' contents) whose change means "look again". */
function signature(port: SysfsPort, files: readonly string[] = []): string {
  const list = (dir: string): string => {
    try {
      return port.kind(dir) === null ? '-' : port.list(dir).sort().join(',');
    } catch (err) {
      if (err instanceof ErrnoError) return '!';
      throw err;
    }
  };
  const drivers = '/sys/bus/mdev/drivers';
  let bound = '';
  try {
    if (port.kind(drivers) !== null) {
      for (const d of port.list(drivers).sort()) bound += `${d}:${list(`${drivers}/${d}`)};`;
    }
  } catch (err) {
    if (!(err instanceof ErrnoError)) throw err;
  }
  let contents = '';
  for (const f of files) {
    try {
      contents += `|${port.read(f)}`;
    } catch (err) {
      if (!(err instanceof ErrnoError)) throw err;
      contents += '|-';
    }
  }
  return `${list(MDEV_CLASS)}|${list(MDEV_BUS_DEVICES)}|${bound}${contents}`;
}

/**
 * Poll sysfs every `intervalMs` while anyone listens; signal when the
 * listings change, or the contents of `files` (the DRA driver adds the AP
 * bus's masks, whose change gives or takes queues).
 */
export function pollHostChanges(
  port: SysfsPort,
  intervalMs: number,
  files: readonly string[] = [],
): HostChanges {
  const listeners = new Set<() => void>();
  let timer: NodeJS.Timeout | undefined;
  let last = '';
  return (listener) => {
    listeners.add(listener);
    if (timer === undefined) {
      last = signature(port, files);
      timer = setInterval(() => {
        const now = signature(port, files);
        if (now === last) return;
        last = now;
        for (const l of listeners) l();
      }, intervalMs);
      timer.unref();
    }
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0 && timer !== undefined) {
        clearInterval(timer);
        timer = undefined;
      }
    };
  };
}

/** inotify on a directory (/dev/vfio): any entry created, removed or renamed. */
export function watchDirectory(dir: string): HostChanges {
  return (listener) => {
    let w: fs.FSWatcher | undefined;
    try {
      w = fs.watch(dir, { persistent: false }, () => listener());
      w.on('error', () => w?.close());
    } catch {
      // No such directory: nothing to watch (a lab has no /dev/vfio).
    }
    return () => w?.close();
  };
}

/** Events of a uevent stream (the in-process lab's kernel) as change signals. */
export function ueventChanges(
  subscribe: (listener: (e: { subsystem: string; action: string }) => void) => () => void,
): HostChanges {
  // Any event may change what a plugin advertises (a device, its driver,
  // a parent); reading the host again is coalesced by the manager.
  return (listener) => subscribe(() => listener());
}
