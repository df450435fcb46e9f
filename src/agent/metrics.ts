/**
 * Prometheus text exposition (format 0.0.4) of the agent's figures: what
 * the host has (instances available and used per parent and type, read at
 * scrape time) and what the agent did (operations, their errors by errno,
 * events seen, stream clients). Small enough to write by hand; a client
 * library would bring a registry we do not need.
 */

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface TypeCapacity {
  readonly parent: string;
  readonly type: string;
  readonly available: number;
  readonly used: number;
}

/** Label value escaping of the text format: backslash, quote, newline. */
function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

export class AgentMetrics {
  readonly #operations = new Map<string, number>();
  readonly #errors = new Map<string, number>();
  readonly #events = new Map<string, number>();
  /** Clients connected to the event stream now. */
  streamClients = 0;
  /** Stream clients disconnected for falling too far behind. */
  streamDropped = 0;
  /** Bytes the stream clients have waiting, all together (set by the server). */
  streamBufferedBytes: () => number = () => 0;

  /** One management operation finished; `errno` when it failed with one (or "unknown"). */
  operation(name: string, errno?: string): void {
    const result = errno === undefined ? 'ok' : 'error';
    const key = `${name}\0${result}`;
    this.#operations.set(key, (this.#operations.get(key) ?? 0) + 1);
    if (errno !== undefined) {
      const ekey = `${name}\0${errno}`;
      this.#errors.set(ekey, (this.#errors.get(ekey) ?? 0) + 1);
    }
  }

  event(kind: string): void {
    this.#events.set(kind, (this.#events.get(kind) ?? 0) + 1);
  }

  render(
    capacity: readonly TypeCapacity[],
    devicesDefined: number,
    definitionsSkipped = 0,
  ): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    };
    family(
      'mdevkit_type_available_instances',
      'gauge',
      'Instances of an mdev type that can still be created (available_instances).',
    );
    for (const c of capacity) {
      out.push(
        `mdevkit_type_available_instances${labels({ parent: c.parent, type: c.type })} ${c.available}`,
      );
    }
    family('mdevkit_type_active_devices', 'gauge', 'Active mediated devices of an mdev type.');
    for (const c of capacity) {
      out.push(
        `mdevkit_type_active_devices${labels({ parent: c.parent, type: c.type })} ${c.used}`,
      );
    }
    family(
      'mdevkit_defined_devices',
      'gauge',
      'Persistent definitions in the mdevctl config directory.',
    );
    out.push(`mdevkit_defined_devices ${devicesDefined}`);
    family(
      'mdevkit_definitions_skipped',
      'gauge',
      'Files in the mdevctl config directory left out of the listing because they cannot be read as definitions.',
    );
    out.push(`mdevkit_definitions_skipped ${definitionsSkipped}`);
    family(
      'mdevkit_operations_total',
      'counter',
      'Management operations run by the agent, by result.',
    );
    for (const [key, n] of [...this.#operations].sort()) {
      const [operation, result] = key.split('\0') as [string, string];
      out.push(`mdevkit_operations_total${labels({ operation, result })} ${n}`);
    }
    family(
      'mdevkit_operation_errors_total',
      'counter',
      'Failed management operations by errno name.',
    );
    for (const [key, n] of [...this.#errors].sort()) {
      const [operation, errno] = key.split('\0') as [string, string];
      out.push(`mdevkit_operation_errors_total${labels({ operation, errno })} ${n}`);
    }
    family('mdevkit_events_total', 'counter', 'Host change events seen, by kind.');
    for (const [kind, n] of [...this.#events].sort()) {
      out.push(`mdevkit_events_total${labels({ kind })} ${n}`);
    }
    family('mdevkit_event_stream_clients', 'gauge', 'Clients connected to the event stream.');
    out.push(`mdevkit_event_stream_clients ${this.streamClients}`);
    family(
      'mdevkit_event_stream_buffered_bytes',
      'gauge',
      'Bytes waiting for event-stream clients to read them (each client is held to a bound).',
    );
    out.push(`mdevkit_event_stream_buffered_bytes ${this.streamBufferedBytes()}`);
    family(
      'mdevkit_event_stream_dropped_total',
      'counter',
      'Event-stream clients disconnected for falling too far behind (they reconnect with Last-Event-ID).',
    );
    out.push(`mdevkit_event_stream_dropped_total ${this.streamDropped}`);
    return out.join('\n') + '\n';
  }
}
