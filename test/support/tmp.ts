import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const made: string[] = [];
let hooked = false;

/**
 * A fresh temporary directory, removed when the test process exits.
 *
 * Not node:test's after(): called from a before() hook or a test body,
 * after() runs as soon as that hook or test ends, which removed
 * directories while later tests still used them.
 */
export function tmpDir(prefix = 'mdevkit-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const d of made) {
        try {
          fs.rmSync(d, { recursive: true, force: true });
        } catch {
          // A mount still inside (a crashed FUSE test) is left for the OS.
        }
      }
    });
  }
  return dir;
}
