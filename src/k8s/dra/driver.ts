import * as nodePath from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import type { Environment } from '../../host/environment.js';
import type { HostChanges } from '../device-plugin/host-changes.js';
import { grpcError, Status } from '../grpc/unix-socket.js';
import type {
  DraPluginHandlers,
  NodePrepareResourceResponse,
  NodePrepareResourcesRequest,
  NodePrepareResourcesResponse,
  NodeUnprepareResourcesRequest,
  NodeUnprepareResourcesResponse,
} from './api.js';
import { buildCatalog, type Catalog } from './catalog.js';
import { CdiWriter } from './cdi.js';
import { Checkpoint } from './checkpoint.js';
import { ClaimError, DeviceState, type ClaimKey, type ClaimSource } from './device-state.js';
import type { DraEngine } from './engine.js';
import type { EventSink } from './kube.js';
import { KubeletPlugin } from './kubelet-plugin.js';
import { SlicePublisher, type SliceApi } from './publisher.js';

/**
 * mdevkit's DRA driver on one node, put together: the kubelet plugin
 * (registration and the DRA service), the device state behind
 * NodePrepareResources / NodeUnprepareResources, and the publisher that
 * keeps the node's ResourceSlices equal to what the host offers.
 * `mdevkit k8s dra` (src/cli/k8s.ts) builds one from its options; the
 * simulated fleet builds many in one process.
 *
 * The host is read afresh whenever it may have changed: on every change
 * signal (uevents, the sysfs poll of parents, devices and the AP masks),
 * after every Prepare and Unprepare, and every `resyncMs` for what no
 * signal shows (a device's aggregation, an AP assignment by someone else).
 * Reads are coalesced to one per turn of the event loop.
 */

/** The AP bus's masks: their changes give queues to guests or take them back, with no device appearing. */
export const AP_MASKS: readonly string[] = ['/sys/bus/ap/apmask', '/sys/bus/ap/aqmask'];

export interface DraDriverOptions {
  readonly env: Environment;
  readonly node: string;
  readonly driverName: string;
  readonly pluginsDir: string;
  readonly registryDir: string;
  readonly cdiDir: string;
  readonly engine: DraEngine;
  readonly claims: ClaimSource;
  readonly slices: SliceApi;
  readonly events: EventSink;
  readonly changes?: readonly HostChanges[];
  readonly resyncMs?: number;
  readonly log?: (line: string) => void;
  /** Test hook, see DeviceState. */
  readonly afterCreate?: (claim: ClaimKey) => void;
}

export class DraDriver {
  readonly plugin: KubeletPlugin;
  readonly state: DeviceState;
  readonly publisher: SlicePublisher;
  readonly checkpoint: Checkpoint;
  #catalog: Catalog | undefined;
  #refreshScheduled = false;
  #unsubscribe: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Notes already told as Node events (by parent), so each is told once. */
  readonly #told = new Map<string, string>();
  readonly #log: (line: string) => void;

  constructor(readonly options: DraDriverOptions) {
    this.#log = options.log ?? (() => {});
    const pluginDir = nodePath.join(options.pluginsDir, options.driverName);
    this.checkpoint = Checkpoint.open(nodePath.join(pluginDir, 'checkpoint.json'), this.#log);
    this.publisher = new SlicePublisher({
      api: options.slices,
      node: options.node,
      driver: options.driverName,
      log: this.#log,
    });
    this.state = new DeviceState({
      driver: options.driverName,
      pool: options.node,
      port: options.env.port,
      engine: options.engine,
      claims: options.claims,
      cdi: new CdiWriter({ driver: options.driverName, cdiDir: options.cdiDir, pluginDir }),
      checkpoint: this.checkpoint,
      changed: () => this.scheduleRefresh(),
      log: this.#log,
      ...(options.afterCreate !== undefined && { afterCreate: options.afterCreate }),
    });
    this.plugin = new KubeletPlugin({
      driverName: options.driverName,
      pluginsDir: options.pluginsDir,
      registryDir: options.registryDir,
      handlers: this.#handlers(),
      log: this.#log,
    });
  }

  /** The catalog last published. */
  get catalog(): Catalog | undefined {
    return this.#catalog;
  }

  /**
   * Recover what a crash left, publish the slices, then serve kubelet:
   * by the time kubelet can call, the pool is on its way to the API server.
   */
  async start(): Promise<void> {
    await this.state.recover();
    this.refresh();
    for (const c of this.options.changes ?? [])
      this.#unsubscribe.push(c(() => this.scheduleRefresh()));
    this.#timer = setInterval(() => this.scheduleRefresh(), this.options.resyncMs ?? 10_000);
    this.#timer.unref();
    await this.plugin.start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const off of this.#unsubscribe.splice(0)) off();
    clearInterval(this.#timer);
    await this.plugin.stop();
    this.publisher.stop();
  }

  /** Read the host soon (coalesced). */
  scheduleRefresh(): void {
    if (this.#refreshScheduled || this.#stopped) return;
    this.#refreshScheduled = true;
    setImmediate(() => {
      this.#refreshScheduled = false;
      if (!this.#stopped) this.refresh();
    });
  }

  /** Read the host now and publish what it offers. */
  refresh(): void {
    let catalog: Catalog;
    try {
      catalog = buildCatalog(this.options.engine.read(), {
        driver: this.options.driverName,
        owners: this.options.engine.owners(),
      });
    } catch (err) {
      this.#log(`reading the host: ${(err as Error).message}`);
      return;
    }
    this.#catalog = catalog;
    this.publisher.publish(catalog);
    const now = new Map(catalog.notes.map((n) => [n.parent, n.reason]));
    for (const [parent, reason] of now) {
      if (this.#told.get(parent) === reason) continue;
      this.#told.set(parent, reason);
      this.#event(() => this.options.events.node('Normal', 'OfferNarrowed', reason));
    }
    for (const parent of [...this.#told.keys()]) if (!now.has(parent)) this.#told.delete(parent);
  }

  #event(post: () => Promise<void>): void {
    post().catch((err: unknown) => this.#log(`recording an event: ${(err as Error).message}`));
  }

  #handlers(): DraPluginHandlers {
    return {
      NodePrepareResources: (
        call: grpc.ServerUnaryCall<NodePrepareResourcesRequest, NodePrepareResourcesResponse>,
        cb: grpc.sendUnaryData<NodePrepareResourcesResponse>,
      ) => {
        this.#prepareAll(call.request).then(
          (r) => cb(null, r),
          (err: unknown) => cb(grpcError(Status.INTERNAL, (err as Error).message)),
        );
      },
      NodeUnprepareResources: (
        call: grpc.ServerUnaryCall<NodeUnprepareResourcesRequest, NodeUnprepareResourcesResponse>,
        cb: grpc.sendUnaryData<NodeUnprepareResourcesResponse>,
      ) => {
        this.#unprepareAll(call.request).then(
          (r) => cb(null, r),
          (err: unknown) => cb(grpcError(Status.INTERNAL, (err as Error).message)),
        );
      },
    };
  }

  async #prepareAll(req: NodePrepareResourcesRequest): Promise<NodePrepareResourcesResponse> {
    const claims: Record<string, NodePrepareResourceResponse> = {};
    for (const c of req.claims) {
      try {
        const r = await this.state.prepare(c);
        claims[c.uid] = {
          devices: r.devices.map((d) => ({
            request_names: [d.request],
            pool_name: d.pool,
            device_name: d.device,
            cdi_device_ids: [...d.cdiDeviceIds],
          })),
          error: '',
        };
      } catch (err) {
        const message = (err as Error).message;
        const code = err instanceof ClaimError ? ` [${err.code}]` : '';
        this.#log(`prepare ${c.namespace}/${c.name}${code}: ${message}`);
        claims[c.uid] = { devices: [], error: message };
        if (err instanceof ClaimError && err.unsatisfiable) {
          this.#event(() =>
            this.options.events.claim(
              c,
              'Warning',
              'PrepareFailed',
              `node ${this.options.node}: ${message}`,
            ),
          );
        }
      }
    }
    return { claims };
  }

  async #unprepareAll(req: NodeUnprepareResourcesRequest): Promise<NodeUnprepareResourcesResponse> {
    const claims: NodeUnprepareResourcesResponse['claims'] = {};
    for (const c of req.claims) {
      try {
        await this.state.unprepare(c);
        claims[c.uid] = { error: '' };
      } catch (err) {
        const message = (err as Error).message;
        const code = err instanceof ClaimError ? ` [${err.code}]` : '';
        this.#log(`unprepare ${c.namespace}/${c.name}${code}: ${message}`);
        claims[c.uid] = { error: message };
      }
    }
    return { claims };
  }
}
