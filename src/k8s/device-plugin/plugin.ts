import * as grpc from '@grpc/grpc-js';
import {
  bindUnixSocket,
  grpcError,
  removeOwnSocket,
  Status,
  stopServer,
  type SocketIdentity,
} from '../grpc/unix-socket.js';
import { containerResponse, preferredAllocation } from './allocation.js';
import {
  HEALTHY,
  UNHEALTHY,
  devicePluginService,
  type AllocateResponse,
  type Device,
  type DevicePluginHandlers,
  type ListAndWatchResponse,
} from './api.js';
import type { PluginDevice } from './devices.js';

/**
 * One resource's device plugin: the DevicePlugin gRPC service on its own
 * socket (kubelet talks to one resource per endpoint), the list of devices
 * it advertises, and the ListAndWatch streams it keeps current.
 *
 * The manager (manager.ts) owns its life: it hands in the resource's
 * devices after every host change (`update`), holds them unhealthy while
 * the node's configuration is being applied (`hold`), and serves the
 * socket again when kubelet wiped it.
 */

export interface ResourcePluginOptions {
  readonly resourceName: string;
  readonly socketPath: string;
  /** Read one advertised device afresh from the host (Allocate checks before it hands one out). */
  readonly reread: (id: string) => PluginDevice | undefined;
  /** Does the device (as read now) still belong to this resource? */
  readonly selects: (d: PluginDevice) => boolean;
  /** Something Allocate found differs from the advertised list: look at the host again. */
  readonly onStale?: () => void;
  readonly log?: (line: string) => void;
}

export class ResourcePlugin {
  readonly resourceName: string;
  #devices = new Map<string, PluginDevice>();
  #hold: string | undefined;
  #server: grpc.Server | undefined;
  #socket: SocketIdentity | undefined;
  readonly #streams = new Set<grpc.ServerWritableStream<unknown, ListAndWatchResponse>>();
  #lastSent = '';
  #updates = 0;

  constructor(readonly options: ResourcePluginOptions) {
    this.resourceName = options.resourceName;
  }

  get socket(): SocketIdentity | undefined {
    return this.#socket;
  }

  /** The devices as advertised now (health included). */
  advertised(): Device[] {
    const out: Device[] = [];
    for (const d of this.#devices.values()) {
      out.push({
        ID: d.id,
        health: d.problem === undefined && this.#hold === undefined ? HEALTHY : UNHEALTHY,
        topology: d.numaNode === undefined ? null : { nodes: [{ ID: d.numaNode }] },
      });
    }
    return out;
  }

  /** How many ListAndWatch updates went out (for status and tests). */
  get updatesSent(): number {
    return this.#updates;
  }

  /** The resource's devices now; streams get the list when it changed. */
  update(devices: readonly PluginDevice[]): void {
    this.#devices = new Map(devices.map((d) => [d.id, d]));
    this.#push();
  }

  /** Advertise every device unhealthy (`reason`), or stop doing so (undefined). */
  hold(reason: string | undefined): void {
    this.#hold = reason;
    this.#push();
  }

  #message(): ListAndWatchResponse {
    return { devices: this.advertised() };
  }

  #push(): void {
    const msg = this.#message();
    const key = JSON.stringify(msg);
    if (key === this.#lastSent) return;
    this.#lastSent = key;
    if (this.#streams.size === 0) return;
    this.#updates++;
    for (const s of this.#streams) s.write(msg);
  }

  /** Serve the service on the socket (again, after kubelet wiped the directory). */
  async serve(): Promise<SocketIdentity> {
    this.stop();
    const server = new grpc.Server();
    server.addService(devicePluginService().service, this.#handlers());
    this.#server = server;
    this.#socket = await bindUnixSocket(server, this.options.socketPath);
    return this.#socket;
  }

  /** Stop serving: streams end, the socket goes (when it is still ours). */
  stop(): void {
    for (const s of this.#streams) s.end();
    this.#streams.clear();
    if (this.#server !== undefined) stopServer(this.#server);
    this.#server = undefined;
    if (this.#socket !== undefined) removeOwnSocket(this.#socket);
    this.#socket = undefined;
  }

  #handlers(): DevicePluginHandlers {
    const log = this.options.log ?? (() => {});
    return {
      GetDevicePluginOptions: (_call, cb) => {
        cb(null, { pre_start_required: false, get_preferred_allocation_available: true });
      },
      ListAndWatch: (call) => {
        this.#streams.add(call);
        const forget = (): void => {
          this.#streams.delete(call);
        };
        call.on('cancelled', forget);
        call.on('close', forget);
        call.on('error', forget);
        const msg = this.#message();
        this.#lastSent = JSON.stringify(msg);
        this.#updates++;
        call.write(msg);
      },
      GetPreferredAllocation: (call, cb) => {
        const responses = call.request.container_requests.map((r) => ({
          deviceIDs: preferredAllocation(
            this.#devices,
            r.available_deviceIDs,
            r.must_include_deviceIDs,
            r.allocation_size,
          ),
        }));
        cb(null, { container_responses: responses });
      },
      Allocate: (call, cb) => {
        try {
          cb(null, this.#allocate(call.request.container_requests));
        } catch (err) {
          const e = err as grpc.ServiceError;
          log(`${this.resourceName}: Allocate refused: ${e.details ?? e.message}`);
          cb(e.code !== undefined ? e : grpcError(Status.INTERNAL, e.message));
        }
      },
      PreStartContainer: (_call, cb) => cb(null, {}),
    };
  }

  /**
   * Allocate: each ID must be one this plugin advertised (anything else is
   * refused before it reaches a path), not held, and still there, healthy
   * and of this resource when read again from sysfs now.
   */
  #allocate(requests: readonly { devices_ids: string[] }[]): AllocateResponse {
    if (requests.length === 0) throw grpcError(Status.INVALID_ARGUMENT, 'no container requests');
    return {
      container_responses: requests.map((r) => {
        if (r.devices_ids.length === 0) {
          throw grpcError(Status.INVALID_ARGUMENT, 'a container request names no devices');
        }
        const granted: PluginDevice[] = [];
        for (const id of new Set(r.devices_ids)) {
          if (!this.#devices.has(id)) {
            throw grpcError(
              Status.INVALID_ARGUMENT,
              `${this.resourceName} has no device ${JSON.stringify(id.slice(0, 80))}`,
            );
          }
          if (this.#hold !== undefined) {
            throw grpcError(Status.UNAVAILABLE, `${this.resourceName}: ${this.#hold}`);
          }
          const now = this.options.reread(id);
          if (now === undefined || !this.options.selects(now)) {
            this.options.onStale?.();
            throw grpcError(Status.NOT_FOUND, `device ${id} of ${this.resourceName} is gone`);
          }
          if (now.problem !== undefined) {
            this.options.onStale?.();
            throw grpcError(
              Status.FAILED_PRECONDITION,
              `device ${id} is unhealthy: ${now.problem}`,
            );
          }
          granted.push(now);
        }
        return containerResponse(this.resourceName, granted);
      }),
    };
  }
}
