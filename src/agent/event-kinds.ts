/**
 * What the agent's event stream carries: the kinds of host change and the
 * shape of each. The server's event sources produce these (events.ts), the
 * SSE route frames them (routes/events.ts), and the dashboard's browser
 * bundle imports this very module for the list it subscribes to — so this
 * file imports nothing and holds nothing a browser cannot run (the layering
 * lint lets src/web import it, and only it, from src/agent at runtime).
 *
 * mdevctl has been asked for such a stream since 2019 (mdevctl#27).
 */
export type HostEvent =
  | {
      readonly kind: 'device-created';
      readonly uuid: string;
      readonly parent: string;
      readonly type: string;
    }
  | {
      readonly kind: 'device-removed';
      readonly uuid: string;
      readonly parent: string;
      readonly type: string;
    }
  | { readonly kind: 'device-defined'; readonly uuid: string; readonly parent: string }
  | { readonly kind: 'device-undefined'; readonly uuid: string; readonly parent: string }
  | { readonly kind: 'device-modified'; readonly uuid: string; readonly parent: string }
  | { readonly kind: 'parent-registered'; readonly parent: string }
  | { readonly kind: 'parent-unregistered'; readonly parent: string }
  /** An AP mask or a matrix device's assignment changed (made through this agent). */
  | { readonly kind: 'matrix-changed'; readonly uuid?: string }
  /** A step of a desired-state apply run by this agent (src/host/desired). */
  | {
      readonly kind: 'apply-progress';
      readonly config: string;
      readonly done: number;
      readonly total: number;
      readonly action: string;
      readonly parent?: string;
      readonly uuid?: string;
      readonly ok: boolean;
      readonly error?: string;
    }
  /** A desired-state apply run by this agent ended. */
  | {
      readonly kind: 'apply-finished';
      readonly config: string;
      readonly created: number;
      readonly removed: number;
      readonly kept: number;
      readonly blocked: number;
      readonly failed: number;
    }
  /**
   * A definition file cannot be read as one and is left out of the
   * listing (reported once; the file is never quoted).
   */
  | {
      readonly kind: 'definition-skipped';
      readonly uuid: string;
      readonly parent: string;
      readonly reason: string;
    }
  /**
   * An NVIDIA GPU's VF vGPUs changed: VFs enabled or disabled, a VF's vGPU
   * made or destroyed, a definition stored or removed. `vf` and `uuid` name
   * the one that changed when it is one.
   */
  | {
      readonly kind: 'vgpu-changed';
      readonly gpu: string;
      readonly vf?: string;
      readonly uuid?: string;
    };

export type HostEventKind = HostEvent['kind'];

// A record keyed by every kind: leaving one out (or naming one that does
// not exist) is a compile error, so the list cannot drift from the union.
const KINDS: Record<HostEventKind, true> = {
  'device-created': true,
  'device-removed': true,
  'device-defined': true,
  'device-undefined': true,
  'device-modified': true,
  'parent-registered': true,
  'parent-unregistered': true,
  'matrix-changed': true,
  'apply-progress': true,
  'apply-finished': true,
  'definition-skipped': true,
  'vgpu-changed': true,
};

/** Every kind of host event, in the order the API documents them. */
export const HOST_EVENT_KINDS = Object.keys(KINDS) as readonly HostEventKind[];

/**
 * Sent instead of the missed events when a reconnecting client asks for
 * events that have left the agent's ring: reload everything.
 */
export const RESET_EVENT = 'reset';

/** Every SSE `event:` name the stream uses. */
export const STREAM_EVENT_KINDS: readonly (HostEventKind | typeof RESET_EVENT)[] = [
  ...HOST_EVENT_KINDS,
  RESET_EVENT,
];

/** The `data:` of a host event's frame: the event and when the agent saw it (ISO 8601). */
export type StreamEventData = HostEvent & { readonly time: string };
