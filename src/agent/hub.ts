import type { HostEvent, HostEventSource } from './events.js';

/** An event as the agent hands it out: numbered (the SSE `id`) and timed. */
export interface StampedEvent {
  readonly id: number;
  readonly time: string;
  readonly event: HostEvent;
}

export type StampedListener = (e: StampedEvent) => void;

/**
 * Numbers the host's events and fans them out to the agent's listeners
 * (the SSE streams, the device cache, the metrics). The last `keep` events
 * stay in a ring so a client that reconnects with Last-Event-ID misses
 * nothing; one that was away longer is told to reload instead.
 */
export class EventHub {
  readonly #listeners = new Set<StampedListener>();
  readonly #ring: StampedEvent[] = [];
  #nextId = 1;
  readonly #unsubscribe: () => void;

  constructor(
    readonly source: HostEventSource,
    readonly keep = 4096,
  ) {
    this.#unsubscribe = source.subscribe((event) => this.publish(event));
  }

  /** Add an event (from the source, or one the agent learns itself). */
  publish(event: HostEvent): void {
    const stamped: StampedEvent = { id: this.#nextId++, time: new Date().toISOString(), event };
    this.#ring.push(stamped);
    if (this.#ring.length > this.keep) this.#ring.splice(0, this.#ring.length - this.keep);
    for (const l of this.#listeners) l(stamped);
  }

  subscribe(listener: StampedListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Id of the newest event (0 before the first). */
  get lastId(): number {
    return this.#nextId - 1;
  }

  /**
   * Events after `id`, or undefined when some of them have left the ring
   * (the client must reload its view).
   */
  since(id: number): StampedEvent[] | undefined {
    if (id >= this.lastId) return [];
    const first = this.#ring[0];
    if (first === undefined || first.id > id + 1) return undefined;
    return this.#ring.slice(id + 1 - first.id);
  }

  get listenerCount(): number {
    return this.#listeners.size;
  }

  close(): void {
    this.#unsubscribe();
    this.source.close?.();
    this.#listeners.clear();
  }
}
