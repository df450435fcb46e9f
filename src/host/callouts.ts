import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import type { Environment } from './environment.js';
import { MdevError } from './errors.js';
import { parseJson } from './json-syntax.js';
import type { ScriptRequest, ScriptResult, Steps } from './script-runner.js';

/**
 * mdevctl's callout and notifier protocol, as mdevctl 1.4.0 speaks it.
 *
 * A callout script lives in <root>/usr/lib/mdevctl/scripts.d/callouts or
 * the older <root>/etc/mdevctl.d/scripts.d/callouts and is run as
 *
 *     SCRIPT -t TYPE -e EVENT -a ACTION -s STATE -u UUID -p PARENT
 *
 * EVENT is pre, post, get or live (notifiers: notify); ACTION is define,
 * undefine, modify, start, stop, attributes or capabilities; STATE is none
 * before the operation and success/failure after it. Stdin carries the
 * device's compact config JSON for pre, post and live, our capabilities
 * offer for `get capabilities`, nothing for `get attributes` and notifiers.
 *
 * Which script speaks for a device (its parent and type):
 * - first a *versioned* script: every script is asked, in name order, one
 *   directory after the other, `-e get -a capabilities`; the first that
 *   does not answer exit 2 ("not my type") and prints
 *   `{"supports": {version, actions, events}}` is it. It is asked once per
 *   parent and type per operation (upstream: per process), and then runs
 *   every event of that device; an action or event it does not list makes
 *   that event fail;
 * - else the first script (same order) that does not exit 2 when it gets
 *   the event itself; it keeps the device for later events once it
 *   answered 0.
 * A pre event that fails (not 0) stops the operation unless forced; post
 * and notifier results are ignored.
 *
 * The protocol is written as generators (`Steps`): each script run is
 * yielded as a `ScriptRequest`, and the caller's runner
 * (src/host/script-runner.ts) executes it, synchronously for the CLI or
 * asynchronously for the agent, and sends the result back in. Nothing here
 * starts a process or waits.
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
  /** Compact config JSON for stdin ({"mdev_type","start","attrs"}). */
  readonly configJson: string;
}

/** Something a script said on stderr, to be shown as "<script>: <text>". */
export type CalloutStderrSink = (script: string, text: string) => void;

/** Where a warning comes from: the CLI shows it as mdevctl's logger would (mdevctl::callouts). */
export type WarnSink = (message: string) => void;

/** A callout script refused an event or failed in it (code `callout-refused`). */
export class CalloutError extends MdevError {
  override readonly name = 'CalloutError';
  constructor(
    readonly script: string,
    /** Exit status; undefined when killed by a signal. */
    readonly exitCode: number | undefined,
  ) {
    super(
      'callout-refused',
      `Script '${rustDebug(script)}' failed with status '${exitCode ?? 'unknown'}'`,
      { context: { script, exitStatus: exitCode } },
    );
  }
}

/** A callout script ran past its time limit and was killed (code `callout-timeout`). */
export class CalloutTimeoutError extends MdevError {
  override readonly name = 'CalloutTimeoutError';
  constructor(
    readonly script: string,
    readonly timeoutMs: number,
    event: CalloutEvent,
    action: CalloutAction,
  ) {
    super(
      'callout-timeout',
      `Callout script ${rustDebug(script)} did not finish ${event} ${action} within ${formatMs(timeoutMs)} and was killed`,
      { context: { script, timeout: timeoutMs } },
    );
  }
}

/** A script printed more than the runner keeps (code `callout-failed`). */
export class CalloutOutputError extends MdevError {
  override readonly name = 'CalloutOutputError';
  constructor(readonly script: string) {
    super('callout-failed', `Callout script ${rustDebug(script)} printed too much and was killed`, {
      context: { script },
    });
  }
}

const formatMs = (ms: number): string => (ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`);

/** A path as Rust's `{:?}` shows it: in double quotes, with \ and " escaped. */
export function rustDebug(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return `"${out}"`;
}

/** Rust's `{:?}` of mdevctl's Action and Event enums: the variant name. */
const variant = (s: string): string => s[0]!.toUpperCase() + s.slice(1);

// ---------------------------------------------------------------- capabilities

/** What a versioned callout script says it supports. */
export interface CalloutCapabilities {
  readonly version: number;
  readonly actions: readonly string[];
  readonly events: readonly string[];
}

const KNOWN_ACTIONS = new Set([
  'start',
  'stop',
  'define',
  'undefine',
  'modify',
  'attributes',
  'capabilities',
  'test',
]);
const KNOWN_EVENTS = new Set(['pre', 'post', 'live', 'notify', 'get']);

/** What an unversioned script is taken to support (upstream's version 1). */
const VERSION_1: CalloutCapabilities = {
  version: 1,
  actions: ['start', 'stop', 'define', 'undefine', 'modify', 'attributes'],
  events: ['pre', 'post', 'notify', 'get'],
};

/** What we offer scripts in the capabilities query (upstream's version 2), serialised as upstream does. */
export const CAPABILITIES_OFFER = JSON.stringify({
  provides: {
    version: 2,
    actions: ['start', 'stop', 'define', 'undefine', 'modify', 'attributes', 'capabilities'],
    events: ['pre', 'post', 'notify', 'get', 'live'],
  },
});

/**
 * `{"supports": {...}}` read as mdevctl's serde types read it: version a
 * u32, actions and events arrays of strings (unknown names allowed, kept as
 * "unknown"), extra keys ignored, trailing NULs dropped. Undefined when it
 * is not such an answer (including `"supports": null`).
 */
export function parseCapabilities(stdout: Buffer): CalloutCapabilities | undefined {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(stdout);
  } catch {
    return undefined; // mdevctl panics here; not versioned is the sane reading
  }
  let v: unknown;
  try {
    v = JSON.parse(text.replace(/\0+$/, ''));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const s = (v as { supports?: unknown }).supports;
  if (typeof s !== 'object' || s === null || Array.isArray(s)) return undefined;
  const { version, actions, events } = s as Record<string, unknown>;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 0) return undefined;
  if (version > 4294967295) return undefined;
  const names = (x: unknown, known: Set<string>): string[] | undefined =>
    Array.isArray(x) && x.every((n) => typeof n === 'string')
      ? x.map((n: string) => (known.has(n) ? n : 'unknown'))
      : undefined;
  const a = names(actions, KNOWN_ACTIONS);
  const e = names(events, KNOWN_EVENTS);
  if (a === undefined || e === undefined) return undefined;
  return { version, actions: a, events: e };
}

// ---------------------------------------------------------------- per operation

interface ScriptInfo {
  readonly path: string;
  readonly supports: CalloutCapabilities;
}

/**
 * One operation's view of the scripts: the directory listings (read once)
 * and which versioned script speaks for each parent and type (asked once).
 * A long-running process makes one per operation, so scripts installed
 * later are seen by the next one.
 */
export class CalloutContext {
  readonly #listings = new Map<string, string[]>();
  readonly #versioned = new Map<string, ScriptInfo | null>();

  constructor(
    readonly env: Environment,
    readonly onStderr: CalloutStderrSink = () => {},
    readonly warn: WarnSink = () => {},
  ) {}

  /** Scripts of one directory in name order; undefined when it is not a directory. */
  scriptsIn(dir: string): string[] | undefined {
    let list = this.#listings.get(dir);
    if (list === undefined) {
      let names: string[];
      try {
        if (!fs.statSync(dir).isDirectory()) return undefined;
        names = fs.readdirSync(dir);
      } catch {
        return undefined;
      }
      list = names.sort().map((n) => nodePath.join(dir, n));
      this.#listings.set(dir, list);
    }
    return list;
  }

  /** Is there any callout script at all? (A listing spares every device the protocol when not.) */
  hasCallouts(): boolean {
    return this.env.calloutDirs.some((d) => (this.scriptsIn(d)?.length ?? 0) > 0);
  }

  /** @internal */ versionedFor(key: string): ScriptInfo | null | undefined {
    return this.#versioned.get(key);
  }
  /** @internal */ rememberVersioned(key: string, info: ScriptInfo | null): void {
    this.#versioned.set(key, info);
  }
}

function request(
  script: string,
  dev: CalloutDevice,
  event: CalloutEvent,
  action: CalloutAction,
  state: CalloutState,
  stdin: string | undefined,
): ScriptRequest {
  return {
    script,
    args: [
      '-t',
      dev.type,
      '-e',
      event,
      '-a',
      action,
      '-s',
      state,
      '-u',
      dev.uuid,
      '-p',
      dev.parent,
    ],
    stdin,
    label: `${event} ${action}`,
  };
}

/** A script killed by its time limit or its output limit is an error wherever it ran. */
function checkKilled(
  r: ScriptResult,
  script: string,
  event: CalloutEvent,
  action: CalloutAction,
): void {
  if (r.timedOut === true) throw new CalloutTimeoutError(script, r.timeoutMs ?? 0, event, action);
  if (r.outputLimit === true) throw new CalloutOutputError(script);
}

/** How a found script's answer is judged: plain events, or the capabilities query. */
type Check = 'default' | 'capabilities';

/**
 * One device's callouts during one operation (upstream's `Callout`): which
 * script speaks for it and the state post and notify report.
 */
export class DeviceCallout {
  state: CalloutState = 'none';
  #script: ScriptInfo | undefined;

  constructor(
    readonly ctx: CalloutContext,
    /** Read at each event: the device may change during the operation (attributes). */
    private readonly device: () => CalloutDevice,
  ) {}

  get dev(): CalloutDevice {
    return this.device();
  }

  /** The versioned script for this device's parent and type, asking the scripts once. */
  *#findVersioned(): Steps<ScriptInfo | undefined> {
    const dev = this.dev;
    const key = `${dev.parent}\0${dev.type}`;
    const known = this.ctx.versionedFor(key);
    if (known !== undefined) return known ?? undefined;
    let info: ScriptInfo | undefined;
    if (this.ctx.hasCallouts()) {
      // Asked as a fresh callout would ask: state none.
      const found = yield* this.#search(
        'get',
        'capabilities',
        CAPABILITIES_OFFER,
        'capabilities',
        'none',
      );
      info = found?.info;
    }
    this.ctx.rememberVersioned(key, info ?? null);
    return info;
  }

  /** Look the versioned script up again, as upstream does before each use. */
  *#refreshScript(): Steps<void> {
    this.#script = yield* this.#findVersioned();
  }

  /**
   * Run `event` for this device: with its script when it has one (which
   * must support it), else the first script that claims the device.
   * Returns the script's result, undefined when no script claimed it;
   * throws CalloutError when the script failed.
   */
  *callout(
    event: CalloutEvent,
    action: CalloutAction,
    stdin: string | undefined,
  ): Steps<ScriptResult | undefined> {
    const s = this.#script;
    if (s === undefined) {
      const found = yield* this.#search(event, action, stdin, 'default', this.state);
      if (found === undefined) return undefined;
      this.#script = found.info;
      return found.result;
    }
    supportsEventAction(s, event, action);
    const r = yield request(s.path, this.dev, event, action, this.state, stdin);
    if (r.spawnError !== undefined) throw spawnFailure(s.path, r.spawnError);
    checkKilled(r, s.path, event, action);
    this.#printErr(s.path, r);
    if (r.status === undefined || r.status === 0) return r;
    throw new CalloutError(s.path, r.status);
  }

  /**
   * Try the scripts in order until one claims the device (not exit 2, not
   * killed, and for the capabilities query: an answer with `supports`).
   * Throws CalloutError when the script that claims it fails the event.
   */
  *#search(
    event: CalloutEvent,
    action: CalloutAction,
    stdin: string | undefined,
    check: Check,
    state: CalloutState,
  ): Steps<{ result: ScriptResult; info: ScriptInfo } | undefined> {
    for (const dir of this.ctx.env.calloutDirs) {
      const scripts = this.ctx.scriptsIn(dir);
      if (scripts === undefined) continue;
      for (const path of scripts) {
        const r = yield request(path, this.dev, event, action, state, stdin);
        if (r.spawnError !== undefined) continue; // not a program we can run
        checkKilled(r, path, event, action);
        if (r.status === undefined) {
          this.ctx.warn(`callout script ${rustDebug(path)} was terminated by a signal`);
          continue;
        }
        if (r.status === 2) continue; // not this script's device type
        if (check === 'capabilities') {
          const supports = parseCapabilities(r.stdout);
          if (supports === undefined) continue; // no version support: keep looking
          this.#printErr(path, r);
          if (supports.actions.includes('unknown')) {
            this.ctx.warn(`Callout script ${rustDebug(path)} provides unknown Action type`);
          }
          if (supports.events.includes('unknown')) {
            this.ctx.warn(`Callout script ${rustDebug(path)} provides unknown Event type`);
          }
          return { result: r, info: { path, supports } };
        }
        this.#printErr(path, r);
        if (r.status !== 0) throw new CalloutError(path, r.status);
        return { result: r, info: { path, supports: VERSION_1 } };
      }
    }
    return undefined;
  }

  #printErr(path: string, r: ScriptResult): void {
    if (r.stderr !== '') this.ctx.onStderr(nodePath.basename(path), r.stderr);
  }

  /**
   * Run `operation` wrapped in the pre and post events and the notifiers,
   * as mdevctl's Callout::invoke: pre and post get the configuration as it
   * was before the operation; a refusing pre stops it (and post) unless
   * `force`, with a warning then; notifiers always run; the operation's own
   * error is rethrown after post.
   */
  *invoke<T>(action: CalloutAction, force: boolean, operation: () => Steps<T>): Steps<T> {
    try {
      yield* this.#refreshScript();
      const conf = this.dev.configJson;
      try {
        yield* this.callout('pre', action, conf);
      } catch (err) {
        if (!force || !(err instanceof MdevError)) throw err;
        this.ctx.warn(
          `Forcing operation '${action}' despite callout failure. Error was: ${err.message}`,
        );
      }
      let result: T;
      try {
        result = yield* operation();
        this.state = 'success';
      } catch (err) {
        this.state = 'failure';
        yield* this.#post(action, conf);
        throw err;
      }
      yield* this.#post(action, conf);
      return result;
    } finally {
      yield* this.notify(action);
    }
  }

  /** The post event; its failure changes nothing (a time limit is reported as a warning). */
  *#post(action: CalloutAction, conf: string): Steps<void> {
    try {
      yield* this.callout('post', action, conf);
    } catch (err) {
      if (err instanceof CalloutTimeoutError || err instanceof CalloutOutputError) {
        this.ctx.warn(err.message);
      } else if (!(err instanceof MdevError)) throw err;
    }
  }

  /**
   * The device's attributes as its script reports them (`get attributes`):
   * parsed JSON, or null when no script claims the device or it printed
   * nothing. Throws when the script fails or prints something that is not JSON.
   */
  *getAttributes(): Steps<unknown> {
    yield* this.#refreshScript();
    const r = yield* this.callout('get', 'attributes', undefined);
    if (r === undefined) return null;
    if (r.status !== 0) {
      const path = this.#script!.path;
      this.#printErr(path, r);
      throw new CalloutError(path, r.status);
    }
    let text = r.stdout.toString('utf8');
    if (text === '') return null;
    if (text === '[{}]') text = '[]';
    try {
      return parseJson(text.replace(/\0+$/, ''));
    } catch (err) {
      throw new MdevError('callout-failed', 'Invalid JSON received from callout script', {
        cause: err,
        context: { script: this.#script?.path, uuid: this.dev.uuid },
      });
    }
  }

  /**
   * Apply the device's configuration to the running device through its
   * versioned script (event live, action modify), then the notifiers.
   * `running` reads what sysfs says about the device now (after the script
   * is found, as mdevctl looks).
   */
  *modifyLive(
    running: () => { active: boolean; parent?: string | undefined; type?: string | undefined },
  ): Steps<void> {
    yield* this.#refreshScript();
    if (this.#script === undefined) {
      throw new MdevError(
        'live-modify-unsupported',
        'No callout script with version support found that supports live modify',
        { context: { uuid: this.dev.uuid, parent: this.dev.parent, type: this.dev.type } },
      );
    }
    const now = running();
    if (!now.active) return; // nothing running to change
    if (now.parent !== this.dev.parent) {
      throw new MdevError(
        'type-mismatch',
        'Device exists under different parent - cannot run live update',
        { context: { uuid: this.dev.uuid, parent: now.parent } },
      );
    }
    if (now.type !== this.dev.type) {
      throw new MdevError(
        'type-mismatch',
        'Device exists with different type - cannot run live update',
        { context: { uuid: this.dev.uuid, type: now.type } },
      );
    }
    supportsEventAction(this.#script, 'live', 'modify');
    try {
      yield* this.callout('live', 'modify', this.dev.configJson);
    } finally {
      yield* this.notify('modify');
    }
  }

  /** Every notifier, with event notify and the current state; nothing on stdin, results ignored. */
  *notify(action: CalloutAction): Steps<void> {
    for (const dir of this.ctx.env.notifierDirs) {
      for (const path of this.ctx.scriptsIn(dir) ?? []) {
        const r = yield request(path, this.dev, 'notify', action, this.state, undefined);
        if (r.timedOut === true) {
          this.ctx.warn(new CalloutTimeoutError(path, r.timeoutMs ?? 0, 'notify', action).message);
        }
      }
    }
  }
}

function supportsEventAction(s: ScriptInfo, event: CalloutEvent, action: CalloutAction): void {
  if (!s.supports.actions.includes(action)) {
    throw new MdevError(
      'callout-refused',
      `Script ${rustDebug(s.path)} does not support action '${variant(action)}'`,
      { context: { script: s.path } },
    );
  }
  if (!s.supports.events.includes(event)) {
    throw new MdevError(
      'callout-refused',
      `Script ${rustDebug(s.path)} does not support event '${variant(event)}'`,
      { context: { script: s.path } },
    );
  }
}

function spawnFailure(script: string, err: NodeJS.ErrnoException): MdevError {
  return MdevError.causedBy(
    err,
    `Unable to run callout script ${rustDebug(script)}`,
    { script },
    'callout-failed',
  );
}

/** Is there any callout script at all? (The agent's device view spares listings the protocol when not.) */
export function hasCalloutScripts(env: Environment): boolean {
  return new CalloutContext(env).hasCallouts();
}
