import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  API_VERSION,
  HEALTHY,
  KUBELET_SOCKET,
  MAX_DEVICE_ID_LENGTH,
  PRE_START_CONTAINER_TIMEOUT_MS,
  call,
  devicePluginService,
  registrationService,
  type ContainerAllocateResponse,
  type Device,
  type DevicePluginClient,
  type DevicePluginOptions,
  type ListAndWatchResponse,
  type RegisterRequest,
} from '../../../src/k8s/device-plugin/api.js';
import { unixTarget, waitConnected } from '../../../src/k8s/grpc/unix-socket.js';

/**
 * A stand-in for kubelet's device manager, for tests and the simulated
 * fleet: it speaks the device plugin API v1beta1 over unix sockets and
 * does what kubelet does (pkg/kubelet/cm/devicemanager), independently of
 * the plugin it tests:
 *
 * - **Registration** on <dir>/kubelet.sock: the version must be one kubelet
 *   supports, the resource name an extended resource name
 *   (IsExtendedResourceName), and the endpoint is joined to the directory
 *   and dialled back (10 s, blocking) before Register answers, then
 *   GetDevicePluginOptions is called and ListAndWatch started; a failure
 *   at any step is the answer. A resource registering again replaces its
 *   endpoint.
 * - **Devices**: every ListAndWatch message replaces the resource's list;
 *   capacity counts all devices, allocatable the healthy ones. When the
 *   stream ends, every device of the resource becomes unhealthy (the
 *   endpoint is kept stopped for a grace period).
 * - **Admission** (`admit`): per container and resource as
 *   allocateContainerResources does: refuse unregistered resources,
 *   resources with no healthy device and requests larger than what is
 *   free; ask GetPreferredAllocation when the plugin offers it (available =
 *   the free healthy devices, no NUMA hint) and take its answer, then fill
 *   from the rest; Allocate with one container request; on failure give
 *   the devices back. Selection is serialized per node as kubelet admits
 *   pods one at a time; the Allocate calls themselves may overlap.
 * - **Timeouts** as kubelet's: dial 10 s, PreStartContainer 30 s, none on
 *   Register's other calls, Allocate or GetPreferredAllocation.
 * - **Checkpoint**: after every allocation, release and device list, the
 *   device manager's checkpoint (`kubelet_internal_checkpoint`, kubelet's
 *   JSON: PodDeviceEntries with DeviceIDs per NUMA node, RegisteredDevices)
 *   is written in the directory, as kubelet does; its checksum and
 *   AllocResp bytes are left empty (nothing here verifies them).
 * - **Restart** (`restart`): stop serving, disconnect every plugin, remove
 *   every socket in the directory (CleanupPluginDirectory: files that are
 *   not directories, except the checkpoint), and serve a new kubelet.sock.
 *
 * Beyond kubelet, it records `violations`: what kubelet tolerates but the
 * API forbids or the project requires (device IDs over 63 characters,
 * health values other than Healthy/Unhealthy, an endpoint outside the
 * directory, sockets not mode 0600).
 */

export const SUPPORTED_VERSIONS = ['v1beta1'];
export const DIAL_TIMEOUT_MS = 10_000;
/** kubelet keeps a disconnected plugin's resource for 5 minutes. */
export const ENDPOINT_STOP_GRACE_MS = 5 * 60_000;
export const CHECKPOINT_FILE = 'kubelet_internal_checkpoint';

export interface FakeKubeletOptions {
  readonly dir: string;
  readonly dialTimeoutMs?: number;
  readonly name?: string;
}

export interface Registration {
  readonly at: number;
  readonly request: RegisterRequest;
  readonly error: string | undefined;
}

interface Endpoint {
  readonly resource: string;
  readonly socketPath: string;
  readonly client: DevicePluginClient;
  readonly options: DevicePluginOptions;
  devices: Map<string, Device>;
  stopTime: number | undefined;
  stream: grpc.ClientReadableStream<ListAndWatchResponse> | undefined;
  updates: number;
}

export interface ContainerSpec {
  readonly name: string;
  /** resource name -> how many devices. */
  readonly limits: Readonly<Record<string, number>>;
}

export interface PodSpec {
  readonly uid: string;
  readonly containers: readonly ContainerSpec[];
}

export interface ContainerAllocation {
  readonly container: string;
  readonly resource: string;
  readonly devices: readonly string[];
  readonly response: ContainerAllocateResponse;
}

/** An admission refused by the device manager (kubelet's UnexpectedAdmissionError). */
export class AdmissionError extends Error {
  override readonly name = 'AdmissionError';
}

export class FakeKubelet extends EventEmitter {
  readonly dir: string;
  readonly socketPath: string;
  readonly registrations: Registration[] = [];
  readonly violations: string[] = [];
  readonly #endpoints = new Map<string, Endpoint>();
  /** resource -> device IDs given to pods. */
  readonly #allocated = new Map<string, Set<string>>();
  /** pod uid -> its allocations. */
  readonly pods = new Map<string, ContainerAllocation[]>();
  #server: grpc.Server | undefined;
  #admitting: Promise<unknown> = Promise.resolve();
  restarts = 0;

  private constructor(readonly options: FakeKubeletOptions) {
    super();
    this.dir = options.dir;
    this.socketPath = nodePath.join(options.dir, KUBELET_SOCKET);
  }

  static async start(options: FakeKubeletOptions): Promise<FakeKubelet> {
    const k = new FakeKubelet(options);
    await k.#serve();
    return k;
  }

  // ---- the registration service

  async #serve(): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o750 });
    this.#cleanupDir();
    const server = new grpc.Server();
    server.addService(registrationService().service, {
      Register: (
        c: grpc.ServerUnaryCall<RegisterRequest, object>,
        cb: grpc.sendUnaryData<object>,
      ) => {
        this.#register(c.request).then(
          () => cb(null, {}),
          (err: Error) =>
            cb({
              code: grpc.status.UNKNOWN,
              details: err.message,
              name: '',
              message: err.message,
              metadata: new grpc.Metadata(),
            }),
        );
      },
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(
        unixTarget(this.socketPath),
        grpc.ServerCredentials.createInsecure(),
        (err) => (err === null ? resolve() : reject(err)),
      ),
    );
    this.#server = server;
  }

  /** kubelet's CleanupPluginDirectory: every non-directory except the checkpoint. */
  #cleanupDir(): void {
    for (const name of fs.readdirSync(this.dir)) {
      if (name === CHECKPOINT_FILE) continue;
      const p = nodePath.join(this.dir, name);
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      if (st === undefined || st.isDirectory()) continue;
      fs.rmSync(p, { force: true });
    }
  }

  async #register(r: RegisterRequest): Promise<void> {
    const record = (error: string | undefined): void => {
      this.registrations.push({ at: Date.now(), request: r, error });
      this.emit(error === undefined ? 'registered' : 'refused', r.resource_name, error);
    };
    if (!SUPPORTED_VERSIONS.includes(r.version)) {
      const e = `requested device plugin API version "${r.version}" is not supported by kubelet. Supported versions are ${JSON.stringify(SUPPORTED_VERSIONS)}`;
      record(e);
      throw new Error(e);
    }
    if (!isExtendedResourceName(r.resource_name)) {
      const e = `the ResourceName "${r.resource_name}" is invalid`;
      record(e);
      throw new Error(e);
    }
    if (r.endpoint !== nodePath.basename(r.endpoint) || r.endpoint === '' || r.endpoint === '..') {
      this.violations.push(
        `endpoint ${JSON.stringify(r.endpoint)} is not a file name in ${this.dir}`,
      );
    }
    const socketPath = nodePath.join(this.dir, r.endpoint);
    const st = fs.lstatSync(socketPath, { throwIfNoEntry: false });
    if (st !== undefined && st.isSocket() && (st.mode & 0o777) !== 0o600) {
      this.violations.push(`${socketPath} has mode ${(st.mode & 0o777).toString(8)}, not 600`);
    }
    try {
      await this.#connect(r.resource_name, socketPath);
    } catch (err) {
      const e = `failed to dial device plugin: ${(err as Error).message}`;
      record(e);
      throw new Error(e);
    }
    record(undefined);
  }

  async #connect(resource: string, socketPath: string): Promise<void> {
    const Client = devicePluginService();
    const client = new Client(unixTarget(socketPath), grpc.credentials.createInsecure(), {
      'grpc.default_authority': 'localhost',
    }) as unknown as DevicePluginClient;
    try {
      await waitConnected(client, this.options.dialTimeoutMs ?? DIAL_TIMEOUT_MS);
      const options = await call(client.GetDevicePluginOptions, client, {});
      const old = this.#endpoints.get(resource);
      const ep: Endpoint = {
        resource,
        socketPath,
        client,
        options,
        // A new endpoint starts with the devices of the old one (kubelet keeps them until the first list).
        devices: new Map(old?.devices ?? []),
        stopTime: undefined,
        stream: undefined,
        updates: 0,
      };
      this.#endpoints.set(resource, ep);
      if (old !== undefined && old.client !== client) {
        old.stream?.cancel();
        old.client.close();
      }
      this.#run(ep);
    } catch (err) {
      client.close();
      throw err;
    }
  }

  /** ListAndWatch until it ends; then the resource's devices are unhealthy. */
  #run(ep: Endpoint): void {
    const stream = ep.client.ListAndWatch({});
    ep.stream = stream;
    stream.on('data', (msg: ListAndWatchResponse) => {
      const devices = new Map<string, Device>();
      for (const d of msg.devices) {
        if (d.ID.length > MAX_DEVICE_ID_LENGTH) {
          this.violations.push(`${ep.resource}: device ID ${d.ID} is longer than 63 characters`);
        }
        if (d.health !== 'Healthy' && d.health !== 'Unhealthy') {
          this.violations.push(
            `${ep.resource}: device ${d.ID} has health ${JSON.stringify(d.health)}`,
          );
        }
        devices.set(d.ID, d);
      }
      ep.devices = devices;
      ep.updates++;
      this.#writeCheckpoint();
      this.emit('devices', ep.resource, [...devices.values()]);
    });
    const ended = (): void => {
      if (this.#endpoints.get(ep.resource) !== ep || ep.stopTime !== undefined) return;
      ep.stopTime = Date.now();
      for (const [id, d] of ep.devices) ep.devices.set(id, { ...d, health: 'Unhealthy' });
      this.emit('disconnected', ep.resource);
    };
    stream.on('error', ended);
    stream.on('end', ended);
  }

  // ---- what kubelet knows

  /** Registered resources (connected or within their grace period). */
  resources(): string[] {
    const now = Date.now();
    return [...this.#endpoints.values()]
      .filter((e) => e.stopTime === undefined || now - e.stopTime <= ENDPOINT_STOP_GRACE_MS)
      .map((e) => e.resource)
      .sort();
  }

  isConnected(resource: string): boolean {
    const ep = this.#endpoints.get(resource);
    return ep !== undefined && ep.stopTime === undefined && ep.updates > 0;
  }

  devices(resource: string): Device[] {
    return [...(this.#endpoints.get(resource)?.devices.values() ?? [])];
  }

  healthy(resource: string): string[] {
    return this.devices(resource)
      .filter((d) => d.health === HEALTHY)
      .map((d) => d.ID)
      .sort();
  }

  /** The node status kubelet would report: capacity (all devices) and allocatable (healthy). */
  capacity(resource: string): { capacity: number; allocatable: number } {
    return { capacity: this.devices(resource).length, allocatable: this.healthy(resource).length };
  }

  /** How many ListAndWatch messages arrived for the resource (since its last registration). */
  updates(resource: string): number {
    return this.#endpoints.get(resource)?.updates ?? 0;
  }

  pluginOptions(resource: string): DevicePluginOptions | undefined {
    return this.#endpoints.get(resource)?.options;
  }

  allocated(resource: string): string[] {
    return [...(this.#allocated.get(resource) ?? [])].sort();
  }

  // ---- pod admission

  /** Admit a pod: allocate every container's devices, as the device manager does. */
  admit(pod: PodSpec): Promise<ContainerAllocation[]> {
    const run = async (): Promise<ContainerAllocation[]> => {
      const out: ContainerAllocation[] = [];
      try {
        for (const c of pod.containers) {
          for (const [resource, needed] of Object.entries(c.limits)) {
            if (needed <= 0) continue;
            out.push(await this.#allocateContainer(pod.uid, c.name, resource, needed));
          }
        }
      } catch (err) {
        for (const a of out) this.#release(a.resource, a.devices);
        throw err;
      }
      this.pods.set(pod.uid, out);
      this.#writeCheckpoint();
      return out;
    };
    return run();
  }

  /** A pod went away: its devices are free again. */
  removePod(uid: string): void {
    for (const a of this.pods.get(uid) ?? []) this.#release(a.resource, a.devices);
    this.pods.delete(uid);
    this.#writeCheckpoint();
  }

  #release(resource: string, ids: readonly string[]): void {
    const set = this.#allocated.get(resource);
    for (const id of ids) set?.delete(id);
  }

  async #allocateContainer(
    podUid: string,
    container: string,
    resource: string,
    needed: number,
  ): Promise<ContainerAllocation> {
    // Choosing devices is serialized (kubelet admits pods one at a time).
    const chosen = this.#admitting.then(() =>
      this.#devicesToAllocate(podUid, container, resource, needed),
    );
    this.#admitting = chosen.catch(() => undefined);
    const { ep, ids } = await chosen;
    try {
      const resp = await call(ep.client.Allocate, ep.client, {
        container_requests: [{ devices_ids: ids }],
      });
      const first = resp.container_responses[0];
      if (first === undefined)
        throw new AdmissionError(`no containers return in allocation response`);
      if (ep.options.pre_start_required) {
        await call(
          ep.client.PreStartContainer,
          ep.client,
          { devices_ids: ids },
          {
            deadline: Date.now() + PRE_START_CONTAINER_TIMEOUT_MS,
          },
        );
      }
      return { container, resource, devices: ids, response: first };
    } catch (err) {
      this.#release(resource, ids);
      if (err instanceof AdmissionError) throw err;
      throw new AdmissionError(
        `Allocate failed for ${resource}: ${(err as grpc.ServiceError).details ?? (err as Error).message}`,
      );
    }
  }

  async #devicesToAllocate(
    podUid: string,
    container: string,
    resource: string,
    needed: number,
  ): Promise<{ ep: Endpoint; ids: string[] }> {
    const ep = this.#endpoints.get(resource);
    if (ep === undefined)
      throw new AdmissionError(`cannot allocate unregistered device ${resource}`);
    if (ep.stopTime !== undefined) throw new AdmissionError(`endpoint ${resource} is stopped`);
    const healthy = this.healthy(resource);
    if (healthy.length === 0) {
      throw new AdmissionError(
        `no healthy devices present; cannot allocate unhealthy devices ${resource}`,
      );
    }
    let inUse = this.#allocated.get(resource);
    if (inUse === undefined) this.#allocated.set(resource, (inUse = new Set()));
    const available = healthy.filter((id) => !inUse.has(id));
    if (available.length < needed) {
      throw new AdmissionError(
        `requested number of devices unavailable for ${resource}. Requested: ${needed}, Available: ${available.length}`,
      );
    }
    const allocated: string[] = [];
    const takeFrom = (ids: Iterable<string>): boolean => {
      for (const id of ids) {
        if (allocated.length === needed) break;
        if (allocated.includes(id) || !available.includes(id)) continue;
        allocated.push(id);
      }
      return allocated.length === needed;
    };
    if (ep.options.get_preferred_allocation_available) {
      const resp = await call(ep.client.GetPreferredAllocation, ep.client, {
        container_requests: [
          { available_deviceIDs: available, must_include_deviceIDs: [], allocation_size: needed },
        ],
      });
      this.emit(
        'preferred',
        resource,
        resp.container_responses[0]?.deviceIDs ?? [],
        podUid,
        container,
      );
      takeFrom(resp.container_responses[0]?.deviceIDs ?? []);
    }
    takeFrom(available);
    for (const id of allocated) inUse.add(id);
    return { ep, ids: allocated };
  }

  /** The device manager's checkpoint, as kubelet writes it (atomically: temp file, rename). */
  #writeCheckpoint(): void {
    const entries = [];
    for (const [uid, allocations] of this.pods) {
      for (const a of allocations) {
        const perNuma: Record<string, string[]> = {};
        for (const id of a.devices) {
          const numa =
            this.#endpoints.get(a.resource)?.devices.get(id)?.topology?.nodes[0]?.ID ?? -1;
          (perNuma[String(numa)] ??= []).push(id);
        }
        entries.push({
          PodUID: uid,
          ContainerName: a.container,
          ResourceName: a.resource,
          DeviceIDs: perNuma,
          AllocResp: '',
        });
      }
    }
    const registered: Record<string, string[]> = {};
    for (const r of this.#endpoints.keys()) registered[r] = this.healthy(r);
    const file = nodePath.join(this.dir, CHECKPOINT_FILE);
    try {
      fs.writeFileSync(
        `${file}.tmp`,
        JSON.stringify({
          Data: { PodDeviceEntries: entries, RegisteredDevices: registered },
          Checksum: 0,
        }),
      );
      fs.renameSync(`${file}.tmp`, file);
    } catch {
      // the directory is gone (the test is ending)
    }
  }

  // ---- life

  /** kubelet restarts: plugins are cut off, the sockets wiped, a new kubelet.sock served. */
  async restart(): Promise<void> {
    this.#stopServer();
    for (const ep of this.#endpoints.values()) {
      ep.stream?.cancel();
      ep.client.close();
      if (ep.stopTime === undefined) ep.stopTime = Date.now();
      for (const [id, d] of ep.devices) ep.devices.set(id, { ...d, health: 'Unhealthy' });
    }
    this.restarts++;
    await this.#serve();
  }

  #stopServer(): void {
    this.#server?.forceShutdown();
    this.#server = undefined;
  }

  stop(): void {
    this.#stopServer();
    for (const ep of this.#endpoints.values()) {
      ep.stream?.cancel();
      ep.client.close();
    }
    this.#endpoints.clear();
  }
}

// ---- kubelet's resource name check (IsExtendedResourceName, IsQualifiedName)

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

export function isExtendedResourceName(name: string): boolean {
  const native = !name.includes('/') || name.includes('kubernetes.io/');
  if (native || name.startsWith('requests.')) return false;
  const parts = `requests.${name}`.split('/');
  if (parts.length !== 2) return false;
  const [prefix, base] = parts as [string, string];
  if (prefix.length === 0 || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix)) return false;
  return base.length > 0 && base.length <= 63 && QUALIFIED_NAME_PART.test(base);
}

export { API_VERSION };
