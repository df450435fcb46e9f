import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { call } from '../../../src/k8s/grpc/call.js';
import { unixTarget, waitConnected } from '../../../src/k8s/grpc/unix-socket.js';
import {
  DRA_PLUGIN_TYPE,
  draPluginService,
  pluginRegistrationService,
  type DraPluginClient,
  type NodePrepareResourcesResponse,
  type NodeUnprepareResourcesResponse,
  type PluginInfo,
  type RegistrationClient,
} from '../../../src/k8s/dra/api.js';
import type { FakeApiServer } from './fake-apiserver.js';

/**
 * A stand-in for kubelet's side of Dynamic Resource Allocation, for tests
 * and the simulated fleet, written from kubelet's behaviour
 * (pkg/kubelet/pluginmanager and pkg/kubelet/cm/dra), independently of the
 * driver it tests:
 *
 * - **Plugin watcher**: the registry directory is walked at start and
 *   watched; a new socket whose name does not start with '.' is dialled
 *   (10 s), asked GetInfo (1 s), handed to the handler of its type (only
 *   DRAPlugin here), validated (supported_versions must name a service
 *   kubelet knows: v1.DRAPlugin, v1beta1.DRAPlugin), registered (an
 *   endpoint already registered for the driver is refused) and told the
 *   outcome with NotifyRegistrationStatus. A removed socket deregisters
 *   its plugin.
 * - **Prepare** (`preparePod`): per pod claim, the ResourceClaim is read
 *   from the API server, must reserve the pod and be allocated; claims not
 *   yet prepared are sent to each allocating driver in one
 *   NodePrepareResources (45 s); every claim must be in the answer and
 *   without error, else the pod fails. Prepared claims, their pods and CDI
 *   ids are kept (and checkpointed to `dra_manager_state`).
 * - **Unprepare** (`unpreparePod`): a claim is unprepared when its last
 *   pod goes, by NodeUnprepareResources to its drivers; failures keep it
 *   for the next try.
 * - **Restart**: connections dropped, registrations forgotten, the
 *   directory walked again; prepared claims survive (the checkpoint).
 *
 * `violations` records what the API forbids or the project requires
 * beyond kubelet's checks: sockets not mode 0600.
 */

export const KUBELET_SERVICES = ['v1.DRAPlugin', 'v1beta1.DRAPlugin'];
export const CALL_TIMEOUT_MS = 45_000;
export const STATE_FILE = 'dra_manager_state';

export interface DraRegistration {
  readonly socket: string;
  readonly info: PluginInfo | undefined;
  readonly error: string | undefined;
}

interface Plugin {
  readonly driver: string;
  readonly endpoint: string;
  readonly socket: string;
  readonly client: DraPluginClient;
}

export interface PreparedClaimInfo {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly drivers: readonly string[];
  readonly pods: Set<string>;
  /** request -> CDI device ids. */
  readonly cdi: Record<string, string[]>;
  prepared: boolean;
}

export interface DraPod {
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
  /** Names of the ResourceClaims the pod uses. */
  readonly claims: readonly string[];
}

export class PodError extends Error {
  override readonly name = 'PodError';
}

export class FakeDraKubelet extends EventEmitter {
  readonly registrations: DraRegistration[] = [];
  readonly violations: string[] = [];
  readonly #plugins = new Map<string, Plugin>();
  readonly claims = new Map<string, PreparedClaimInfo>();
  #watcher: fs.FSWatcher | undefined;
  #pending = new Map<string, Promise<void>>();
  restarts = 0;

  private constructor(
    readonly registryDir: string,
    readonly api: FakeApiServer,
    readonly stateDir: string,
  ) {
    super();
  }

  static async start(o: {
    registryDir: string;
    api: FakeApiServer;
    stateDir: string;
  }): Promise<FakeDraKubelet> {
    const k = new FakeDraKubelet(o.registryDir, o.api, o.stateDir);
    k.#startWatcher();
    return k;
  }

  #startWatcher(): void {
    fs.mkdirSync(this.registryDir, { recursive: true, mode: 0o755 });
    this.#watcher = fs.watch(this.registryDir, { persistent: false }, (_e, name) => {
      if (name !== null) this.#saw(nodePath.join(this.registryDir, name.toString()));
    });
    for (const name of fs.readdirSync(this.registryDir))
      this.#saw(nodePath.join(this.registryDir, name));
  }

  #saw(socket: string): void {
    if (nodePath.basename(socket).startsWith('.')) return; // the plugin watcher ignores these
    const st = fs.lstatSync(socket, { throwIfNoEntry: false });
    if (st === undefined) {
      for (const [driver, p] of this.#plugins) {
        if (p.socket !== socket) continue;
        p.client.close();
        this.#plugins.delete(driver);
        this.emit('deregistered', driver);
      }
      return;
    }
    if (!st.isSocket() || this.#pending.has(socket)) return;
    if ([...this.#plugins.values()].some((p) => p.socket === socket)) return;
    const run = this.#register(socket).finally(() => this.#pending.delete(socket));
    this.#pending.set(socket, run);
  }

  async #register(socket: string): Promise<void> {
    const record = (info: PluginInfo | undefined, error: string | undefined): void => {
      this.registrations.push({ socket, info, error });
      this.emit(error === undefined ? 'registered' : 'refused', info?.name, error);
    };
    const mode = fs.lstatSync(socket, { throwIfNoEntry: false })?.mode;
    if (mode !== undefined && (mode & 0o777) !== 0o600)
      this.violations.push(`${socket} has mode ${(mode & 0o777).toString(8)}, not 600`);
    const Reg = pluginRegistrationService();
    const reg = new Reg(
      unixTarget(socket),
      grpc.credentials.createInsecure(),
    ) as unknown as RegistrationClient;
    try {
      await waitConnected(reg, 10_000);
      const info = await call(reg.GetInfo, reg, {}, { deadline: Date.now() + 1000 });
      let error: string | undefined;
      if (info.type !== DRA_PLUGIN_TYPE)
        error = `no handler registered for plugin type: ${info.type} at socket ${socket}`;
      else if (info.supported_versions.length === 0)
        error = 'empty list of supported gRPC services (aka supported versions)';
      else if (!info.supported_versions.some((v) => KUBELET_SERVICES.includes(v)))
        error = `none of services supported by the plugin (${JSON.stringify(info.supported_versions)}) are supported by the kubelet`;
      else if (
        this.#plugins.get(info.name)?.endpoint === info.endpoint &&
        this.#plugins.get(info.name)?.socket !== socket
      )
        error = `endpoint ${info.endpoint} already registered for DRA driver plugin ${info.name}`;
      if (error === undefined) {
        const endpoint = info.endpoint === '' ? socket : info.endpoint;
        const emode = fs.lstatSync(endpoint, { throwIfNoEntry: false })?.mode;
        if (emode !== undefined && (emode & 0o777) !== 0o600)
          this.violations.push(`${endpoint} has mode ${(emode & 0o777).toString(8)}, not 600`);
        const Dra = draPluginService();
        const client = new Dra(
          unixTarget(endpoint),
          grpc.credentials.createInsecure(),
        ) as unknown as DraPluginClient;
        this.#plugins.get(info.name)?.client.close();
        this.#plugins.set(info.name, { driver: info.name, endpoint, socket, client });
      }
      await call(
        reg.NotifyRegistrationStatus,
        reg,
        { plugin_registered: error === undefined, error: error ?? '' },
        { deadline: Date.now() + 5000 },
      );
      record(info, error);
    } catch (err) {
      record(undefined, (err as Error).message);
    } finally {
      reg.close();
    }
  }

  /** Drivers registered now. */
  drivers(): string[] {
    return [...this.#plugins.keys()].sort();
  }

  /** Resolves once `driver` is registered. */
  async whenRegistered(driver: string, timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.#plugins.has(driver)) {
      if (Date.now() > end) throw new Error(`${driver} did not register with the fake kubelet`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  #client(driver: string): DraPluginClient {
    const p = this.#plugins.get(driver);
    if (p === undefined) throw new PodError(`DRA driver ${driver} is not registered`);
    return p.client;
  }

  /**
   * One NodePrepareResources call as it is, for tests of what kubelet may
   * send again (after its own restart, or a timed-out call).
   */
  async nodePrepare(
    driver: string,
    claims: { namespace: string; uid: string; name: string }[],
  ): Promise<NodePrepareResourcesResponse> {
    const client = this.#client(driver);
    return call(
      client.NodePrepareResources,
      client,
      { claims },
      {
        deadline: Date.now() + CALL_TIMEOUT_MS,
      },
    );
  }

  /** One NodeUnprepareResources call as it is. */
  async nodeUnprepare(
    driver: string,
    claims: { namespace: string; uid: string; name: string }[],
  ): Promise<NodeUnprepareResourcesResponse> {
    const client = this.#client(driver);
    return call(
      client.NodeUnprepareResources,
      client,
      { claims },
      {
        deadline: Date.now() + CALL_TIMEOUT_MS,
      },
    );
  }

  /** Prepare a pod's claims, as the DRA manager does before its containers start; returns CDI ids per claim. */
  async preparePod(pod: DraPod): Promise<Map<string, Record<string, string[]>>> {
    const batches = new Map<string, { namespace: string; uid: string; name: string }[]>();
    const infos: PreparedClaimInfo[] = [];
    for (const name of pod.claims) {
      const rc = this.api.get('resourceclaims', name, pod.namespace, 'resource.k8s.io');
      if (rc === undefined) throw new PodError(`fetch ResourceClaim ${name}: not found`);
      const status = (rc['status'] ?? {}) as {
        allocation?: { devices?: { results?: { driver: string; request: string }[] } };
        reservedFor?: { uid: string }[];
      };
      if (!(status.reservedFor ?? []).some((r) => r.uid === pod.uid))
        throw new PodError(
          `pod ${pod.name} (${pod.uid}) is not allowed to use ResourceClaim ${name} (${rc.metadata.uid ?? ''})`,
        );
      if (status.allocation === undefined)
        throw new PodError(`ResourceClaim ${name} is not allocated`);
      const drivers = [...new Set((status.allocation.devices?.results ?? []).map((r) => r.driver))];
      let info = this.claims.get(`${pod.namespace}/${name}`);
      if (info !== undefined && info.uid !== rc.metadata.uid)
        throw new PodError(
          `old ResourceClaim with same name ${name} and different UID ${info.uid} still exists`,
        );
      if (info === undefined) {
        info = {
          namespace: pod.namespace,
          name,
          uid: rc.metadata.uid!,
          drivers,
          pods: new Set(),
          cdi: {},
          prepared: false,
        };
        this.claims.set(`${pod.namespace}/${name}`, info);
      }
      info.pods.add(pod.uid);
      infos.push(info);
      if (info.prepared) continue;
      for (const d of drivers) {
        this.#client(d);
        let b = batches.get(d);
        if (b === undefined) batches.set(d, (b = []));
        b.push({ namespace: info.namespace, uid: info.uid, name: info.name });
      }
    }
    this.#save();
    for (const [driver, claims] of batches) {
      const client = this.#client(driver);
      let resp;
      try {
        resp = await call(
          client.NodePrepareResources,
          client,
          { claims },
          { deadline: Date.now() + CALL_TIMEOUT_MS },
        );
      } catch (err) {
        throw new PodError(
          `NodePrepareResources: ${(err as grpc.ServiceError).details ?? (err as Error).message}`,
        );
      }
      for (const [uid, result] of Object.entries(resp.claims)) {
        const c = claims.find((x) => x.uid === uid);
        if (c === undefined)
          throw new PodError(`NodePrepareResources returned result for unknown claim UID ${uid}`);
        if (result.error !== '')
          throw new PodError(
            `NodePrepareResources failed for ResourceClaim ${c.name}: ${result.error}`,
          );
        const info = this.claims.get(`${c.namespace}/${c.name}`)!;
        for (const d of result.devices)
          for (const r of d.request_names.length === 0 ? ['*'] : d.request_names)
            (info.cdi[r] ??= []).push(...d.cdi_device_ids);
      }
      const unfinished = claims.length - Object.keys(resp.claims).length;
      if (unfinished !== 0)
        throw new PodError(`NodePrepareResources skipped ${unfinished} ResourceClaims`);
    }
    for (const i of infos) i.prepared = true;
    this.#save();
    return new Map(infos.map((i) => [i.name, i.cdi]));
  }

  /** The pod is gone: claims no other pod uses are unprepared. */
  async unpreparePod(pod: DraPod): Promise<void> {
    const batches = new Map<string, PreparedClaimInfo[]>();
    for (const name of pod.claims) {
      const info = this.claims.get(`${pod.namespace}/${name}`);
      if (info === undefined) continue;
      if (info.pods.size > 1) {
        info.pods.delete(pod.uid);
        continue;
      }
      for (const d of info.drivers) {
        let b = batches.get(d);
        if (b === undefined) batches.set(d, (b = []));
        b.push(info);
      }
    }
    for (const [driver, infos] of batches) {
      const client = this.#client(driver);
      let resp;
      try {
        resp = await call(
          client.NodeUnprepareResources,
          client,
          { claims: infos.map((i) => ({ namespace: i.namespace, uid: i.uid, name: i.name })) },
          { deadline: Date.now() + CALL_TIMEOUT_MS },
        );
      } catch (err) {
        throw new PodError(
          `NodeUnprepareResources: ${(err as grpc.ServiceError).details ?? (err as Error).message}`,
        );
      }
      for (const [uid, result] of Object.entries(resp.claims)) {
        const i = infos.find((x) => x.uid === uid);
        if (i === undefined)
          throw new PodError(`NodeUnprepareResources returned result for unknown claim UID ${uid}`);
        if (result.error !== '')
          throw new PodError(
            `NodeUnprepareResources failed for ResourceClaim ${i.name}: ${result.error}`,
          );
      }
      if (Object.keys(resp.claims).length !== infos.length)
        throw new PodError(
          `NodeUnprepareResources skipped ${infos.length - Object.keys(resp.claims).length} ResourceClaims`,
        );
    }
    for (const infos of batches.values())
      for (const i of infos) this.claims.delete(`${i.namespace}/${i.name}`);
    this.#save();
  }

  /** kubelet's claim info checkpoint, written atomically. */
  #save(): void {
    const entries = [...this.claims.values()].map((c) => ({
      ClaimUID: c.uid,
      ClaimName: c.name,
      Namespace: c.namespace,
      PodUIDs: Object.fromEntries([...c.pods].map((p) => [p, {}])),
      DriverState: Object.fromEntries(c.drivers.map((d) => [d, {}])),
    }));
    const file = nodePath.join(this.stateDir, STATE_FILE);
    try {
      fs.mkdirSync(this.stateDir, { recursive: true });
      fs.writeFileSync(`${file}.tmp`, JSON.stringify({ Data: { Entries: entries }, Checksum: 0 }));
      fs.renameSync(`${file}.tmp`, file);
    } catch {
      // the directory is gone (the test is ending)
    }
  }

  /** kubelet restarts: plugins forgotten, the registry walked again. */
  async restart(): Promise<void> {
    this.#stopWatch();
    this.restarts++;
    await Promise.allSettled([...this.#pending.values()]);
    this.#startWatcher();
  }

  #stopWatch(): void {
    this.#watcher?.close();
    for (const p of this.#plugins.values()) p.client.close();
    this.#plugins.clear();
  }

  stop(): void {
    this.#stopWatch();
  }
}
