import {
  CoreV1Api,
  ResourceV1Api,
  type CoreV1Event,
  type KubeConfig,
} from '@kubernetes/client-node';
import { COMPONENT_DRA } from './names.js';
import type { ClaimSource, ResourceClaimLike } from './device-state.js';

/**
 * The driver's use of the API server besides ResourceSlices (publisher.ts),
 * over the official client: reading ResourceClaims, and Events — on a
 * claim when it cannot be prepared on this node, on the Node when what it
 * offers is narrowed (a GPU that runs one type).
 */

export interface EventSink {
  claim(
    claim: { namespace: string; name: string; uid: string },
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void>;
  node(type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
}

export function kubeClaimSource(kubeConfig: KubeConfig): ClaimSource {
  const api = kubeConfig.makeApiClient(ResourceV1Api);
  return {
    get: async (namespace, name) =>
      (await api.readNamespacedResourceClaim({ namespace, name })) as ResourceClaimLike,
  };
}

/** Event messages are limited to 1 kB by the API server; ours stay well below. */
const MAX_MESSAGE = 1024;

export function kubeEvents(kubeConfig: KubeConfig, node: string): EventSink {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const post = async (
    namespace: string,
    involved: CoreV1Event['involvedObject'],
    type: string,
    reason: string,
    message: string,
  ): Promise<void> => {
    const now = new Date();
    await core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { generateName: `${involved.name ?? 'mdevkit'}.`, namespace },
        involvedObject: involved,
        type,
        reason,
        message: message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 3)}...` : message,
        source: { component: COMPONENT_DRA, host: node },
        reportingComponent: COMPONENT_DRA,
        reportingInstance: node,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  };
  return {
    claim: (c, type, reason, message) =>
      post(
        c.namespace,
        {
          apiVersion: 'resource.k8s.io/v1',
          kind: 'ResourceClaim',
          namespace: c.namespace,
          name: c.name,
          uid: c.uid,
        },
        type,
        reason,
        message,
      ),
    node: (type, reason, message) =>
      post('default', { apiVersion: 'v1', kind: 'Node', name: node }, type, reason, message),
  };
}
