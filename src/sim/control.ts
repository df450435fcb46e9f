import * as fs from 'node:fs';
import * as net from 'node:net';
import { ErrnoError, errnoNumber, isErrnoCode, strerror, type ErrnoCode } from '../common/errno.js';
import { isUuid } from '../common/uuid.js';
import { isPciAddress } from './core/pci.js';
import { vfioPciDevices } from './core/vfio.js';
import type { Lab } from './lab.js';

/**
 * The emulator's control interface for a running lab: what a VM or the
 * machine itself would do and no management tool may (a VM opens and
 * releases a device through VFIO; the host power-cycles). Served on a unix
 * socket, by convention `<lab dir>/lab.sock` beside the lab's `sys/` mount.
 *
 * Protocol: JSON lines. Each request is one object on one line; each gets
 * exactly one response line, in order. A connection may carry many.
 *
 *   {"op":"open","uuid":U}    a VM opens the mediated device (VFIO open)
 *   {"op":"close","uuid":U}   the VM releases it
 *   {"op":"open","device":A}  the same for a PCI function a VFIO driver registered
 *   {"op":"close","device":A} (an NVIDIA VF, by address "0000:41:00.4")
 *   {"op":"status"}           profile, parents, devices and who holds them open
 *   {"op":"reboot"}           power cycle: active devices vanish, parents re-register
 *   {"op":"dmesg","after":N}  kernel log lines with seq > N (default 0)
 *   {"op":"sriov-manage","enable":B,"target":"0000:41:00.0"|"ALL","boot":B}
 *                             NVIDIA's sriov-manage -e|-d: enable or disable a
 *                             GPU's VFs; with "boot", also at every reboot
 *
 * A request may carry "id" (string or number), echoed in its response.
 * Responses: {"ok":true, ...} or {"ok":false,"error":{code,errno,message,detail?}}
 * with the errno the emulator raised (EBUSY, ENODEV, EINVAL ...).
 */

export type ControlRequest =
  | { op: 'open' | 'close'; uuid: string; id?: string | number }
  | { op: 'open' | 'close'; device: string; id?: string | number }
  | { op: 'sriov-manage'; enable: boolean; target: string; boot?: boolean; id?: string | number }
  | { op: 'status' | 'reboot'; id?: string | number }
  | { op: 'dmesg'; after?: number; id?: string | number };

export interface ControlError {
  code: ErrnoCode;
  errno: number;
  message: string;
  detail?: string;
}

export interface DeviceStatus {
  uuid: string;
  parent: string;
  type: string;
  /** Users holding the device open (0 = closed). */
  openCount: number;
  /** mdev/aggregation/value (1 when the type does not aggregate). */
  aggregation: number;
}

export type ControlResponse =
  | ({ ok: true; id?: string | number } & Record<string, unknown>)
  | { ok: false; id?: string | number; error: ControlError };

export interface ControlStatus {
  profile: string;
  parents: string[];
  devices: DeviceStatus[];
  /** PCI functions a VM can open through VFIO (NVIDIA VFs), and who holds them. */
  vfio: { address: string; openCount: number }[];
  /** Boot units that enable VFs at every reboot (sriov-manage --boot). */
  sriovAtBoot: string[];
}

export interface ControlHooks {
  /**
   * Runs after a reboot, before the response goes out (e.g. wait for the
   * autostart that the re-registration uevents set off).
   */
  afterReboot?(): Promise<void> | void;
  /** Runs after sriov-manage, before the response (the autostart of the new VFs). */
  afterSriovManage?(): Promise<void> | void;
}

/** Longest request line accepted; a request is a few dozen bytes. */
const MAX_LINE = 64 * 1024;

export interface ControlServer {
  readonly socketPath: string;
  /** Stop accepting, end open connections and remove the socket file. */
  close(): Promise<void>;
}

/**
 * Serve `lab` on a unix socket at `socketPath`. A stale socket (no one
 * answering) is replaced; a live one is EADDRINUSE; any other file there
 * is EEXIST. The socket is made 0600: opening devices is root's business.
 */
export async function startControlServer(
  lab: Lab,
  socketPath: string,
  hooks: ControlHooks = {},
): Promise<ControlServer> {
  await clearStaleSocket(socketPath);
  const connections = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    connections.add(sock);
    sock.once('close', () => connections.delete(sock));
    serveConnection(lab, sock, hooks);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await fs.promises.chmod(socketPath, 0o600);
  return {
    socketPath,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of connections) c.destroy();
      await closed;
      await fs.promises.rm(socketPath, { force: true });
    },
  };
}

async function clearStaleSocket(socketPath: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = await fs.promises.lstat(socketPath);
  } catch {
    return; // nothing there
  }
  if (!st.isSocket()) {
    throw new ErrnoError('EEXIST', `${socketPath} exists and is not a socket`, socketPath);
  }
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) {
    throw new ErrnoError('EADDRINUSE', `a lab is already serving ${socketPath}`, socketPath);
  }
  await fs.promises.rm(socketPath, { force: true });
}

function serveConnection(lab: Lab, sock: net.Socket, hooks: ControlHooks): void {
  sock.setEncoding('utf8');
  let buffered = '';
  // Requests are answered one at a time, in order, even when one (reboot)
  // waits on a hook: the next waits for the previous response.
  let queue = Promise.resolve();
  sock.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.trim() === '') continue;
      queue = queue.then(async () => {
        const response = await handleLine(lab, line, hooks);
        if (!sock.destroyed) sock.write(`${JSON.stringify(response)}\n`);
      });
    }
    if (buffered.length > MAX_LINE) {
      sock.end(`${JSON.stringify(failure(undefined, 'E2BIG', 'request line too long'))}\n`);
      buffered = '';
    }
  });
  sock.on('error', () => sock.destroy()); // a client that went away
}

async function handleLine(lab: Lab, line: string, hooks: ControlHooks): Promise<ControlResponse> {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return failure(undefined, 'EINVAL', 'request is not JSON');
  }
  if (typeof req !== 'object' || req === null || Array.isArray(req)) {
    return failure(undefined, 'EINVAL', 'request must be a JSON object');
  }
  const r = req as Record<string, unknown>;
  const id = typeof r['id'] === 'string' || typeof r['id'] === 'number' ? r['id'] : undefined;
  try {
    return { ok: true, ...(id !== undefined ? { id } : {}), ...(await dispatch(lab, r, hooks)) };
  } catch (err) {
    if (err instanceof ErrnoError) return failure(id, err.code, err.message, err.detail);
    return failure(id, 'EIO', `internal error: ${(err as Error).message ?? String(err)}`);
  }
}

async function dispatch(
  lab: Lab,
  r: Record<string, unknown>,
  hooks: ControlHooks,
): Promise<Record<string, unknown>> {
  switch (r['op']) {
    case 'open':
    case 'close': {
      const op = r['op'];
      if (r['device'] !== undefined) {
        const device = r['device'];
        if (typeof device !== 'string' || !isPciAddress(device.toLowerCase())) {
          throw new ErrnoError('EINVAL', `${op}: "device" must be a PCI address (dddd:bb:ss.f)`);
        }
        const a = device.toLowerCase();
        const openCount = op === 'open' ? lab.open(a) : lab.close(a);
        return { device: a, openCount };
      }
      const uuid = r['uuid'];
      if (typeof uuid !== 'string' || !isUuid(uuid)) {
        throw new ErrnoError('EINVAL', `${op}: "uuid" must be a UUID (or "device" a PCI address)`);
      }
      const u = uuid.toLowerCase();
      if (op === 'open') lab.open(u);
      else lab.close(u);
      lab.kernel.log('info', `mdev ${u}: ${op === 'open' ? 'opened' : 'released'} by a VM`);
      return { uuid: u, openCount: lab.core.device(u)?.openCount ?? 0 };
    }
    case 'sriov-manage': {
      const { enable, target, boot } = r;
      if (typeof enable !== 'boolean') {
        throw new ErrnoError('EINVAL', 'sriov-manage: "enable" must be true (-e) or false (-d)');
      }
      if (typeof target !== 'string' || target === '') {
        throw new ErrnoError('EINVAL', 'sriov-manage: "target" must be a PCI address or ALL');
      }
      if (boot !== undefined && typeof boot !== 'boolean') {
        throw new ErrnoError('EINVAL', 'sriov-manage: "boot" must be true or false');
      }
      const result = lab.sriovManage(enable, target, { boot: boot === true });
      await hooks.afterSriovManage?.();
      return { ...result, sriovAtBoot: lab.sriovAtBoot };
    }
    case 'status':
      return { ...controlStatus(lab) };
    case 'reboot':
      lab.reboot();
      await hooks.afterReboot?.();
      return { parents: lab.parentNames };
    case 'dmesg': {
      const after = r['after'] ?? 0;
      if (typeof after !== 'number' || !Number.isSafeInteger(after) || after < 0) {
        throw new ErrnoError('EINVAL', 'dmesg: "after" must be a sequence number');
      }
      return { lines: lab.kernel.dmesg(after) };
    }
    default:
      throw new ErrnoError(
        'EINVAL',
        `unknown op ${JSON.stringify(r['op'])} (open, close, status, reboot, dmesg, sriov-manage)`,
      );
  }
}

/** What `status` answers: the lab as the emulator sees it. */
export function controlStatus(lab: Lab): ControlStatus {
  return {
    profile: lab.profile.name,
    parents: lab.parentNames,
    devices: [...lab.core.devices.values()].map((d) => ({
      uuid: d.uuid,
      parent: d.parent.name,
      type: d.type.id,
      openCount: d.openCount,
      aggregation: d.aggregation,
    })),
    vfio: vfioPciDevices(lab.kernel).map((d) => ({
      address: d.fn.address,
      openCount: d.openCount,
    })),
    sriovAtBoot: [...lab.sriovAtBoot],
  };
}

function failure(
  id: string | number | undefined,
  code: ErrnoCode,
  message: string,
  detail?: string,
): ControlResponse {
  const error: ControlError = { code, errno: errnoNumber(code), message };
  if (detail !== undefined) error.detail = detail;
  return id !== undefined ? { ok: false, id, error } : { ok: false, error };
}

// ---- client ------------------------------------------------------------------

/** No lab answers at the socket (none running, or a stale socket file). */
export class ControlUnavailableError extends Error {
  override readonly name = 'ControlUnavailableError';
  constructor(
    readonly socketPath: string,
    readonly code: string,
  ) {
    super(`no lab is serving ${socketPath} (${code})`);
  }
}

/**
 * Send one request and wait for its response. Rejects with
 * ControlUnavailableError when nothing serves the socket, and with a plain
 * Error when the server goes away or `timeoutMs` passes without an answer.
 */
export function controlRequest(
  socketPath: string,
  request: ControlRequest,
  timeoutMs = 10_000,
): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let buffered = '';
    let connected = false;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`lab control: no answer from ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (fn: () => void): void => {
      clearTimeout(timer);
      sock.destroy();
      fn();
    };
    sock.setEncoding('utf8');
    sock.once('connect', () => {
      connected = true;
      sock.write(`${JSON.stringify(request)}\n`);
    });
    sock.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      const line = buffered.slice(0, nl);
      done(() => {
        try {
          resolve(JSON.parse(line) as ControlResponse);
        } catch {
          reject(new Error(`lab control: malformed response from ${socketPath}`));
        }
      });
    });
    sock.once('error', (err: NodeJS.ErrnoException) =>
      done(() =>
        reject(
          connected
            ? err
            : new ControlUnavailableError(socketPath, err.code ?? 'connection failed'),
        ),
      ),
    );
    sock.once('end', () =>
      done(() => reject(new Error(`lab control: ${socketPath} closed without answering`))),
    );
  });
}

/**
 * controlRequest, with a failure response turned into the ErrnoError the
 * emulator raised (code and detail intact), so callers match on `code`.
 */
export async function controlCall(
  socketPath: string,
  request: ControlRequest,
  timeoutMs?: number,
): Promise<Record<string, unknown>> {
  const res = await controlRequest(socketPath, request, timeoutMs);
  if (res.ok) return res;
  const { code, message, detail } = res.error;
  if (!isErrnoCode(code)) throw new Error(`lab control: ${message}`);
  throw new ErrnoError(code, message === '' ? strerror(code) : message, undefined, detail);
}
