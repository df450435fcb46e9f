import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { rustDebug } from '../callouts.js';
import type { Environment } from '../environment.js';
import { MdevError } from '../errors.js';

/**
 * mdevctl refuses to run without its directories (a packaging error): the
 * config directory and, since 1.3, the callout and notifier directories
 * under /usr/lib/mdevctl/scripts.d (the first of each in the environment's
 * lists). The older /etc/mdevctl.d/scripts.d ones are optional.
 */
export function selfCheck(env: Environment): void {
  const required = [env.configDir, env.calloutDirs[0], env.notifierDirs[0]];
  for (const dir of required) {
    if (dir === undefined) continue;
    if (!fs.existsSync(dir)) {
      throw new MdevError(
        'environment',
        `Required directory ${rustDebug(dir)} doesn't exist. This may indicate a packaging or installation error`,
        { context: { path: nodePath.normalize(dir) } },
      );
    }
  }
}
