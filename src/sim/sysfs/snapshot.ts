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
 * Write the tree's /sys as static files under `outDir/sys`, plus an empty
 * `outDir/etc/mdevctl.d`: a frozen host that node:fs tools and Debian's
 * mdevctl (under a mount namespace) read like the real thing. Attribute
 * files hold what `show` returned and keep sysfs's mode bits; write-only
 * files (create, remove) are empty; links keep their relative targets.
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
  fs.mkdirSync(nodePath.join(outDir, 'etc', 'mdevctl.d'), { recursive: true });
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
