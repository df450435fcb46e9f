import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { environmentAt, type Environment } from '../../../src/host/environment.js';
import { createDevice } from '../../../src/host/sysfs-model.js';
import { pollHostChanges, ueventChanges } from '../../../src/k8s/device-plugin/host-changes.js';
import { AP_MASKS } from '../../../src/k8s/dra/driver.js';
import { desiredEngine } from '../../../src/k8s/dra/desired-engine.js';
import { DraDriver } from '../../../src/k8s/dra/driver.js';
import type { ClaimKey } from '../../../src/k8s/dra/device-state.js';
import { kubeClaimSource, kubeEvents } from '../../../src/k8s/dra/kube.js';
import { kubeSliceApi } from '../../../src/k8s/dra/publisher.js';
import { Lab } from '../../../src/sim/lab.js';
import type { HostProfile } from '../../../src/sim/profiles/profile.js';
import { FakeApiServer, RESOURCE_V1_RESOURCES, CORE_RESOURCES } from './fake-apiserver.js';
import { FakeDraKubelet } from './fake-dra-kubelet.js';
import { validateResourceObject } from './resource-validation.js';

/**
 * One simulated node in DRA mode: an emulated lab host (in process), what
 * `mdevkit k8s dra` runs on a node (the real DraDriver over the lab's sysfs
 * port, the desired-state engine and the official client), and a fake
 * kubelet with its own plugin directories — all against one fake API
 * server that validates resource.k8s.io objects as the real one does.
 */

export const DRIVER = 'mdev.mdevkit.io';

/** A fake API server with Nodes, Events and DRA's objects, validating them. */
export function draApiServer(): Promise<FakeApiServer> {
  return FakeApiServer.start({
    resources: [...CORE_RESOURCES, ...RESOURCE_V1_RESOURCES],
    validate: validateResourceObject,
  });
}

export interface SimDraNodeOptions {
  readonly name: string;
  readonly dir: string;
  readonly profile: HostProfile;
  readonly api: FakeApiServer;
  /** mdevs someone made before the driver starts. */
  readonly devices?: readonly { parent: string; type: string; count: number }[];
  readonly log?: (line: string) => void;
  readonly afterCreate?: (claim: ClaimKey) => void;
  /** How the driver hears of host changes: the lab's uevents (default), or the sysfs poll `mdevkit k8s dra` uses, every so many ms. */
  readonly pollMs?: number;
}

export class SimDraNode {
  readonly name: string;
  readonly lab: Lab;
  readonly env: Environment;
  readonly pluginsDir: string;
  readonly registryDir: string;
  readonly cdiDir: string;
  kubelet!: FakeDraKubelet;
  driver!: DraDriver;
  #serial = 0;

  constructor(
    readonly options: SimDraNodeOptions,
    lab?: Lab,
  ) {
    this.name = options.name;
    this.lab = lab ?? new Lab(options.profile);
    fs.mkdirSync(nodePath.join(options.dir, 'etc', 'mdevctl.d'), { recursive: true });
    this.env = environmentAt(options.dir, this.lab.port);
    this.pluginsDir = nodePath.join(options.dir, 'var/lib/kubelet/plugins');
    this.registryDir = nodePath.join(options.dir, 'var/lib/kubelet/plugins_registry');
    this.cdiDir = nodePath.join(options.dir, 'var/run/cdi');
    for (const d of options.devices ?? [])
      for (let i = 0; i < d.count; i++) this.createMdev(d.parent, d.type);
  }

  /** echo UUID > .../create, as someone else's tool would. */
  createMdev(parent: string, type: string): string {
    const n = (this.#serial++).toString(16).padStart(12, '0');
    const uuid = `f0f0f0f0-0000-4000-8000-${n}`;
    createDevice(this.lab.port, parent, type, uuid);
    return uuid;
  }

  newDriver(): DraDriver {
    const kc = this.options.api.kubeConfig();
    return new DraDriver({
      env: this.env,
      node: this.name,
      driverName: DRIVER,
      pluginsDir: this.pluginsDir,
      registryDir: this.registryDir,
      cdiDir: this.cdiDir,
      engine: desiredEngine(this.env),
      claims: kubeClaimSource(kc),
      slices: kubeSliceApi(kc),
      events: kubeEvents(kc, this.name),
      changes: [
        this.options.pollMs === undefined
          ? ueventChanges((l) => this.lab.kernel.onUevent(l))
          : pollHostChanges(this.lab.port, this.options.pollMs, AP_MASKS),
      ],
      ...(this.options.log !== undefined && { log: this.options.log }),
      ...(this.options.afterCreate !== undefined && { afterCreate: this.options.afterCreate }),
    });
  }

  /** Start kubelet, then the driver; resolves when kubelet registered it and its slices are out. */
  async start(): Promise<void> {
    this.kubelet = await FakeDraKubelet.start({
      registryDir: this.registryDir,
      api: this.options.api,
      stateDir: nodePath.join(this.options.dir, 'var/lib/kubelet'),
    });
    await this.startDriver();
  }

  async startDriver(): Promise<void> {
    this.driver = this.newDriver();
    await this.driver.start();
    await this.kubelet.whenRegistered(DRIVER);
    await this.driver.publisher.idle();
  }

  /** The driver dies (no cleanup: a crash), and a new one starts. */
  async restartDriver(): Promise<void> {
    await this.driver.stop();
    await this.startDriver();
  }

  async stop(): Promise<void> {
    await this.driver?.stop();
    this.kubelet?.stop();
  }
}
