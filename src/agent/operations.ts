import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { ErrnoError } from '../common/errno.js';
import { CalloutError, hasCalloutScripts } from '../host/callouts.js';
import { ConfigError, formatConfig } from '../host/config-store.js';
import {
  AttributeWriteError,
  MdevError,
  defineDevice,
  modifyDevice,
  startDevice,
  stopDevice,
  undefineDevice,
  type MdevAttribute,
  type MdevDevice,
  type StartMode,
} from '../host/devices.js';
import type { Environment } from '../host/environment.js';
import { UnsafeNameError } from '../host/paths.js';
import type { SysfsPort } from '../port/sysfs-port.js';
import { ApiError } from './errors.js';

/*
 * The agent's writes — mdevctl's define, start, stop, undefine, modify —
 * and where they run.
 *
 * The host library is synchronous, and a write may wait on something
 * outside the agent: a callout script (which may be slow, or hang), or a
 * sysfs store that blocks (on current kernels, writing `remove` waits until
 * the VM lets go of the device). Run on the agent's event loop, such a
 * write froze everything else, /healthz included (issue 12: a 6 s callout
 * delayed /healthz by 11.6 s; a hung one hung the agent).
 *
 * So a write that may wait runs in a worker thread: the worker calls the
 * same library, with an Environment of its own for the same root. On a real
 * host that is simply `environmentAt(root)` — the worker reads and writes
 * /sys and /etc/mdevctl.d itself. The in-process lab cannot be handed to
 * another thread: its sysfs tree lives in the agent's. There the worker's
 * port is a bridge: each sysfs call is posted to the agent's thread, which
 * performs it on the lab's tree between two of its other tasks, while the
 * worker waits (Atomics.wait) for the answer — as a process waits in a
 * syscall while the kernel serves others. The tree is only ever touched by
 * the agent's thread, one call at a time; only the worker blocks.
 *
 * Writes that cannot wait run inline (no thread hop): on the lab when no
 * callout or notifier script is installed, which is the common case and
 * what the agent's benchmark measures. Once a write is in the worker, the
 * ones after it queue behind it (never overtaking it), up to
 * MAX_WAITING; beyond that the agent answers 503 rather than pile up.
 */

/** A definition's content handed to the host library as mdevctl's --jsonfile would be. */
function jsonDocument(type: string, start: StartMode, attrs: readonly MdevAttribute[]) {
  const doc = formatConfig({ mdevType: type, start, attrs });
  return { name: 'the request body', read: () => doc };
}

export interface CreateArgs {
  readonly uuid?: string | undefined;
  readonly parent: string;
  readonly type: string;
  readonly start: StartMode;
  readonly attrs: readonly MdevAttribute[];
  readonly define: boolean;
  readonly activate: boolean;
}

export interface ModifyArgs {
  readonly uuid: string;
  readonly parent: string;
  readonly type: string;
  readonly start: StartMode;
  readonly attrs: readonly MdevAttribute[];
}

/** The writes, as functions of an environment and plain (structured-clonable) arguments. */
export const OPERATIONS = {
  create(env: Environment, a: CreateArgs): MdevDevice {
    const json = jsonDocument(a.type, a.start, a.attrs);
    if (!a.define) return startDevice(env, { uuid: a.uuid, parent: a.parent, json });
    const made = defineDevice(env, { uuid: a.uuid, parent: a.parent, json });
    if (!a.activate) return made;
    try {
      return startDevice(env, { uuid: made.uuid, parent: a.parent });
    } catch (err) {
      undefineDevice(env, made.uuid, a.parent); // pairs with the define above
      throw err;
    }
  },
  modify(env: Environment, a: ModifyArgs): MdevDevice {
    return modifyDevice(env, {
      uuid: a.uuid,
      parent: a.parent,
      json: jsonDocument(a.type, a.start, a.attrs),
    });
  },
  start(env: Environment, a: { uuid: string; parent?: string | undefined }): MdevDevice {
    return startDevice(env, { uuid: a.uuid, parent: a.parent });
  },
  stop(env: Environment, a: { uuid: string }): void {
    stopDevice(env, a.uuid);
  },
  undefine(env: Environment, a: { uuid: string; parent?: string | undefined }): void {
    undefineDevice(env, a.uuid, a.parent);
  },
  /** Stop if active, then undefine if defined (DELETE /devices/{uuid}). */
  remove(env: Environment, a: { uuid: string; parent: string; active: boolean; defined: boolean }) {
    if (a.active) stopDevice(env, a.uuid);
    if (a.defined) undefineDevice(env, a.uuid, a.parent);
  },
};

export type OperationName = keyof typeof OPERATIONS;
type Args<K extends OperationName> = Parameters<(typeof OPERATIONS)[K]>[1];
type Result<K extends OperationName> = ReturnType<(typeof OPERATIONS)[K]>;

// ---- errors across the thread boundary ------------------------------------------

/**
 * The error classes a write may throw. An error crosses the boundary as
 * its class name, message and own fields (code, context, errno, path,
 * device and script names...) with its cause, and is rebuilt on the other
 * side with the same prototype, so the API maps it exactly as when the
 * library runs inline. No constructor is called: the fields are copied.
 */
const ERROR_CLASSES: Record<string, { prototype: object }> = {
  ErrnoError,
  MdevError,
  AttributeWriteError,
  CalloutError,
  ConfigError,
  UnsafeNameError,
  ApiError,
  SyntaxError,
  TypeError,
  RangeError,
  Error,
};

export interface WireError {
  readonly kind: string;
  readonly message: string;
  readonly stack?: string | undefined;
  readonly fields: Record<string, unknown>;
  readonly cause?: WireError | undefined;
}

export function toWire(err: unknown, depth = 0): WireError {
  if (!(err instanceof Error)) return { kind: 'Error', message: String(err), fields: {} };
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(err)) {
    if (k === 'cause') continue;
    try {
      fields[k] = structuredClone(v);
    } catch {
      // not data (a function, a handle): not part of what the error says
    }
  }
  let kind = 'Error';
  for (
    let p: object | null = Object.getPrototypeOf(err);
    p !== null;
    p = Object.getPrototypeOf(p)
  ) {
    const name = (p as { constructor?: { name?: string } }).constructor?.name;
    if (name !== undefined && Object.hasOwn(ERROR_CLASSES, name)) {
      kind = name;
      break;
    }
  }
  return {
    kind,
    message: err.message,
    stack: err.stack,
    fields,
    cause: err.cause === undefined || depth > 8 ? undefined : toWire(err.cause, depth + 1),
  };
}

export function fromWire(w: WireError): Error {
  const proto = (ERROR_CLASSES[w.kind] ?? Error).prototype;
  const err = Object.create(proto) as Error;
  Object.defineProperty(err, 'message', { value: w.message, writable: true, configurable: true });
  if (w.stack !== undefined) {
    Object.defineProperty(err, 'stack', { value: w.stack, writable: true, configurable: true });
  }
  Object.assign(err, w.fields);
  if (w.cause !== undefined) {
    Object.defineProperty(err, 'cause', {
      value: fromWire(w.cause),
      writable: true,
      configurable: true,
    });
  }
  return err;
}

// ---- the sysfs bridge (the lab's side) --------------------------------------------

/** One sysfs call from the worker: a method of SysfsPort and its arguments. */
export interface BridgeCall {
  readonly method: 'read' | 'readBytes' | 'write' | 'list' | 'readlink' | 'kind' | 'realpath';
  readonly args: readonly string[];
}
export type BridgeAnswer = { readonly value: unknown } | { readonly error: WireError };

/** Serve the worker's sysfs calls on `port`, in this (the agent's) thread. */
function serveBridge(port: SysfsPort, channel: MessagePort, signal: Int32Array): void {
  channel.on('message', (call: BridgeCall) => {
    let answer: BridgeAnswer;
    try {
      const fn = port[call.method] as ((...a: string[]) => unknown) | undefined;
      if (fn === undefined) throw new ErrnoError('EOPNOTSUPP', undefined, call.args[0]);
      answer = { value: fn.apply(port, call.args as string[]) };
    } catch (err) {
      answer = { error: toWire(err) };
    }
    channel.postMessage(answer);
    Atomics.store(signal, 0, 1);
    Atomics.notify(signal, 0);
  });
}

// ---- the runner -----------------------------------------------------------------

/** Where the worker finds the host (see the comment at the top). */
export interface WorkerPlan {
  /** The root the worker builds its Environment from (the lab's state dir, or the host's /). */
  readonly root: string;
  /** The in-process lab: sysfs calls come back to the agent's thread. */
  readonly bridge: boolean;
  /** Every write goes to the worker (a real host: sysfs stores may block), not only with scripts. */
  readonly always: boolean;
}

/** Writes waiting for the worker, beyond which the agent answers 503. */
export const MAX_WAITING = 64;

export interface WorkerMessage {
  readonly id: number;
  readonly op: OperationName;
  readonly args: unknown;
}
export type WorkerReply =
  | { readonly id: number; readonly value: unknown }
  | { readonly id: number; readonly error: WireError };

/**
 * How to start the worker: beside the CLI bundle, dist/agent-ops-worker.mjs
 * (scripts/build.mjs makes it); from the sources (tests run them with tsx),
 * ops-worker.ts, loaded once tsx's loader is registered in the worker (a
 * worker's entry module is resolved before an `--import` preload could).
 */
function workerSource(): { code: string | URL; eval: boolean } {
  for (const rel of ['./agent-ops-worker.mjs', '../agent-ops-worker.mjs']) {
    const url = new URL(rel, import.meta.url);
    if (fs.existsSync(fileURLToPath(url))) return { code: url, eval: false };
  }
  const ts = new URL('./ops-worker.ts', import.meta.url);
  if (fs.existsSync(fileURLToPath(ts))) {
    const tsx = import.meta.resolve('tsx/esm/api');
    return {
      code: `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(ts.href)}); })`,
      eval: true,
    };
  }
  throw new Error(
    `the agent's operations worker is missing beside ${import.meta.url}: run \`npm run build\``,
  );
}

export class Operations {
  #worker: Worker | undefined;
  #nextId = 1;
  readonly #waiting = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: unknown) => void }
  >();

  constructor(
    readonly env: Environment,
    readonly plan?: WorkerPlan,
  ) {}

  /** Writes sent to the worker and not yet answered. */
  get inWorker(): number {
    return this.#waiting.size;
  }

  /**
   * Run a write: inline when it cannot wait on anything, else in the
   * worker. Either way the answer (or the library's error) comes back as
   * a promise, and the agent's thread stays free meanwhile.
   */
  run<K extends OperationName>(op: K, args: Args<K>): Promise<Result<K>> {
    if (!this.#offload()) {
      try {
        return Promise.resolve(
          (OPERATIONS[op] as (env: Environment, a: Args<K>) => Result<K>)(this.env, args),
        );
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (this.#waiting.size >= MAX_WAITING) {
      return Promise.reject(
        new ApiError(
          'busy',
          `${this.#waiting.size} writes are waiting for the one in progress (a slow callout?); try again later`,
        ),
      );
    }
    const id = this.#nextId++;
    return new Promise<Result<K>>((resolve, reject) => {
      this.#waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#start().postMessage({ id, op, args } satisfies WorkerMessage);
    });
  }

  #offload(): boolean {
    const plan = this.plan;
    if (plan === undefined) return false;
    // Never overtake a write that is in the worker.
    if (plan.always || this.#waiting.size > 0) return true;
    return hasCalloutScripts(this.env) || this.env.notifierDirs.some(nonEmpty);
  }

  #start(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const plan = this.plan!;
    const source = workerSource();
    let bridge: { port: MessagePort; signal: Int32Array } | undefined;
    let ours: MessagePort | undefined;
    if (plan.bridge) {
      const channel = new MessageChannel();
      const signal = new Int32Array(new SharedArrayBuffer(4));
      serveBridge(this.env.port, channel.port1, signal);
      ours = channel.port1;
      bridge = { port: channel.port2, signal };
    }
    const worker = new Worker(source.code, {
      eval: source.eval,
      execArgv: [],
      workerData: { root: plan.root, configDir: this.env.configDir, bridge },
      transferList: bridge === undefined ? [] : [bridge.port],
    });
    worker.on('message', (m: WorkerReply) => {
      const w = this.#waiting.get(m.id);
      if (w === undefined) return;
      this.#waiting.delete(m.id);
      if ('error' in m) w.reject(fromWire(m.error));
      else w.resolve(m.value);
    });
    const failAll = (err: Error): void => {
      for (const w of this.#waiting.values()) w.reject(err);
      this.#waiting.clear();
      this.#worker = undefined;
      ours?.close();
    };
    worker.on('error', failAll);
    worker.on('exit', () => failAll(new Error("the agent's operations worker stopped")));
    this.#worker = worker;
    return worker;
  }

  async close(): Promise<void> {
    const w = this.#worker;
    this.#worker = undefined;
    if (w !== undefined) await w.terminate();
  }
}

function nonEmpty(dir: string): boolean {
  try {
    return fs.readdirSync(dir).length > 0;
  } catch {
    return false;
  }
}
