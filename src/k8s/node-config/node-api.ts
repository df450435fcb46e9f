import {
  CoreV1Api,
  PatchStrategy,
  makeInformer,
  setHeaderOptions,
  type CoreV1Event,
  type KubeConfig,
  type V1Node,
} from '@kubernetes/client-node';

/**
 * What the node configuration loop needs from the API server, over the
 * official client library (@kubernetes/client-node): its own Node,
 * watched (an informer: list, then watch from that resourceVersion, and
 * list again when the server says the version is gone), label patches
 * (a JSON merge patch of metadata.labels, nothing else), and Events.
 */
export interface NodeApi {
  /** Call `onLabels` with the node's labels now and after every change; returns stop. */
  watchNode(onLabels: (labels: Readonly<Record<string, string>>) => void): () => void;
  /** Set labels (null removes one). */
  patchLabels(labels: Readonly<Record<string, string | null>>): Promise<void>;
  /** Record an Event about the node. */
  event(type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
}

/** The component name on Events and in field managers. */
export const COMPONENT = 'mdevkit-device-plugin';
/** Node events live in the default namespace (kubelet's too). */
export const EVENT_NAMESPACE = 'default';

export interface KubeNodeApiOptions {
  readonly kubeConfig: KubeConfig;
  readonly node: string;
  /** After a watch error, try again after this long. */
  readonly retryMs?: number;
  readonly log?: (line: string) => void;
}

export function kubeNodeApi(o: KubeNodeApiOptions): NodeApi {
  const core = o.kubeConfig.makeApiClient(CoreV1Api);
  const log = o.log ?? (() => {});
  let uid: string | undefined;
  return {
    watchNode(onLabels) {
      const informer = makeInformer<V1Node>(
        o.kubeConfig,
        `/api/v1/nodes?fieldSelector=${encodeURIComponent(`metadata.name=${o.node}`)}`,
        () => core.listNode({ fieldSelector: `metadata.name=${o.node}` }),
      );
      let stopped = false;
      let retry: NodeJS.Timeout | undefined;
      const seen = (n: V1Node): void => {
        if (n.metadata?.name !== o.node) return;
        uid = n.metadata.uid;
        onLabels(n.metadata.labels ?? {});
      };
      informer.on('add', seen);
      informer.on('update', seen);
      informer.on('error', (err: unknown) => {
        if (stopped) return;
        log(`watching node ${o.node}: ${describe(err)}; watching again in ${o.retryMs ?? 5000} ms`);
        retry = setTimeout(() => {
          if (!stopped) void informer.start().catch(() => undefined);
        }, o.retryMs ?? 5000);
        retry.unref();
      });
      void informer.start().catch(() => undefined);
      return () => {
        stopped = true;
        clearTimeout(retry);
        void informer.stop();
      };
    },

    async patchLabels(labels) {
      await core.patchNode(
        { name: o.node, body: { metadata: { labels } }, fieldManager: COMPONENT },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    },

    async event(type, reason, message) {
      const now = new Date();
      const body: CoreV1Event = {
        metadata: {
          generateName: `${o.node}.`,
          namespace: EVENT_NAMESPACE,
        },
        involvedObject: {
          apiVersion: 'v1',
          kind: 'Node',
          name: o.node,
          ...(uid !== undefined && { uid }),
        },
        type,
        reason,
        message,
        source: { component: COMPONENT, host: o.node },
        reportingComponent: COMPONENT,
        reportingInstance: o.node,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      };
      await core.createNamespacedEvent({ namespace: EVENT_NAMESPACE, body });
    },
  };
}

export function describe(err: unknown): string {
  const e = err as { code?: number; body?: unknown; message?: string };
  if (typeof e.code === 'number') {
    const body = typeof e.body === 'string' ? e.body : JSON.stringify(e.body ?? '');
    let msg = body;
    try {
      msg = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      // not JSON
    }
    return `HTTP ${e.code}: ${msg}`;
  }
  return e.message ?? String(err);
}
