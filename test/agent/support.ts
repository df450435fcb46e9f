import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { ConfigDirWatcher, mergeSources, ueventSource } from '../../src/agent/events.js';
import { buildAgent, type Agent, type AgentOptions } from '../../src/agent/server.js';
import { environmentAt, type Environment } from '../../src/host/environment.js';
import { Lab } from '../../src/sim/lab.js';
import { labWith } from '../support/labs.js';

export const TOKEN = 'a'.repeat(64);
export const AUTH = { authorization: `Bearer ${TOKEN}` };

export interface LabAgent {
  readonly agent: Agent;
  readonly lab: Lab;
  readonly env: Environment;
  readonly stateDir: string;
}

/**
 * The agent on an in-process lab, wired as src/cli/agent.ts wires it.
 * `stateDir`: make it with tmpDir() at the top of a suite, not in a hook
 * (tmpDir's cleanup would run when the hook ends).
 */
export async function labAgent(
  stateDir: string,
  lab: Lab = labWith([{ driver: 'mdpy' }, { driver: 'mtty' }]),
  extra: Partial<AgentOptions> = {},
): Promise<LabAgent> {
  const env = environmentAt(stateDir, lab.port);
  for (const d of ['', 'scripts.d/callouts', 'scripts.d/notifiers']) {
    fs.mkdirSync(nodePath.join(env.configDir, d), { recursive: true });
  }
  const agent = await buildAgent({
    env,
    events: mergeSources(
      ueventSource((l) => lab.kernel.onUevent(l)),
      new ConfigDirWatcher(env.configDir, 200),
    ),
    token: TOKEN,
    mode: 'lab',
    hostLabel: 'test lab',
    loopbackOnly: true,
    ...extra,
  });
  return { agent, lab, env, stateDir };
}
