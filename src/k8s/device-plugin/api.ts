import type * as grpc from '@grpc/grpc-js';
import { call, type Unary } from '../grpc/call.js';
import { loadProto, serviceAt } from '../grpc/proto.js';

/**
 * The kubelet device plugin API v1beta1 (src/k8s/proto/deviceplugin/
 * v1beta1/api.proto) as TypeScript: the messages with the .proto's field
 * names (see grpc/proto.ts for the loader options), the two services, and
 * the API's constants.
 */

/** The API version a plugin registers with; the only one kubelet supports. */
export const API_VERSION = 'v1beta1';
/** kubelet's registration socket, in the device plugin directory. */
export const KUBELET_SOCKET = 'kubelet.sock';
/** Where kubelet looks for device plugin sockets. */
export const DEFAULT_DEVICE_PLUGIN_DIR = '/var/lib/kubelet/device-plugins';
export const HEALTHY = 'Healthy';
export const UNHEALTHY = 'Unhealthy';
/** The longest device ID kubelet accepts. */
export const MAX_DEVICE_ID_LENGTH = 63;
/** kubelet's deadline for PreStartContainer. */
export const PRE_START_CONTAINER_TIMEOUT_MS = 30_000;

export type Health = typeof HEALTHY | typeof UNHEALTHY;

/** A message with no fields. */
export type Empty = Record<string, never>;

export interface DevicePluginOptions {
  pre_start_required: boolean;
  get_preferred_allocation_available: boolean;
}

export interface RegisterRequest {
  version: string;
  endpoint: string;
  resource_name: string;
  options: DevicePluginOptions | null;
}

export interface NUMANode {
  ID: number;
}

export interface TopologyInfo {
  nodes: NUMANode[];
}

export interface Device {
  ID: string;
  health: string;
  topology: TopologyInfo | null;
}

export interface ListAndWatchResponse {
  devices: Device[];
}

export interface ContainerPreferredAllocationRequest {
  available_deviceIDs: string[];
  must_include_deviceIDs: string[];
  allocation_size: number;
}

export interface PreferredAllocationRequest {
  container_requests: ContainerPreferredAllocationRequest[];
}

export interface ContainerPreferredAllocationResponse {
  deviceIDs: string[];
}

export interface PreferredAllocationResponse {
  container_responses: ContainerPreferredAllocationResponse[];
}

export interface ContainerAllocateRequest {
  devices_ids: string[];
}

export interface AllocateRequest {
  container_requests: ContainerAllocateRequest[];
}

export interface Mount {
  container_path: string;
  host_path: string;
  read_only: boolean;
}

export interface DeviceSpec {
  container_path: string;
  host_path: string;
  permissions: string;
}

export interface CDIDevice {
  name: string;
}

export interface ContainerAllocateResponse {
  envs: Record<string, string>;
  mounts: Mount[];
  devices: DeviceSpec[];
  annotations: Record<string, string>;
  cdi_devices: CDIDevice[];
}

export interface AllocateResponse {
  container_responses: ContainerAllocateResponse[];
}

export interface PreStartContainerRequest {
  devices_ids: string[];
}

export type PreStartContainerResponse = Record<string, never>;

/** What a device plugin implements (grpc-js handler shapes). */
export interface DevicePluginHandlers extends grpc.UntypedServiceImplementation {
  GetDevicePluginOptions: grpc.handleUnaryCall<Empty, DevicePluginOptions>;
  ListAndWatch: grpc.handleServerStreamingCall<Empty, ListAndWatchResponse>;
  GetPreferredAllocation: grpc.handleUnaryCall<
    PreferredAllocationRequest,
    PreferredAllocationResponse
  >;
  Allocate: grpc.handleUnaryCall<AllocateRequest, AllocateResponse>;
  PreStartContainer: grpc.handleUnaryCall<PreStartContainerRequest, PreStartContainerResponse>;
}

/** What kubelet's registration service implements. */
export interface RegistrationHandlers extends grpc.UntypedServiceImplementation {
  Register: grpc.handleUnaryCall<RegisterRequest, Empty>;
}

/** A client of a device plugin (what kubelet holds). */
export interface DevicePluginClient extends grpc.Client {
  GetDevicePluginOptions: Unary<Empty, DevicePluginOptions>;
  ListAndWatch(
    request: Empty,
    options?: grpc.CallOptions,
  ): grpc.ClientReadableStream<ListAndWatchResponse>;
  GetPreferredAllocation: Unary<PreferredAllocationRequest, PreferredAllocationResponse>;
  Allocate: Unary<AllocateRequest, AllocateResponse>;
  PreStartContainer: Unary<PreStartContainerRequest, PreStartContainerResponse>;
}

/** A client of kubelet's registration service (what a plugin holds). */
export interface RegistrationClient extends grpc.Client {
  Register: Unary<RegisterRequest, Empty>;
}

const PROTO = 'deviceplugin/v1beta1/api.proto';

/** The DevicePlugin service: `.service` for a server, `new` for a client. */
export function devicePluginService(): grpc.ServiceClientConstructor {
  return serviceAt(loadProto(PROTO), 'v1beta1.DevicePlugin');
}

/** kubelet's Registration service. */
export function registrationService(): grpc.ServiceClientConstructor {
  return serviceAt(loadProto(PROTO), 'v1beta1.Registration');
}

/** Kept here for the device plugin's callers; the helper lives in grpc/call.ts. */
export { call };
