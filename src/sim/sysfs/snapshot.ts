import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { ErrnoError } from '../../common/errno.js';
import type { SysfsDir, SysfsTree } from './tree.js';

export interface SnapshotStats {
  dirs: number;
  files: number;
  links: number;
}

/**
 * The empty script directories the mdevctl programs require of a host, as
 * their packages install them: etc/mdevctl.d/scripts.d (1.2.0, and
 * mdevkit's drop-in) and usr/lib/mdevctl/scripts.d (1.3 on).
 */
const SCRIPT_DIRS = [
  'etc/mdevctl.d/scripts.d/callouts',
  'etc/mdevctl.d/scripts.d/notifiers',
  'usr/lib/mdevctl/scripts.d/callouts',
  'usr/lib/mdevctl/scripts.d/notifiers',
];

/**
 * Write the tree's /sys as static files under `outDir/sys`, plus an
 * `outDir/etc/mdevctl.d` without definitions and the script directories
 * mdevctl requires: a frozen host that node:fs tools, `MDEVCTL_ENV_ROOT=DIR
 * mdevctl` and Debian's mdevctl (under a mount namespace) read like the
 * real thing. Attribute files hold what `show` returned and keep sysfs's
 * mode bits; write-only files (create, remove) are empty; links keep their
 * relative targets.
 */
export function writeSnapshot(tree: SysfsTree, outDir: string): SnapshotStats {
  const stats: SnapshotStats = { dirs: 0, files: 0, links: 0 };
  const sysOut = nodePath.join(outDir, 'sys');
  if (fs.existsSync(sysOut)) {
    throw new Error(`${sysOut} exists already; choose an empty directory`);
  }
  const sys = tree.root.get('sys');
  if (sys === undefined || sys.kind !== 'dir') throw new Error('the tree has no /sys');
  writeDir(sys, sysOut, stats);
  for (const d of SCRIPT_DIRS) fs.mkdirSync(nodePath.join(outDir, d), { recursive: true });
  return stats;
}

function writeDir(dir: SysfsDir, out: string, stats: SnapshotStats): void {
  fs.mkdirSync(out, { recursive: true });
  stats.dirs++;
  for (const [name, node] of dir.children) {
    const p = nodePath.join(out, name);
    if (node.kind === 'dir') {
      writeDir(node, p, stats);
    } else if (node.kind === 'link') {
      fs.symlinkSync(node.target, p);
      stats.links++;
    } else {
      let bytes: Uint8Array = new Uint8Array(0);
      if (node.readable) {
        try {
          bytes = node.ops.read?.() ?? Buffer.from(node.ops.show!());
        } catch (err) {
          if (!(err instanceof ErrnoError)) throw err;
        }
      }
      fs.writeFileSync(p, bytes, { mode: node.mode });
      fs.chmodSync(p, node.mode); // umask must not widen or narrow sysfs modes
      stats.files++;
    }
  }
}
