import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { isSameSocket, socketIdentity, type SocketIdentity } from '../grpc/unix-socket.js';
import { KUBELET_SOCKET } from './api.js';
import { resourcesFor, type PluginConfig, type ResourceSpec } from './config.js';
import type { DeviceSource, PluginDevice } from './devices.js';
import type { HostChanges } from './host-changes.js';
import { ResourcePlugin } from './plugin.js';
import { register } from './registration.js';
import { endpointName } from './resource-name.js';

/**
 * A node's device plugins: one ResourcePlugin per resource, kept in step
 * with the host and with kubelet.
 *
 * - **Serve, then register.** Each plugin binds its socket in the device
 *   plugin directory, then registers with kubelet.sock there; kubelet
 *   dials back before it answers. A refused or unanswered registration is
 *   tried again every second (and at once when the directory changes).
 * - **Host changes** (uevents, the sysfs poll, /dev/vfio) schedule one
 *   read of every device source, coalesced to the next turn of the event
 *   loop; each plugin gets its devices and tells kubelet when they differ.
 * - **kubelet restarts.** kubelet removes every socket in the directory
 *   when it starts (and makes a new kubelet.sock). The directory is
 *   watched (inotify, plus a check every second for what inotify misses):
 *   a plugin whose socket is gone or replaced serves a new one and
 *   registers again; a new kubelet.sock makes every plugin register again.
 * - **Holds.** While the node's configuration is applied, the resources it
 *   touches are advertised unhealthy (`hold`), so kubelet admits no pod
 *   onto devices about to change.
 */

export interface DevicePluginManagerOptions {
  readonly pluginDir: string;
  readonly config: PluginConfig;
  readonly sources: readonly DeviceSource[];
  readonly changes?: readonly HostChanges[];
  readonly log?: (line: string) => void;
  /** How long kubelet may take to answer Register (it dials back within 10 s). */
  readonly registerTimeoutMs?: number;
  /** Pause between registration attempts. */
  readonly retryMs?: number;
  /** How often the sockets are checked besides inotify. */
  readonly socketCheckMs?: number;
}

export interface ResourceStatus {
  readonly resource: string;
  readonly socket: string;
  readonly registered: boolean;
  readonly devices: number;
  readonly healthy: number;
}

interface PluginState {
  readonly spec: ResourceSpec;
  readonly plugin: ResourcePlugin;
  registered: boolean;
  /** kubelet.sock as it was when this plugin registered. */
  kubelet: SocketIdentity | undefined;
  bringingUp: Promise<void> | undefined;
}

interface Hold {
  readonly applies: (resource: string) => boolean;
  readonly reason: string;
}

export class DevicePluginManager extends EventEmitter {
  readonly #states = new Map<string, PluginState>();
  readonly #holds = new Set<Hold>();
  readonly #unsubscribe: (() => void)[] = [];
  #devices: PluginDevice[] = [];
  #refreshScheduled = false;
  #watcher: fs.FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #sleepers = new Set<() => void>();
  #stopped = false;
  readonly #log: (line: string) => void;

  constructor(readonly options: DevicePluginManagerOptions) {
    super();
    this.#log = options.log ?? (() => {});
  }

  get kubeletSocket(): string {
    return nodePath.join(this.options.pluginDir, KUBELET_SOCKET);
  }

  /** Read the host, serve and register every resource; resolves once each is registered. */
  async start(): Promise<void> {
    this.#readHost();
    this.#watchDir();
    this.#timer = setInterval(() => this.#checkSockets(), this.options.socketCheckMs ?? 1000);
    this.#timer.unref();
    for (const changes of this.options.changes ?? []) {
      this.#unsubscribe.push(changes(() => this.scheduleRefresh()));
    }
    this.#syncResources();
    await this.whenRegistered();
  }

  /** Resolves when every plugin is registered (now, or after its next registration). */
  async whenRegistered(): Promise<void> {
    await Promise.all([...this.#states.values()].map((s) => this.#bringUp(s)));
  }

  /** Stop every plugin and watcher; sockets are removed. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const off of this.#unsubscribe.splice(0)) off();
    this.#watcher?.close();
    clearInterval(this.#timer);
    this.#wake();
    for (const s of this.#states.values()) s.plugin.stop();
    await Promise.allSettled([...this.#states.values()].map((s) => s.bringingUp));
  }

  /** Look at the host again soon (coalesced: one read per turn of the event loop). */
  scheduleRefresh(): void {
    if (this.#refreshScheduled || this.#stopped) return;
    this.#refreshScheduled = true;
    setImmediate(() => {
      this.#refreshScheduled = false;
      if (!this.#stopped) this.refresh();
    });
  }

  /** Look at the host now and tell kubelet what changed. */
  refresh(): void {
    this.#readHost();
    this.#syncResources();
  }

  /**
   * Advertise the resources `applies` selects as unhealthy, for `reason`,
   * until the returned function is called.
   */
  hold(applies: (resource: string) => boolean, reason: string): () => void {
    const h: Hold = { applies, reason };
    this.#holds.add(h);
    this.#applyHolds();
    return () => {
      this.#holds.delete(h);
      this.#applyHolds();
    };
  }

  /**
   * The resources that would advertise devices of these types: the
   * configured ones that select them, or their default names. A type no
   * device has yet (an apply is about to create the first) is matched by a
   * device record made up for the question.
   */
  resourcesOfTypes(types: readonly { type: string; name?: string }[]): Set<string> {
    const out = new Set<string>();
    const specs = resourcesFor(
      this.options.config,
      types.map((t) => probeDevice(t.type, t.name)),
    );
    for (const t of types) {
      const probe = probeDevice(t.type, t.name);
      for (const spec of [...this.#states.values()].map((s) => s.spec).concat(specs)) {
        if (spec.selects(probe)) {
          out.add(spec.name);
          break;
        }
      }
    }
    return out;
  }

  /** The resources and where they stand. */
  status(): ResourceStatus[] {
    return [...this.#states.values()].map((s) => {
      const adv = s.plugin.advertised();
      return {
        resource: s.spec.name,
        socket: this.#socketPath(s.spec.name),
        registered: s.registered,
        devices: adv.length,
        healthy: adv.filter((d) => d.health === 'Healthy').length,
      };
    });
  }

  /** The plugin of a resource (tests and benchmarks look inside). */
  plugin(resource: string): ResourcePlugin | undefined {
    return this.#states.get(resource)?.plugin;
  }

  /** Every device read from the host, whether a resource selects it or not. */
  get devices(): readonly PluginDevice[] {
    return this.#devices;
  }

  // ---- the host

  #readHost(): void {
    const out: PluginDevice[] = [];
    for (const src of this.options.sources) {
      try {
        out.push(...src.read());
      } catch (err) {
        this.#log(`reading ${src.kind} devices failed: ${(err as Error).message}`);
      }
    }
    this.#devices = out;
  }

  #reread(id: string): PluginDevice | undefined {
    for (const src of this.options.sources) {
      const d = src.reread(id);
      if (d !== undefined) return d;
    }
    return undefined;
  }

  /** Make plugins for new resources and hand every plugin its devices. */
  #syncResources(): void {
    const specs = resourcesFor(this.options.config, this.#devices);
    for (const spec of specs) {
      if (this.#states.has(spec.name)) continue;
      const plugin = new ResourcePlugin({
        resourceName: spec.name,
        socketPath: this.#socketPath(spec.name),
        reread: (id) => this.#reread(id),
        selects: (d) => this.#owner(d) === spec.name,
        onStale: () => this.scheduleRefresh(),
        log: this.#log,
      });
      const state: PluginState = {
        spec,
        plugin,
        registered: false,
        kubelet: undefined,
        bringingUp: undefined,
      };
      this.#states.set(spec.name, state);
      this.#log(`resource ${spec.name} (${spec.origin})`);
      if (this.#timer !== undefined) void this.#bringUp(state);
    }
    const mine = new Map<string, PluginDevice[]>();
    for (const d of this.#devices) {
      const owner = this.#owner(d);
      if (owner === undefined) continue;
      let list = mine.get(owner);
      if (list === undefined) mine.set(owner, (list = []));
      list.push(d);
    }
    for (const [name, s] of this.#states) {
      s.plugin.hold(this.#holdReason(name));
      s.plugin.update(mine.get(name) ?? []);
    }
    this.emit('refreshed');
  }

  /** The resource a device belongs to: the first that selects it. */
  #owner(d: PluginDevice): string | undefined {
    for (const s of this.#states.values()) if (s.spec.selects(d)) return s.spec.name;
    return undefined;
  }

  #holdReason(resource: string): string | undefined {
    for (const h of this.#holds) if (h.applies(resource)) return h.reason;
    return undefined;
  }

  #applyHolds(): void {
    for (const [name, s] of this.#states) s.plugin.hold(this.#holdReason(name));
  }

  // ---- kubelet

  #socketPath(resource: string): string {
    return nodePath.join(this.options.pluginDir, endpointName(resource));
  }

  /** Serve (if the socket is not ours any more) and register, retrying until it works. */
  #bringUp(s: PluginState): Promise<void> {
    if (s.registered || this.#stopped) return Promise.resolve();
    if (s.bringingUp === undefined) {
      s.bringingUp = this.#bringUpLoop(s).finally(() => {
        s.bringingUp = undefined;
      });
    }
    return s.bringingUp;
  }

  async #bringUpLoop(s: PluginState): Promise<void> {
    let lastProblem = '';
    while (!this.#stopped) {
      try {
        const own = s.plugin.socket;
        if (own === undefined || !isSameSocket(own)) {
          if (!fs.existsSync(this.options.pluginDir)) {
            throw new Error(`the device plugin directory ${this.options.pluginDir} does not exist`);
          }
          await s.plugin.serve();
        }
        const kubelet = socketIdentity(this.kubeletSocket);
        if (kubelet === undefined) throw new Error(`kubelet is not listening (${KUBELET_SOCKET})`);
        await register({
          kubeletSocket: this.kubeletSocket,
          endpoint: endpointName(s.spec.name),
          resourceName: s.spec.name,
          options: { pre_start_required: false, get_preferred_allocation_available: true },
          timeoutMs: this.options.registerTimeoutMs ?? 30_000,
        });
        if (this.#stopped) return;
        s.registered = true;
        s.kubelet = kubelet;
        this.#log(`registered ${s.spec.name} with kubelet`);
        this.emit('registered', s.spec.name);
        return;
      } catch (err) {
        const problem = (err as { details?: string }).details || (err as Error).message;
        if (problem !== lastProblem) {
          this.#log(`${s.spec.name}: not registered yet: ${problem}`);
          lastProblem = problem;
        }
        await this.#sleep(this.options.retryMs ?? 1000);
      }
    }
  }

  /** Sleep, or wake early when the device plugin directory changes. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.#sleepers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      t.unref();
      this.#sleepers.add(done);
    });
  }

  #wake(): void {
    for (const w of [...this.#sleepers]) w();
  }

  #watchDir(): void {
    if (this.#watcher !== undefined || this.#stopped) return;
    try {
      const w = fs.watch(this.options.pluginDir, { persistent: false }, () => this.#checkSockets());
      w.on('error', () => {
        w.close();
        if (this.#watcher === w) this.#watcher = undefined;
      });
      this.#watcher = w;
    } catch {
      // The directory is not there (yet): the periodic check tries again.
    }
  }

  /**
   * A plugin whose socket is gone or not ours any more, or that registered
   * with a kubelet.sock that has since been replaced, registers again.
   */
  #checkSockets(): void {
    if (this.#stopped) return;
    this.#watchDir();
    const kubelet = socketIdentity(this.kubeletSocket);
    for (const s of this.#states.values()) {
      const own = s.plugin.socket;
      const socketGone = own !== undefined && !isSameSocket(own);
      const kubeletNew =
        s.registered &&
        kubelet !== undefined &&
        s.kubelet !== undefined &&
        (kubelet.ino !== s.kubelet.ino || kubelet.dev !== s.kubelet.dev);
      if ((socketGone || kubeletNew) && s.registered) {
        s.registered = false;
        this.#log(
          socketGone
            ? `${s.spec.name}: socket removed (kubelet restarted?): serving and registering again`
            : `${s.spec.name}: kubelet.sock is new (kubelet restarted): registering again`,
        );
        this.emit('deregistered', s.spec.name);
      }
      if (!s.registered) void this.#bringUp(s);
    }
    this.#wake();
  }
}

function probeDevice(type: string, name: string | undefined): PluginDevice {
  return {
    id: '',
    kind: 'mdev',
    parent: '',
    type,
    typeName: name,
    iommuGroup: undefined,
    numaNode: undefined,
    problem: undefined,
  };
}
