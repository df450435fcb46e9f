import * as nodePath from 'node:path';
import { FsSysfsPort } from '../port/fs-port.js';
import type { SysfsPort } from '../port/sysfs-port.js';

/**
 * Everything the management side needs to find a host, derived from one
 * root as mdevctl's Environment does: the sysfs port, the persistent config
 * directory (<root>/etc/mdevctl.d) and the callout/notifier script dirs.
 * The root is `/` on a real host, MDEVCTL_ENV_ROOT or --root elsewhere; an
 * in-process lab supplies its own port and a config dir of its choosing.
 */
export interface Environment {
  readonly port: SysfsPort;
  /** Root of the filesystem the config and script paths hang from. */
  readonly root: string;
  /** <root>/etc/mdevctl.d: persistent definitions, <parent>/<uuid>. */
  readonly configDir: string;
  /** Callout script dirs, newest location first. */
  readonly calloutDirs: readonly string[];
  /** Notifier script dirs, newest location first. */
  readonly notifierDirs: readonly string[];
}

export function environmentAt(root: string, port?: SysfsPort): Environment {
  const r = nodePath.resolve(root);
  const j = (...p: string[]): string => nodePath.join(r, ...p);
  return {
    port: port ?? new FsSysfsPort(r),
    root: r,
    configDir: j('etc', 'mdevctl.d'),
    calloutDirs: [
      j('usr', 'lib', 'mdevctl', 'scripts.d', 'callouts'),
      j('etc', 'mdevctl.d', 'scripts.d', 'callouts'),
    ],
    notifierDirs: [
      j('usr', 'lib', 'mdevctl', 'scripts.d', 'notifiers'),
      j('etc', 'mdevctl.d', 'scripts.d', 'notifiers'),
    ],
  };
}

/** The environment a command runs in: --root, else MDEVCTL_ENV_ROOT, else "/". */
export function environmentFrom(
  env: Readonly<Record<string, string | undefined>>,
  rootOption?: string,
): Environment {
  return environmentAt(rootOption ?? (env['MDEVCTL_ENV_ROOT'] || '/'));
}
