// The agent's HTTP API, typed by the agent's own schemas. Only types cross
// over from src/agent (erased at build time), so the browser bundle holds
// none of the server's code.
import type { z } from 'zod';
import type {
  ApMatrix,
  Device,
  DeviceList,
  ErrorBody,
  Health,
  ParentInfo,
  TypeInfo,
} from '../../agent/schemas.js';
import type { VgpuCreateBody, VgpuListing } from '../../agent/routes/vf-vgpus.js';
import type { Capacity, Owner, Status } from '../../agent/routes/desired.js';
import { token } from './token.js';

export type Parent = z.infer<typeof ParentInfo>;
export type MdevType = z.infer<typeof TypeInfo>;
export type ApiDevice = z.infer<typeof Device>;
export type Listing = z.infer<typeof DeviceList>;
export type Matrix = z.infer<typeof ApMatrix>;
export type HealthInfo = z.infer<typeof Health>;
export type VfListing = z.infer<typeof VgpuListing>;
export type VfGpu = VfListing['gpus'][number];
export type VfVgpu = VfListing['vgpus'][number];
export type DesiredStatus = z.infer<typeof Status>;
export type HostCapacity = z.infer<typeof Capacity>;
export type OwnerEntry = z.infer<typeof Owner>;
type ErrorInfo = z.infer<typeof ErrorBody>['error'];

export const API = '/api/v1';

/** A refusal of the agent: HTTP status and, when it sent one, its error body. */
export class ApiRequestError extends Error {
  override readonly name = 'ApiRequestError';
  constructor(
    readonly status: number,
    readonly error: ErrorInfo | undefined,
  ) {
    super(error !== undefined ? `${error.errno}: ${error.message}` : `HTTP ${status}`);
  }
}

function isErrorBody(data: unknown): data is z.infer<typeof ErrorBody> {
  if (typeof data !== 'object' || data === null || !('error' in data)) return false;
  const e = data.error;
  return typeof e === 'object' && e !== null && 'errno' in e && typeof e.errno === 'string';
}

/**
 * One request; the answer's JSON (null for 204). The caller names the type
 * the endpoint's schema gives: the agent validates what it sends against it.
 */
async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token() !== '') headers['authorization'] = `Bearer ${token()}`;
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(API + path, init);
  if (res.status === 204) return null as T;
  const data: unknown = await res.json().catch(() => undefined);
  if (!res.ok) throw new ApiRequestError(res.status, isErrorBody(data) ? data.error : undefined);
  return data as T;
}

const q = (parent: string): string => `?parent=${encodeURIComponent(parent)}`;

export const api = {
  health: async (): Promise<HealthInfo> => (await fetch('/healthz')).json() as Promise<HealthInfo>,
  parents: async (): Promise<Parent[]> =>
    (await request<{ parents: Parent[] }>('GET', '/parents')).parents,
  devices: (limit: number): Promise<Listing> => request('GET', `/devices?limit=${limit}`),
  apMatrix: (): Promise<Matrix> => request('GET', '/ap/matrix'),
  vfVgpus: (): Promise<VfListing> => request('GET', '/vf-vgpus'),
  vfCreate: (body: z.input<typeof VgpuCreateBody>): Promise<unknown> =>
    request('POST', '/vf-vgpus', body),
  vfHostdev: (uuid: string): Promise<{ xml: string; qemu: string[] }> =>
    request('GET', `/vf-vgpus/${uuid}/hostdev`),
  vfRemove: (v: VfVgpu, force = false): Promise<null> =>
    v.uuid !== null
      ? request('DELETE', `/vf-vgpus/${v.uuid}${force ? '?force=true' : ''}`)
      : request('DELETE', `/vf-vgpus/vf/${v.vfAddress ?? ''}${force ? '?force=true' : ''}`),

  create: (body: {
    parent: string;
    type: string;
    uuid?: string;
    define?: boolean;
    activate?: boolean;
    start?: 'auto' | 'manual';
  }): Promise<ApiDevice> => request('POST', '/devices', body),
  start: (d: ApiDevice): Promise<ApiDevice> =>
    request('POST', `/devices/${d.uuid}/start`, { parent: d.parent }),
  stop: (d: ApiDevice, force = false): Promise<null> =>
    request('POST', `/devices/${d.uuid}/stop${force ? '?force=true' : ''}`),
  remove: (d: ApiDevice, force = false): Promise<null> =>
    request('DELETE', `/devices/${d.uuid}${q(d.parent)}${force ? '&force=true' : ''}`),
  desiredStatus: (): Promise<DesiredStatus> => request('GET', '/desired/status'),
  capacity: (): Promise<HostCapacity> => request('GET', '/desired/capacity'),
  owners: async (): Promise<OwnerEntry[]> =>
    (await request<{ owners: OwnerEntry[] }>('GET', '/owners')).owners,
  setAggregation: (d: ApiDevice, value: number): Promise<unknown> =>
    request('PUT', `/devices/${d.uuid}/aggregation${q(d.parent)}`, { value }),
  apChange: (
    op: 'assign' | 'unassign',
    uuid: string,
    ids: { adapters: number[]; domains: number[] },
  ): Promise<Matrix> => request('POST', `/ap/devices/${uuid}/${op}`, ids),
};
