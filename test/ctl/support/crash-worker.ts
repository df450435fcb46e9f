/**
 * Worker for the crash-safety test: changes one definition through the host
 * library (the same calls the CLI makes) in an endless loop until it is
 * killed. argv: ROOT UUID KIND, KIND "modify" (the definition always exists
 * and cycles through three contents) or "define-undefine" (it appears and
 * disappears). Prints "ready" once loaded, so the test's random kill lands
 * in the loop rather than in start-up.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defineDevice, modifyDevice, undefineDevice } from '../../../src/host/devices.js';
import { environmentAt } from '../../../src/host/environment.js';

export const PARENT = '0000:00:02.0';
export const TYPE = 'i915-GVTg_V5_4';

const [root, uuid, kind] = process.argv.slice(2) as [string, string, string];
const env = environmentAt(root);
const file = path.join(env.configDir, PARENT, uuid);
process.stdout.write('ready\n');

for (;;) {
  if (kind === 'modify') {
    // The attribute list cycles [] -> [x] -> [x, y] -> [y] -> [] ...
    const attrs = (JSON.parse(fs.readFileSync(file, 'utf8')) as { attrs: object[] }).attrs;
    const first = attrs[0] === undefined ? undefined : Object.keys(attrs[0])[0];
    if (attrs.length === 0)
      modifyDevice(env, { uuid, parent: PARENT, addAttr: { name: 'x', value: '1' } });
    else if (attrs.length === 2)
      modifyDevice(env, { uuid, parent: PARENT, delAttr: true, index: 0 });
    else if (first === 'x')
      modifyDevice(env, { uuid, parent: PARENT, addAttr: { name: 'y', value: '2' } });
    else modifyDevice(env, { uuid, parent: PARENT, delAttr: true });
  } else if (fs.existsSync(file)) {
    undefineDevice(env, uuid, PARENT);
  } else {
    defineDevice(env, { uuid, parent: PARENT, type: TYPE });
  }
}
