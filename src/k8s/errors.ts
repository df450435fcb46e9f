/**
 * Errors of the Kubernetes integration, with stable codes (nothing
 * branches on a message) and the objects involved in `context`.
 */
export const K8S_ERRORS = {
  'invalid-plugin-config': 'the device plugin configuration file is not valid',
  'invalid-resource-name': 'a resource name is not an extended resource name kubelet accepts',
  'registration-refused': 'kubelet refused or did not answer the registration',
  'socket-dir-missing': 'the device plugin directory does not exist',
  'no-node-name': 'the node name is neither given (--node) nor in the environment (NODE_NAME)',
  'no-credentials': 'no Kubernetes credentials: not in a cluster and no kubeconfig',
  'unknown-configuration': 'the node label names a configuration the desired-state file lacks',
  'invalid-driver-name': 'a DRA driver name is not a DNS subdomain of at most 63 characters',
  'invalid-option': 'a command line option has a value out of its range',
} as const;

export type K8sErrorCode = keyof typeof K8S_ERRORS;

export class K8sError extends Error {
  override readonly name = 'K8sError';
  constructor(
    readonly code: K8sErrorCode,
    message: string,
    readonly context: Readonly<Record<string, string>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
