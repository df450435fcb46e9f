import type { SpawnSyncReturns } from 'node:child_process';
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import type { Environment } from './environment.js';
import { MdevError } from './errors.js';

/**
 * mdevctl's callout and notifier protocol. A callout script lives in
 * <root>/usr/lib/mdevctl/scripts.d/callouts or the older
 * <root>/etc/mdevctl.d/scripts.d/callouts and is run as
 *
 *     SCRIPT -t TYPE -e EVENT -a ACTION -s STATE -u UUID -p PARENT
 *
 * with the device's compact config JSON on stdin (nothing for `get`).
 * EVENT is pre, post or get (notifiers: notify); ACTION is define, undefine,
 * modify, start, stop or attributes; STATE is none before the operation and
 * success/failure after it. Exit 2 means "not my device type": the next
 * script is tried; the first script that answers otherwise owns the device
 * for the rest of the operation. A non-zero exit of `pre` aborts the
 * operation (unless forced). Notifier scripts all run, last, and their
 * result is ignored. Scripts run in name order (mdevctl 1.2.0 used directory
 * order; later versions sort).
 */

export type CalloutEvent = 'pre' | 'post' | 'get' | 'notify' | 'live';
export type CalloutAction =
  'define' | 'undefine' | 'modify' | 'start' | 'stop' | 'attributes' | 'capabilities';
export type CalloutState = 'none' | 'success' | 'failure';

/** What a script is told about the device. */
export interface CalloutDevice {
  readonly uuid: string;
  readonly parent: string;
  readonly type: string;
  /** Compact config JSON for stdin. */
  readonly configJson: string;
}

/** Something a script said on stderr, to be shown as "<script>: <text>". */
export type CalloutStderrSink = (script: string, text: string) => void;

/** A pre callout refused the operation (code `callout-refused`). */
export class CalloutError extends MdevError {
  override readonly name = 'CalloutError';
  constructor(
    readonly script: string,
    readonly exitCode: number,
  ) {
    super('callout-refused', `callout script "${script}" failed with return code ${exitCode}`, {
      context: { script, exitStatus: exitCode },
    });
  }
}

// Set while one operation runs (see `withScriptListings`): dirs -> scripts.
let listings: Map<string, string[]> | undefined;

/**
 * Run `operation` reading each script directory once: every event of every
 * device it handles (pre, post and notify of a thousand autostarted
 * devices) uses the same listing instead of reading the directories again.
 * Meant for one command or one autostart, not for a long-running process,
 * which must see scripts installed later.
 */
export function withScriptListings<T>(operation: () => T): T {
  if (listings !== undefined) return operation();
  listings = new Map();
  try {
    return operation();
  } finally {
    listings = undefined;
  }
}

function scriptsIn(dirs: readonly string[]): string[] {
  const key = dirs.join('\0');
  const listed = listings?.get(key);
  if (listed !== undefined) return listed;
  const out = listScripts(dirs);
  listings?.set(key, out);
  return out;
}

function listScripts(dirs: readonly string[]): string[] {
  const out: string[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue; // absent or not a directory: no scripts there
    }
    for (const n of names.sort()) out.push(nodePath.join(dir, n));
  }
  return out;
}

// child_process is loaded on the first callout: most commands on most hosts
// have no scripts, and its module graph is a noticeable part of start-up.
let spawnSyncImpl: typeof import('node:child_process').spawnSync | undefined;
function spawnSync(
  ...args: Parameters<typeof import('node:child_process').spawnSync>
): SpawnSyncReturns<string> {
  spawnSyncImpl ??= (
    createRequire('/')('node:child_process') as typeof import('node:child_process')
  ).spawnSync;
  return spawnSyncImpl(...args) as SpawnSyncReturns<string>;
}

function run(
  script: string,
  dev: CalloutDevice,
  event: CalloutEvent,
  action: CalloutAction,
  state: CalloutState,
): SpawnSyncReturns<string> {
  const args = ['-t', dev.type, '-e', event, '-a', action, '-s', state];
  args.push('-u', dev.uuid, '-p', dev.parent);
  return spawnSync(script, args, {
    // get-attributes has no input; the capabilities query carries our offer.
    input: event === 'get' && action !== 'capabilities' ? '' : dev.configJson,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/**
 * Did the script run to an exit status? A script that exits without reading
 * its stdin makes our write fail with EPIPE; that is not a failure to run.
 */
function ran(r: SpawnSyncReturns<string>): boolean {
  if (r.status === null) return false;
  return r.error === undefined || (r.error as NodeJS.ErrnoException).code === 'EPIPE';
}

/**
 * One operation's callout session: finds the script owning the device on
 * the first event and keeps using it, as mdevctl does.
 */
export class CalloutSession {
  #script: string | undefined;
  #state: CalloutState = 'none';

  constructor(
    private readonly env: Environment,
    private readonly action: CalloutAction,
    private readonly onStderr: CalloutStderrSink,
  ) {}

  /** Run an event; returns the exit code of the owning script (0 when none). */
  #event(dev: CalloutDevice | undefined, event: CalloutEvent): number {
    // Without a type and parent mdevctl cannot build the arguments: no script runs.
    if (dev === undefined) return 0;
    if (this.#script !== undefined) {
      const r = run(this.#script, dev, event, this.action, this.#state);
      this.#report(this.#script, r);
      return r.status ?? 0;
    }
    for (const script of scriptsIn(this.env.calloutDirs)) {
      const r = run(script, dev, event, this.action, this.#state);
      if (!ran(r)) continue; // not runnable, or killed
      if (r.status === 2) continue; // not this script's type
      this.#script = script;
      this.#report(script, r);
      return r.status ?? 0;
    }
    return 0;
  }

  #report(script: string, r: SpawnSyncReturns<string>): void {
    if (r.stderr) this.onStderr(nodePath.basename(script), r.stderr);
  }

  /** The pre event; throws CalloutError when the owning script refuses (unless `force`). */
  pre(dev: CalloutDevice | undefined, force = false): void {
    const rc = this.#event(dev, 'pre');
    if (rc !== 0 && !force) throw new CalloutError(this.#script ?? '', rc);
  }

  /** The post event, after the operation; its result does not change the outcome. */
  post(dev: CalloutDevice | undefined, succeeded: boolean): void {
    this.#state = succeeded ? 'success' : 'failure';
    this.#event(dev, 'post');
  }

  /** Every notifier, with event notify; results ignored. */
  notify(dev: CalloutDevice | undefined): void {
    if (dev === undefined) return;
    for (const script of scriptsIn(this.env.notifierDirs)) {
      run(script, dev, 'notify', this.action, this.#state);
    }
  }
}

/**
 * Run `operation` wrapped in pre, post and notify, as mdevctl's
 * Callout::invoke: a refusing pre skips the operation (and post) but
 * notifiers still run; the operation's own error is rethrown after post.
 */
export function withCallouts<T>(
  env: Environment,
  action: CalloutAction,
  dev: () => CalloutDevice | undefined,
  onStderr: CalloutStderrSink,
  operation: () => T,
  force = false,
): T {
  const session = new CalloutSession(env, action, onStderr);
  try {
    session.pre(dev(), force);
    let result: T;
    try {
      result = operation();
    } catch (err) {
      session.post(dev(), false);
      throw err;
    }
    session.post(dev(), true);
    return result;
  } finally {
    session.notify(dev());
  }
}

/**
 * Ask the callouts for an active device's attributes (event get, action
 * attributes). Returns the parsed JSON stdout, or undefined when no script
 * claims the type or it printed nothing. Throws when the owning script fails
 * or prints something that is not JSON.
 */
export function getAttributesFromCallouts(
  env: Environment,
  dev: CalloutDevice,
  onStderr: CalloutStderrSink,
): unknown {
  for (const script of scriptsIn(env.calloutDirs)) {
    const r = run(script, dev, 'get', 'attributes', 'none');
    if (!ran(r) || r.status === 2) continue;
    if (r.status !== 0) {
      if (r.stderr) onStderr(nodePath.basename(script), r.stderr);
      throw new MdevError('callout-failed', `failed to get attributes from "${script}"`, {
        context: { script, uuid: dev.uuid, parent: dev.parent, type: dev.type },
      });
    }
    let out = r.stdout;
    if (out === '') return undefined;
    if (out === '[{}]') out = '[]';
    try {
      return JSON.parse(out);
    } catch {
      throw new MdevError(
        'callout-failed',
        `Unable to parse attributes from JSON printed by "${script}"`,
        { context: { script, uuid: dev.uuid, parent: dev.parent, type: dev.type } },
      );
    }
  }
  return undefined;
}

/** Is there any callout script at all? (Saves spawning per device when there is none.) */
export function hasCalloutScripts(env: Environment): boolean {
  return scriptsIn(env.calloutDirs).length > 0;
}

/** What a versioned callout script says it supports (mdevctl ≥ 1.3's capabilities protocol). */
export interface CalloutCapabilities {
  readonly version: number;
  readonly actions: readonly string[];
  readonly events: readonly string[];
}

/** What mdevkit offers scripts in the capabilities query (upstream's version 2). */
const PROVIDES = {
  provides: {
    version: 2,
    actions: ['start', 'stop', 'define', 'undefine', 'modify', 'attributes', 'capabilities'],
    events: ['pre', 'post', 'notify', 'get', 'live'],
  },
};

function parseCapabilities(stdout: string): CalloutCapabilities | undefined {
  try {
    const v = JSON.parse(stdout.replace(/\0+$/, '')) as { supports?: Partial<CalloutCapabilities> };
    const s = v?.supports;
    if (s === undefined || s === null || typeof s !== 'object') return undefined;
    if (typeof s.version !== 'number' || !Array.isArray(s.actions) || !Array.isArray(s.events)) {
      return undefined;
    }
    return { version: s.version, actions: s.actions, events: s.events };
  } catch {
    return undefined;
  }
}

/**
 * The versioned script for a device: scripts are asked in order with
 * `-e get -a capabilities` (our offer as JSON on stdin); the first that does
 * not answer "not my type" (exit 2) and prints `{"supports": {...}}` is it.
 * mdevkit asks this only for live changes: mdevctl 1.2.0 never asks, and its
 * callout protocol is what the other commands keep.
 */
export function findVersionedScript(
  env: Environment,
  dev: CalloutDevice,
): { script: string; supports: CalloutCapabilities } | undefined {
  const offer = JSON.stringify(PROVIDES);
  for (const script of scriptsIn(env.calloutDirs)) {
    const r = run(script, { ...dev, configJson: offer }, 'get', 'capabilities', 'none');
    if (!ran(r) || r.status === 2) continue;
    const supports = parseCapabilities(r.stdout);
    if (supports !== undefined) return { script, supports };
  }
  return undefined;
}

/**
 * Apply a new configuration to a running device through its versioned
 * callout script (event live, action modify), then run the notifiers.
 */
export function invokeLiveModify(
  env: Environment,
  dev: CalloutDevice,
  onStderr: CalloutStderrSink,
): void {
  const found = findVersionedScript(env, dev);
  if (found === undefined) {
    throw new MdevError(
      'live-modify-unsupported',
      'No callout script with version support found that supports live modify',
      { context: { uuid: dev.uuid, parent: dev.parent, type: dev.type } },
    );
  }
  const { script, supports } = found;
  if (!supports.actions.includes('modify') || !supports.events.includes('live')) {
    throw new MdevError(
      'live-modify-unsupported',
      `Callout script "${script}" does not support live modify`,
      { context: { script, uuid: dev.uuid, parent: dev.parent, type: dev.type } },
    );
  }
  const r = run(script, dev, 'live', 'modify', 'none');
  if (r.stderr) onStderr(nodePath.basename(script), r.stderr);
  const session = new CalloutSession(env, 'modify', onStderr);
  session.notify(dev);
  if (!ran(r)) {
    throw new MdevError('callout-failed', `callout script "${script}" could not be run`, {
      context: { script, uuid: dev.uuid },
    });
  }
  if (r.status !== 0) throw new CalloutError(script, r.status ?? -1);
}
