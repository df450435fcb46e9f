import * as http from 'node:http';
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
  // what mdevctl 1.4 requires under its root (the CLI is run on this state dir)
  for (const d of [env.calloutDirs[0]!, env.notifierDirs[0]!]) fs.mkdirSync(d, { recursive: true });
  const agent = await buildAgent({
    env,
    events: mergeSources(
      ueventSource((l) => lab.kernel.onUevent(l), env.port),
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

export interface SseEvent {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: string;
}

/**
 * A minimal EventSource over node:http for tests: collects frames as they
 * arrive; `next(pred)` waits for the first unseen one that matches.
 */
export function openEventStream(url: string, headers: Record<string, string> = {}) {
  const frames: SseEvent[] = [];
  let taken = 0;
  let wake: (() => void) | undefined;
  let buffer = '';
  let status = 0;
  let stop: () => void = () => {};
  const ready = new Promise<number>((resolve, reject) => {
    const req = http.get(url, { headers }, (res) => {
      status = res.statusCode ?? 0;
      resolve(status);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let id: string | undefined;
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'id') id = value;
            else if (field === 'event') event = value;
            else if (field === 'data') data.push(value);
          }
          if (data.length > 0) frames.push({ id, event, data: data.join('\n') });
        }
        wake?.();
      });
    });
    req.on('error', reject);
    stop = () => req.destroy();
  });
  return {
    ready,
    get frames(): readonly SseEvent[] {
      return frames;
    },
    /** The next frame after those already taken that satisfies `pred` (others are skipped). */
    async next(pred: (e: SseEvent) => boolean = () => true, timeoutMs = 5000): Promise<SseEvent> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        while (taken < frames.length) {
          const f = frames[taken++]!;
          if (pred(f)) return f;
        }
        const left = deadline - Date.now();
        if (left <= 0)
          throw new Error(`no matching event within ${timeoutMs} ms (have ${frames.length})`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
    },
    close: () => stop(),
  };
}
