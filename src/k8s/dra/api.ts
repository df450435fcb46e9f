import type * as grpc from '@grpc/grpc-js';
import type { Unary } from '../grpc/call.js';
import { loadProto, serviceAt } from '../grpc/proto.js';

/**
 * kubelet's plugin registration API (src/k8s/proto/pluginregistration/v1)
 * and its DRA plugin API (src/k8s/proto/dra/v1) as TypeScript: messages
 * with the .proto's field names (see grpc/proto.ts for the loader
 * options), the services, and the constants a DRA kubelet plugin needs.
 */

/** PluginInfo.type of a DRA driver's plugin. */
export const DRA_PLUGIN_TYPE = 'DRAPlugin';
/** The gRPC service a plugin lists in supported_versions ("<package version>.<service>"). */
export const DRA_SERVICE_V1 = 'v1.DRAPlugin';

/** mdevkit's DRA driver name: a DNS subdomain mdevkit owns, as the API asks of driver names. */
export const DEFAULT_DRIVER_NAME = 'mdev.mdevkit.io';
/** Where kubelet's plugins keep their sockets and state (a directory per driver). */
export const DEFAULT_PLUGINS_DIR = '/var/lib/kubelet/plugins';
/** Where kubelet watches for registration sockets. */
export const DEFAULT_REGISTRY_DIR = '/var/lib/kubelet/plugins_registry';
/** Where container runtimes read CDI specs that change at run time. */
export const DEFAULT_CDI_DIR = '/var/run/cdi';

/** The plugin's service socket, in <plugins dir>/<driver>/. */
export const DRA_SOCKET = 'dra.sock';
/** The registration socket's name in the registry directory. */
export const registrationSocketName = (driver: string): string => `${driver}-reg.sock`;

export type Empty = Record<string, never>;

export interface PluginInfo {
  type: string;
  name: string;
  endpoint: string;
  supported_versions: string[];
}

export interface RegistrationStatus {
  plugin_registered: boolean;
  error: string;
}

export interface Claim {
  namespace: string;
  uid: string;
  name: string;
}

export interface Device {
  request_names: string[];
  pool_name: string;
  device_name: string;
  cdi_device_ids: string[];
}

export interface NodePrepareResourcesRequest {
  claims: Claim[];
}

export interface NodePrepareResourceResponse {
  devices: Device[];
  error: string;
}

export interface NodePrepareResourcesResponse {
  claims: Record<string, NodePrepareResourceResponse>;
}

export interface NodeUnprepareResourcesRequest {
  claims: Claim[];
}

export interface NodeUnprepareResourceResponse {
  error: string;
}

export interface NodeUnprepareResourcesResponse {
  claims: Record<string, NodeUnprepareResourceResponse>;
}

/** What a plugin's registration socket serves. */
export interface RegistrationHandlers extends grpc.UntypedServiceImplementation {
  GetInfo: grpc.handleUnaryCall<Empty, PluginInfo>;
  NotifyRegistrationStatus: grpc.handleUnaryCall<RegistrationStatus, Empty>;
}

/** What a DRA plugin serves. */
export interface DraPluginHandlers extends grpc.UntypedServiceImplementation {
  NodePrepareResources: grpc.handleUnaryCall<
    NodePrepareResourcesRequest,
    NodePrepareResourcesResponse
  >;
  NodeUnprepareResources: grpc.handleUnaryCall<
    NodeUnprepareResourcesRequest,
    NodeUnprepareResourcesResponse
  >;
}

/** A client of a plugin's registration socket (what kubelet's plugin watcher holds). */
export interface RegistrationClient extends grpc.Client {
  GetInfo: Unary<Empty, PluginInfo>;
  NotifyRegistrationStatus: Unary<RegistrationStatus, Empty>;
}

/** A client of a DRA plugin (what kubelet's DRA manager holds). */
export interface DraPluginClient extends grpc.Client {
  NodePrepareResources: Unary<NodePrepareResourcesRequest, NodePrepareResourcesResponse>;
  NodeUnprepareResources: Unary<NodeUnprepareResourcesRequest, NodeUnprepareResourcesResponse>;
}

const REGISTRATION_PROTO = 'pluginregistration/v1/api.proto';
const DRA_PROTO = 'dra/v1/api.proto';

/** The plugin registration service: `.service` for a server, `new` for a client. */
export function pluginRegistrationService(): grpc.ServiceClientConstructor {
  return serviceAt(loadProto(REGISTRATION_PROTO), 'pluginregistration.Registration');
}

/** The DRA plugin service v1. */
export function draPluginService(): grpc.ServiceClientConstructor {
  return serviceAt(loadProto(DRA_PROTO), 'k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin');
}
