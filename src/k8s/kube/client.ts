import * as fs from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { K8sError } from '../errors.js';

/**
 * Credentials for the API server, as Kubernetes components find them:
 * `--kubeconfig FILE`, else $KUBECONFIG (kubectl's rules: a list of files,
 * merged), else the pod's service account (in-cluster: the
 * KUBERNETES_SERVICE_HOST variables and the mounted token and CA).
 */
export function loadKubeConfig(
  kubeconfig: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfig !== undefined) {
    if (!fs.existsSync(kubeconfig)) {
      throw new K8sError('no-credentials', `kubeconfig ${kubeconfig} does not exist`, {
        file: kubeconfig,
      });
    }
    kc.loadFromFile(kubeconfig);
    return kc;
  }
  if ((env['KUBECONFIG'] ?? '') !== '') {
    kc.loadFromDefault();
    return kc;
  }
  if ((env['KUBERNETES_SERVICE_HOST'] ?? '') !== '') {
    kc.loadFromCluster();
    return kc;
  }
  throw new K8sError(
    'no-credentials',
    'no Kubernetes credentials: not running in a cluster (no KUBERNETES_SERVICE_HOST), no $KUBECONFIG and no --kubeconfig',
  );
}

/** The node this plugin runs on: --node, else $NODE_NAME (the DaemonSet sets it from spec.nodeName). */
export function nodeNameFrom(
  option: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  const name = option ?? env['NODE_NAME'];
  return name === undefined || name === '' ? undefined : name;
}
