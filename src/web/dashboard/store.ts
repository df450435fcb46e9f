// What the page shows, loaded from the API, and when it is loaded again.
// Every change reaches the page as an event (or is made by the page); a
// burst of them costs one reload per REDRAW_DELAY_MS, and a reload is a
// fixed number of requests however many devices the host has: the
// listing carries each device's aggregation, so nothing is asked per device.
import {
  api,
  ApiRequestError,
  type ApiDevice,
  type DesiredStatus,
  type HostCapacity,
  type Matrix,
  type Parent,
  type VfListing,
} from './api.js';
import { byId, toast } from './dom.js';

/** Rows drawn; the count says when the host has more. */
export const SHOWN_DEVICES = 500;
const REDRAW_DELAY_MS = 200;

export interface DashboardState {
  parents: Parent[];
  devices: ApiDevice[];
  total: number;
  /** null: no AP bus on this host (or an agent without the endpoint). */
  ap: Matrix | null;
  /** NVIDIA's SR-IOV GPUs and their VF vGPUs (empty lists on a host without). */
  vgpus: VfListing;
  /** Desired (as last applied) next to actual, capacity by the vendors' rules, owners by UUID. */
  desired: DesiredStatus | null;
  capacity: HostCapacity | null;
  owners: Map<string, string>;
}

export const state: DashboardState = {
  parents: [],
  devices: [],
  total: 0,
  ap: null,
  vgpus: { gpus: [], vgpus: [], invalidDefinitions: [] },
  desired: null,
  capacity: null,
  owners: new Map(),
};

export async function loadVgpus(): Promise<void> {
  state.vgpus = await api.vfVgpus();
}

/** The desired-state view's data; an agent without those endpoints leaves it empty. */
export async function loadDesired(): Promise<void> {
  try {
    const [desired, capacity, owners] = await Promise.all([
      api.desiredStatus(),
      api.capacity(),
      api.owners(),
    ]);
    state.desired = desired;
    state.capacity = capacity;
    state.owners = new Map(owners.map((o) => [o.uuid, o.owner]));
  } catch {
    state.desired = null;
    state.capacity = null;
  }
}

export async function loadParents(): Promise<void> {
  state.parents = await api.parents();
}

export async function loadDevices(): Promise<void> {
  const listing = await api.devices(SHOWN_DEVICES);
  state.devices = listing.devices;
  state.total = listing.total;
}

export async function loadAp(): Promise<void> {
  try {
    state.ap = await api.apMatrix();
  } catch {
    state.ap = null;
  }
}

let render: () => void = () => {};

/** Who draws the page after a reload (set once at start). */
export function onReloaded(draw: () => void): void {
  render = draw;
}

let reloadTimer: ReturnType<typeof setTimeout> | undefined;
let reloadAp = false;

/** Coalesce a burst of events into one reload, then redraw. */
export function scheduleReload(withAp: boolean): void {
  reloadAp ||= withAp;
  if (reloadTimer !== undefined) return;
  reloadTimer = setTimeout(() => {
    reloadTimer = undefined;
    const ap = reloadAp;
    reloadAp = false;
    Promise.all([
      loadParents(),
      loadDevices(),
      loadVgpus(),
      loadDesired(),
      ap ? loadAp() : undefined,
    ])
      .then(() => render())
      .catch((err: unknown) => toast(`could not reload: ${String(err)}`, true));
  }, REDRAW_DELAY_MS);
}

/** Run a write; say what happened; ask for the token when it is missing. */
export async function act(what: string, write: () => Promise<unknown>): Promise<void> {
  try {
    await write();
    toast(what);
    scheduleReload(true); // at once, rather than when the event arrives
  } catch (err) {
    if (err instanceof ApiRequestError && err.status === 401)
      byId('token', HTMLInputElement).focus();
    toast(`${what} failed — ${err instanceof Error ? err.message : String(err)}`, true);
  }
}
