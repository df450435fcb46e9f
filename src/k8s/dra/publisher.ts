import {
  ResourceV1Api,
  type KubeConfig,
  type V1DeviceAttribute,
  type V1ResourceSlice,
} from '@kubernetes/client-node';
import { describe } from '../node-config/node-api.js';
import { buildSlices, type SliceContent, type SliceSpec } from './slices.js';
import type { Catalog } from './catalog.js';

/**
 * Keeps a node's pool of ResourceSlices equal to what the host offers.
 *
 * `publish(catalog)` is called whenever the host may have changed (uevents,
 * the sysfs poll, a Prepare or Unprepare). Calls are coalesced: while one
 * write is in flight, only the newest catalog waits. When the slices the
 * catalog gives differ from the ones last written, the pool's generation
 * goes up by one and every slice is written with it (the API's rule: a
 * consumer uses only the highest generation, and only a pool whose slices
 * it has all seen); slices beyond the new count are deleted.
 *
 * At start the driver's slices of this node are listed (a restart finds
 * its old pool): the generation continues after theirs, and writes are
 * PUTs with the resourceVersion last seen, so a conflicting writer makes
 * the next round list again instead of overwriting blindly.
 */

export interface SliceApi {
  list(node: string, driver: string): Promise<V1ResourceSlice[]>;
  create(body: V1ResourceSlice): Promise<V1ResourceSlice>;
  replace(name: string, body: V1ResourceSlice): Promise<V1ResourceSlice>;
  delete(name: string): Promise<void>;
}

/**
 * A slice's spec as the client's model. The generated models rename the
 * fields that clash with TypeScript — an attribute's `int` is `_int`, and
 * the client's serializer writes `_int` back as `int` and drops any field
 * its model lacks — so our plain spec (the API's names) is converted.
 */
function clientSpec(spec: SliceSpec): V1ResourceSlice['spec'] {
  const { devices, ...rest } = spec;
  if (devices === undefined) return rest;
  return {
    ...rest,
    devices: devices.map((d) => {
      if (d.attributes === undefined) return d;
      const attributes: Record<string, V1DeviceAttribute> = {};
      for (const [k, { int, ...v }] of Object.entries(d.attributes))
        attributes[k] = int === undefined ? v : { ...v, _int: int };
      return { ...d, attributes };
    }),
  };
}

/** The slice API over the official client. */
export function kubeSliceApi(kubeConfig: KubeConfig): SliceApi {
  const api = kubeConfig.makeApiClient(ResourceV1Api);
  return {
    async list(node, driver) {
      const l = await api.listResourceSlice({
        fieldSelector: `spec.nodeName=${node},spec.driver=${driver}`,
      });
      return l.items;
    },
    create: (body) => api.createResourceSlice({ body }),
    replace: (name, body) => api.replaceResourceSlice({ name, body }),
    async delete(name) {
      await api.deleteResourceSlice({ name });
    },
  };
}

export interface SlicePublisherOptions {
  readonly api: SliceApi;
  readonly node: string;
  readonly driver: string;
  readonly log?: (line: string) => void;
  /** Pause after a failed round before the next. */
  readonly retryMs?: number;
}

export class SlicePublisher {
  #generation = 0;
  /** Name -> resourceVersion of the slices on the server, as last seen. */
  #known = new Map<string, string>();
  #lastContent: string | undefined;
  #listed = false;
  #pending: Catalog | undefined;
  #running: Promise<void> | undefined;
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Rounds that wrote slices (tests and benchmarks look). */
  writes = 0;
  readonly #log: (line: string) => void;
  readonly #waiters: (() => void)[] = [];

  constructor(readonly options: SlicePublisherOptions) {
    this.#log = options.log ?? (() => {});
  }

  get generation(): number {
    return this.#generation;
  }

  /** Publish this catalog soon (the newest wins). */
  publish(catalog: Catalog): void {
    if (this.#stopped) return;
    this.#pending = catalog;
    if (this.#running === undefined) this.#running = this.#loop();
  }

  /** Resolves when everything asked for so far has been written (or failed once). */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  /** Resolves after the next round that writes slices. */
  nextWrite(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retry);
  }

  async #loop(): Promise<void> {
    try {
      while (this.#pending !== undefined && !this.#stopped) {
        const catalog = this.#pending;
        this.#pending = undefined;
        try {
          await this.#round(catalog);
        } catch (err) {
          this.#log(`publishing ResourceSlices: ${describe(err)}; listing them again`);
          this.#listed = false;
          this.#lastContent = undefined;
          // Try again with the newest catalog after a pause.
          this.#pending ??= catalog;
          await new Promise<void>((r) => {
            this.#retry = setTimeout(r, this.options.retryMs ?? 1000);
            this.#retry.unref();
          });
        }
      }
    } finally {
      this.#running = undefined;
    }
  }

  async #round(catalog: Catalog): Promise<void> {
    const { api, node, driver } = this.options;
    if (!this.#listed) {
      const existing = await api.list(node, driver);
      this.#known = new Map(
        existing.map((s) => [s.metadata?.name ?? '', s.metadata?.resourceVersion ?? '']),
      );
      for (const s of existing) {
        if (s.spec.pool.name === node)
          this.#generation = Math.max(this.#generation, s.spec.pool.generation);
      }
      this.#listed = true;
    }
    const content = JSON.stringify(buildSlices(catalog, node, driver, 0));
    if (content === this.#lastContent) return;
    const slices = buildSlices(catalog, node, driver, this.#generation + 1);
    await Promise.all(slices.map((s) => this.#write(s)));
    this.#generation++;
    const keep = new Set(slices.map((s) => s.name));
    for (const name of [...this.#known.keys()]) {
      if (keep.has(name)) continue;
      try {
        await api.delete(name);
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
      }
      this.#known.delete(name);
    }
    this.#lastContent = content;
    this.writes++;
    for (const w of this.#waiters.splice(0)) w();
  }

  async #write(s: SliceContent): Promise<void> {
    const rv = this.#known.get(s.name);
    const body: V1ResourceSlice = {
      apiVersion: 'resource.k8s.io/v1',
      kind: 'ResourceSlice',
      metadata: {
        name: s.name,
        labels: { 'app.kubernetes.io/managed-by': 'mdevkit' },
        ...(rv !== undefined && rv !== '' && { resourceVersion: rv }),
      },
      spec: clientSpec(s.spec),
    };
    const made =
      rv === undefined
        ? await this.options.api.create(body)
        : await this.options.api.replace(s.name, body);
    this.#known.set(s.name, made.metadata?.resourceVersion ?? '');
  }
}
