import {
  parentPort,
  receiveMessageOnPort,
  workerData,
  type MessagePort,
} from 'node:worker_threads';
import { environmentAt } from '../host/environment.js';
import type { SysfsNodeKind, SysfsPort } from '../port/sysfs-port.js';
import {
  OPERATIONS,
  fromWire,
  toWire,
  type BridgeAnswer,
  type BridgeCall,
  type WorkerMessage,
  type WorkerReply,
} from './operations.js';

/*
 * The agent's operations worker (see operations.ts): runs the host
 * library's writes, one at a time, so that a slow callout or a blocking
 * sysfs store waits here and not on the agent's event loop.
 */

interface Data {
  readonly root: string;
  readonly configDir: string;
  readonly bridge?: { readonly port: MessagePort; readonly signal: Int32Array };
}

/**
 * The lab's sysfs, reached through the agent's thread: each call is posted
 * there and this thread waits until the answer is in (the agent performs
 * it on the lab's tree between its other tasks).
 */
class BridgedPort implements SysfsPort {
  readonly description = 'in-process lab (through the agent thread)';
  constructor(
    private readonly port: MessagePort,
    private readonly signal: Int32Array,
  ) {}

  #call(method: BridgeCall['method'], ...args: string[]): unknown {
    Atomics.store(this.signal, 0, 0);
    this.port.postMessage({ method, args } satisfies BridgeCall);
    Atomics.wait(this.signal, 0, 0);
    const got = receiveMessageOnPort(this.port);
    if (got === undefined) throw new Error('the agent thread did not answer a sysfs call');
    const answer = got.message as BridgeAnswer;
    if ('error' in answer) throw fromWire(answer.error);
    return answer.value;
  }

  read(path: string): string {
    return this.#call('read', path) as string;
  }
  readBytes(path: string): Buffer {
    return Buffer.from(this.#call('readBytes', path) as Uint8Array);
  }
  write(path: string, data: string): void {
    this.#call('write', path, data);
  }
  list(path: string): string[] {
    return this.#call('list', path) as string[];
  }
  readlink(path: string): string {
    return this.#call('readlink', path) as string;
  }
  kind(path: string): SysfsNodeKind | null {
    return this.#call('kind', path) as SysfsNodeKind | null;
  }
  realpath(path: string): string {
    return this.#call('realpath', path) as string;
  }
}

const data = workerData as Data;
const env = environmentAt(
  data.root,
  data.bridge === undefined ? undefined : new BridgedPort(data.bridge.port, data.bridge.signal),
);
if (env.configDir !== data.configDir) {
  throw new Error(`worker's config dir ${env.configDir} is not the agent's ${data.configDir}`);
}

parentPort!.on('message', (m: WorkerMessage) => {
  let reply: WorkerReply;
  try {
    const op = OPERATIONS[m.op] as (e: typeof env, a: unknown) => unknown;
    reply = { id: m.id, value: op(env, m.args) };
  } catch (err) {
    reply = { id: m.id, error: toWire(err) };
  }
  parentPort!.postMessage(reply);
});
