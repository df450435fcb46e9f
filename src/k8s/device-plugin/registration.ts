import * as grpc from '@grpc/grpc-js';
import { unixTarget, waitConnected } from '../grpc/unix-socket.js';
import {
  API_VERSION,
  call,
  registrationService,
  type DevicePluginOptions,
  type RegistrationClient,
} from './api.js';

/**
 * Register a plugin with kubelet: dial `kubelet.sock`, send Register with
 * the API version, the plugin's socket file name and its resource name.
 * kubelet dials the plugin back (10 s), asks its options and starts
 * ListAndWatch before it answers, so the plugin must already serve; an
 * error means kubelet refused (version, resource name) or could not reach
 * the plugin.
 */
export interface RegisterParams {
  readonly kubeletSocket: string;
  /** The plugin's socket file name, relative to the device plugin directory. */
  readonly endpoint: string;
  readonly resourceName: string;
  readonly options: DevicePluginOptions;
  /** How long to wait for kubelet's answer (it dials back within 10 s). */
  readonly timeoutMs: number;
}

export async function register(p: RegisterParams): Promise<void> {
  const Client = registrationService();
  const client = new Client(
    unixTarget(p.kubeletSocket),
    grpc.credentials.createInsecure(),
  ) as unknown as RegistrationClient;
  try {
    await waitConnected(client, Math.min(p.timeoutMs, 5_000));
    await call(
      client.Register,
      client,
      {
        version: API_VERSION,
        endpoint: p.endpoint,
        resource_name: p.resourceName,
        options: p.options,
      },
      { deadline: Date.now() + p.timeoutMs },
    );
  } finally {
    client.close();
  }
}
