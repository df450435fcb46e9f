import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  bindUnixSocket,
  isSameSocket,
  removeOwnSocket,
  stopServer,
  type SocketIdentity,
} from '../grpc/unix-socket.js';
import {
  DRA_PLUGIN_TYPE,
  DRA_SERVICE_V1,
  DRA_SOCKET,
  draPluginService,
  pluginRegistrationService,
  registrationSocketName,
  type DraPluginHandlers,
  type PluginInfo,
  type RegistrationHandlers,
  type RegistrationStatus,
} from './api.js';

/**
 * The two sockets of a DRA driver's kubelet plugin:
 *
 * - the **service** socket, <plugins dir>/<driver>/dra.sock, where kubelet
 *   calls NodePrepareResources and NodeUnprepareResources;
 * - the **registration** socket, <registry dir>/<driver>-reg.sock, which
 *   kubelet's plugin watcher finds (inotify on the registry directory plus
 *   a walk when it starts), dials, asks GetInfo (type DRAPlugin, the driver
 *   name, the service socket, the services offered) and answers with
 *   NotifyRegistrationStatus.
 *
 * The service socket is bound first, so kubelet can reach it by the time
 * it learns of it. Both are 0600 from the moment they exist (bound under a
 * temporary name starting with '.', which the plugin watcher ignores, then
 * renamed: the rename is what kubelet sees). Unlike the device plugin
 * directory, kubelet leaves these directories alone when it restarts and
 * registers the sockets it finds again; a socket that vanishes or is
 * replaced (an operator cleaning up, another instance) is served anew,
 * which makes kubelet register the plugin again.
 */

export interface KubeletPluginOptions {
  readonly driverName: string;
  readonly pluginsDir: string;
  readonly registryDir: string;
  readonly handlers: DraPluginHandlers;
  readonly log?: (line: string) => void;
  /** How often the sockets are checked besides inotify. */
  readonly checkMs?: number;
}

export class KubeletPlugin extends EventEmitter {
  readonly endpoint: string;
  readonly registrationSocket: string;
  #service: { server: grpc.Server; id: SocketIdentity } | undefined;
  #registration: { server: grpc.Server; id: SocketIdentity } | undefined;
  #serving: Promise<void> | undefined;
  #watcher: fs.FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** The last status kubelet sent, if any. */
  status: RegistrationStatus | undefined;
  readonly #log: (line: string) => void;

  constructor(readonly options: KubeletPluginOptions) {
    super();
    this.endpoint = nodePath.join(options.pluginsDir, options.driverName, DRA_SOCKET);
    this.registrationSocket = nodePath.join(
      options.registryDir,
      registrationSocketName(options.driverName),
    );
    this.#log = options.log ?? (() => {});
  }

  /** What GetInfo answers. */
  info(): PluginInfo {
    return {
      type: DRA_PLUGIN_TYPE,
      name: this.options.driverName,
      endpoint: this.endpoint,
      supported_versions: [DRA_SERVICE_V1],
    };
  }

  /** Serve both sockets (service first) and keep them there. */
  async start(): Promise<void> {
    await this.#ensure();
    this.#watch();
    this.#timer = setInterval(() => this.#check(), this.options.checkMs ?? 1000);
    this.#timer.unref();
  }

  /** Resolves at kubelet's next NotifyRegistrationStatus (or at once when it already registered us). */
  whenRegistered(timeoutMs = 30_000): Promise<RegistrationStatus> {
    if (this.status?.plugin_registered === true) return Promise.resolve(this.status);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.off('status', on);
        reject(
          new Error(`kubelet did not register ${this.options.driverName} within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      t.unref();
      const on = (s: RegistrationStatus): void => {
        if (!s.plugin_registered) return;
        clearTimeout(t);
        this.off('status', on);
        resolve(s);
      };
      this.on('status', on);
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#watcher?.close();
    await this.#serving?.catch(() => undefined);
    // The registration socket goes first: kubelet deregisters the plugin
    // when it disappears, before the service socket does.
    for (const s of [this.#registration, this.#service]) {
      if (s === undefined) continue;
      removeOwnSocket(s.id);
      stopServer(s.server);
    }
    this.#registration = undefined;
    this.#service = undefined;
  }

  #ensure(): Promise<void> {
    if (this.#serving !== undefined) return this.#serving;
    this.#serving = this.#serve().finally(() => {
      this.#serving = undefined;
    });
    return this.#serving;
  }

  async #serve(): Promise<void> {
    if (this.#stopped) return;
    if (this.#service === undefined || !isSameSocket(this.#service.id)) {
      if (this.#service !== undefined) stopServer(this.#service.server);
      fs.mkdirSync(nodePath.dirname(this.endpoint), { recursive: true, mode: 0o750 });
      const server = new grpc.Server();
      server.addService(draPluginService().service, this.options.handlers);
      this.#service = { server, id: await bindUnixSocket(server, this.endpoint) };
      this.#log(`serving ${this.endpoint}`);
    }
    if (this.#registration === undefined || !isSameSocket(this.#registration.id)) {
      if (this.#registration !== undefined) stopServer(this.#registration.server);
      fs.mkdirSync(this.options.registryDir, { recursive: true, mode: 0o750 });
      const server = new grpc.Server();
      const handlers: RegistrationHandlers = {
        GetInfo: (_call, cb) => cb(null, this.info()),
        NotifyRegistrationStatus: (c, cb) => {
          this.status = c.request;
          if (c.request.plugin_registered)
            this.#log(`kubelet registered ${this.options.driverName}`);
          else this.#log(`kubelet refused ${this.options.driverName}: ${c.request.error}`);
          this.emit('status', c.request);
          cb(null, {});
        },
      };
      server.addService(pluginRegistrationService().service, handlers);
      this.status = undefined;
      this.#registration = { server, id: await bindUnixSocket(server, this.registrationSocket) };
      this.#log(`registration socket ${this.registrationSocket}`);
    }
  }

  #watch(): void {
    if (this.#watcher !== undefined || this.#stopped) return;
    try {
      const w = fs.watch(this.options.registryDir, { persistent: false }, () => this.#check());
      w.on('error', () => {
        w.close();
        if (this.#watcher === w) this.#watcher = undefined;
      });
      this.#watcher = w;
    } catch {
      // Not there now: the periodic check makes it again.
    }
  }

  #check(): void {
    if (this.#stopped) return;
    const gone =
      this.#service === undefined ||
      !isSameSocket(this.#service.id) ||
      this.#registration === undefined ||
      !isSameSocket(this.#registration.id);
    if (!gone) return;
    this.#log('a plugin socket is gone or replaced: serving it again');
    this.#ensure().then(
      () => this.#watch(),
      (err: unknown) => this.#log(`serving the plugin sockets: ${(err as Error).message}`),
    );
  }
}
