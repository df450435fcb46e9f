import * as fs from 'node:fs';
import * as nodePath from 'node:path';

/**
 * Replace `path` with `data` atomically — a temp file beside it whose name
 * does not end in `.json` (so neither a container runtime scanning the CDI
 * directory nor the driver ever reads half a file), then rename — but
 * without fsync.
 *
 * Why no fsync, unlike the host's configuration files: what these files
 * describe (CDI specs, device metadata, the checkpoint of prepared claims)
 * are devices that live only until the host stops. A process crash keeps
 * the page cache, so the rename alone is enough for it; a power loss or
 * kernel crash takes the devices with it (and /var/run/cdi is a tmpfs
 * on most hosts), after which kubelet prepares the claims again and the
 * driver checks every device against sysfs before trusting the
 * checkpoint. The durable facts — which devices a claim made — are in the
 * ownership record, which is fsynced before each create. Each fsync here
 * cost a Prepare several milliseconds (two per file) for nothing.
 */
let counter = 0;

export function replaceFile(path: string, data: string): void {
  const tmp = nodePath.join(
    nodePath.dirname(path),
    `.${nodePath.basename(path)}.${process.pid}.${counter++}.tmp`,
  );
  try {
    fs.writeFileSync(tmp, data, { mode: 0o644, flag: 'wx' });
    fs.renameSync(tmp, path);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
