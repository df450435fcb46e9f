import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import type { Environment } from '../environment.js';
import { MdevError } from '../errors.js';

/** mdevctl refuses to run without these directories (a packaging error). */
export function selfCheck(env: Environment): void {
  const required = [env.configDir, nodePath.join(env.configDir, 'scripts.d', 'callouts')];
  required.push(nodePath.join(env.configDir, 'scripts.d', 'notifiers'));
  for (const dir of required) {
    if (!fs.existsSync(dir)) {
      throw new MdevError(
        'environment',
        `Required directory "${dir}" doesn't exist. This may indicate a packaging or installation error`,
        { context: { path: dir } },
      );
    }
  }
}
