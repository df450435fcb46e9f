/**
 * Worker for the apply crash test: applies two configuration files of the
 * same configuration in turn, with prune, against the host at ROOT (a
 * FUSE-served lab), forever, until it is killed. argv: ROOT FILE_A FILE_B.
 * Prints "ready" once loaded, so the test's kill lands in the applies.
 */
import { applyHost } from '../../../../src/host/desired/engine.js';
import { loadConfigFile } from '../../../../src/host/desired/config.js';
import { environmentAt } from '../../../../src/host/environment.js';

const [root, a, b] = process.argv.slice(2) as [string, string, string];
const env = environmentAt(root);
const files = [loadConfigFile(a), loadConfigFile(b)];

async function loop(): Promise<never> {
  process.stdout.write('ready\n');
  for (let i = Math.floor(Math.random() * 2); ; i++) {
    await applyHost(env, files[i % 2]!, { prune: true, wait: true });
  }
}
void loop();
