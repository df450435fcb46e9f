import { isUuid } from '../common/uuid.js';
import {
  MdevError,
  codeOf,
  describeError,
  probeActive,
  startDevice,
  stopDevice,
  type HostErrorCode,
  type HostHooks,
} from '../host/devices.js';
import type { Environment } from '../host/environment.js';
import {
  PCI_DEVICES,
  VfVgpuError,
  describeVfError,
  shortTypeName,
  startVgpu,
  stopVgpu,
  typeKey,
  vfOf,
} from '../host/vf-vgpu.js';
import { findDefinition } from './definitions.js';
import { describeVfHostdev, findVfHostdev } from './vf-hostdev.js';
import { XmlInputError, child, childrenNamed, parseXml } from './xml.js';

/**
 * Make sure every mediated device a domain uses is running before QEMU
 * starts: a device that is defined (mdevctl) but not running is started
 * from its definition. Without this a VM whose mdev is defined but inactive
 * fails to boot (virt-manager#392). Used by `mdevkit ensure-started` and by
 * the libvirt qemu hook in its "prepare" phase.
 *
 * NVIDIA VF vGPUs too: a `<hostdev type='pci'>` whose address is a VF of
 * an NVIDIA vGPU GPU gets its vGPU written before boot when a definition
 * pinned to that VF says so (the VF otherwise opens with ENODEV); a VF
 * holding another vGPU is refused, naming the holder, and so is such a
 * hostdev with managed='yes' (libvirt would rebind the VF to vfio-pci,
 * which the VF refuses). Other PCI hostdevs are not ours and are left alone.
 *
 * All or nothing: when one device cannot start, the devices this call
 * started are stopped again, so a failed VM start leaves the host as it was.
 */

export interface DomainMdevs {
  /** The domain's name, when the XML has one. */
  readonly domain: string | undefined;
  /** UUIDs of its mdev hostdevs, in document order, without repeats. */
  readonly uuids: readonly string[];
  /** PCI hostdevs ("0000:41:00.4"), in document order, without repeats; with their managed attribute. */
  readonly pci?: readonly { readonly address: string; readonly managed: boolean }[];
}

/** Read the mdev hostdevs from a domain XML (as libvirt passes it to hooks). */
export function domainMdevs(xml: string, what = 'domain XML'): DomainMdevs {
  const root = parseXml(xml, what);
  if (root.name !== 'domain') {
    throw new XmlInputError(`${what} is not a domain: its root element is <${root.name}>`);
  }
  const name = child(root, 'name')?.text;
  const uuids: string[] = [];
  const pci: { address: string; managed: boolean }[] = [];
  const devices = child(root, 'devices');
  for (const hostdev of devices === undefined ? [] : childrenNamed(devices, 'hostdev')) {
    if ((hostdev.attrs['mode'] ?? 'subsystem') !== 'subsystem') continue;
    if (hostdev.attrs['type'] === 'pci') {
      const a = child(child(hostdev, 'source') ?? hostdev, 'address')?.attrs;
      const address = a === undefined ? undefined : pciAddressOf(a);
      if (address === undefined) {
        throw new XmlInputError(
          `${what}: a PCI <hostdev> has no valid <source><address domain= bus= slot= function=/></source>`,
        );
      }
      if (!pci.some((p) => p.address === address)) {
        // libvirt's default for a PCI hostdev is managed='no' unless said otherwise.
        pci.push({ address, managed: hostdev.attrs['managed'] === 'yes' });
      }
      continue;
    }
    if (hostdev.attrs['type'] !== 'mdev') continue;
    const uuid = child(child(hostdev, 'source') ?? hostdev, 'address')?.attrs['uuid'];
    if (uuid === undefined || !isUuid(uuid)) {
      throw new XmlInputError(
        `${what}: an mdev <hostdev> has no valid <source><address uuid='...'/></source>`,
      );
    }
    const canonical = uuid.toLowerCase();
    if (!uuids.includes(canonical)) uuids.push(canonical);
  }
  return { domain: name === '' ? undefined : name, uuids, pci };
}

/** libvirt's PCI address attributes (decimal or 0x hex) as "dddd:bb:ss.f". */
function pciAddressOf(a: Readonly<Record<string, string>>): string | undefined {
  const num = (v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = /^0x[0-9a-f]+$/i.test(v) ? parseInt(v, 16) : /^\d+$/.test(v) ? Number(v) : NaN;
    return Number.isSafeInteger(n) ? n : undefined;
  };
  const [d, b, s, f] = [num(a['domain'] ?? '0'), num(a['bus']), num(a['slot']), num(a['function'])];
  if (d === undefined || b === undefined || s === undefined || f === undefined) return undefined;
  if (d > 0xffff || b > 0xff || s > 0x1f || f > 7) return undefined;
  const h = (n: number, w: number): string => n.toString(16).padStart(w, '0');
  return `${h(d, 4)}:${h(b, 2)}:${h(s, 2)}.${f}`;
}

export type EnsureState = 'running' | 'started' | 'rolled-back';

export interface EnsureOutcome {
  /** The mdev's UUID, or the VF vGPU's (its definition's; "vf:<address>" when it has none). */
  readonly uuid: string;
  /** The VF's address, for an NVIDIA VF vGPU. */
  readonly vf?: string;
  /** running: was already; started: this call started it; rolled-back: started, then stopped again. */
  readonly state: EnsureState;
  readonly parent: string;
  readonly type: string;
}

/**
 * A device could not be started; the message names it and says why, the
 * code is the failure's own (the kernel's errno, or e.g. `device-unknown`).
 */
export class EnsureStartedError extends MdevError {
  override readonly name = 'EnsureStartedError';
  constructor(
    code: HostErrorCode,
    message: string,
    readonly uuid: string,
    readonly outcomes: readonly EnsureOutcome[],
  ) {
    super(code, message, { context: { uuid } });
  }
}

function forDomain(domain: string | undefined): string {
  return domain === undefined ? '' : ` for domain '${domain}'`;
}

/** Start what is missing; see the module comment. */
export function ensureStarted(
  env: Environment,
  mdevs: DomainMdevs,
  hooks: HostHooks = {},
): EnsureOutcome[] {
  const outcomes: EnsureOutcome[] = [];
  const startedHere: EnsureOutcome[] = [];
  const fail = (uuid: string, message: string, cause?: unknown): never => {
    const rolledBack = new Set<string>();
    // Undo in reverse order; a device that refuses to stop stays listed as started.
    for (const o of [...startedHere].reverse()) {
      try {
        if (o.vf !== undefined) stopVgpu(env, o.uuid);
        else stopDevice(env, o.uuid, hooks);
        rolledBack.add(o.uuid);
      } catch {
        // reported through the outcome's state
      }
    }
    const final = outcomes.map((o) =>
      rolledBack.has(o.uuid) ? { ...o, state: 'rolled-back' as const } : o,
    );
    const code = cause === undefined ? 'device-unknown' : (codeOf(cause) ?? 'EIO');
    throw new EnsureStartedError(code, message, uuid, final);
  };
  for (const uuid of mdevs.uuids) {
    let running: { parent: string; type: string } | undefined;
    try {
      running = probeActive(env.port, uuid);
    } catch (err) {
      fail(
        uuid,
        `mediated device ${uuid}${forDomain(mdevs.domain)} cannot be read in sysfs: ${describeError(err)}`,
        err,
      );
    }
    if (running !== undefined) {
      outcomes.push({ uuid, state: 'running', parent: running.parent, type: running.type });
      continue;
    }
    let def;
    try {
      def = findDefinition(env, uuid, hooks);
    } catch (err) {
      return fail(
        uuid,
        `mediated device ${uuid}${forDomain(mdevs.domain)}: ${describeChain(err)}`,
        err,
      );
    }
    if (def === undefined) {
      return fail(
        uuid,
        `mediated device ${uuid}${forDomain(mdevs.domain)} is neither running nor defined`,
      );
    }
    const { parent, type } = def;
    try {
      startDevice(env, { uuid, parent }, hooks);
    } catch (err) {
      return fail(
        uuid,
        `cannot start mediated device ${uuid} (parent ${parent}, type ${type})${forDomain(mdevs.domain)}: ${describeChain(err)}`,
        err,
      );
    }
    const o: EnsureOutcome = { uuid, state: 'started', parent, type };
    outcomes.push(o);
    startedHere.push(o);
  }
  for (const { address, managed } of mdevs.pci ?? []) {
    // Only NVIDIA vGPU VFs are ours; any other PCI device is libvirt's business.
    if (
      vfOf(env.port, address) === undefined ||
      env.port.kind(`${PCI_DEVICES}/${address}/nvidia/current_vgpu_type`) !== 'file'
    ) {
      continue;
    }
    const h = findVfHostdev(env, address)!;
    const label = describeVfHostdev(env, h);
    if (managed) {
      fail(
        h.uuid ?? `vf:${address}`,
        `${label}${forDomain(mdevs.domain)}: the <hostdev> says managed='yes', so libvirt would rebind the VF to vfio-pci, which NVIDIA's VFs refuse; use managed='no'`,
      );
    }
    const def = h.definition;
    const typeOf = (id: number): string => typeKey(id);
    if (def === undefined) {
      if (h.currentTypeId !== 0) {
        outcomes.push({
          uuid: `vf:${address}`,
          vf: address,
          state: 'running',
          parent: h.gpu,
          type: typeOf(h.currentTypeId),
        });
        continue;
      }
      fail(
        `vf:${address}`,
        `VF ${address}${forDomain(mdevs.domain)} holds no vGPU and no definition names it: a VM cannot open it (create one with 'mdevkit vf create --gpu ${h.gpu} --vf ${h.vf} --type TYPE')`,
      );
    }
    if (h.currentTypeId === def!.typeId) {
      outcomes.push({
        uuid: def!.uuid,
        vf: address,
        state: 'running',
        parent: h.gpu,
        type: typeOf(def!.typeId),
      });
      continue;
    }
    try {
      startVgpu(env, def!.uuid);
    } catch (err) {
      const why = err instanceof VfVgpuError ? err.message : describeVfError(err);
      const name = def!.typeName === undefined ? typeOf(def!.typeId) : shortTypeName(def!.typeName);
      return fail(
        def!.uuid,
        `cannot make vGPU ${def!.uuid} (${name}) on VF ${address}${forDomain(mdevs.domain)}: ${why}`,
      );
    }
    const o: EnsureOutcome = {
      uuid: def!.uuid,
      vf: address,
      state: 'started',
      parent: h.gpu,
      type: typeOf(def!.typeId),
    };
    outcomes.push(o);
    startedHere.push(o);
  }
  return outcomes;
}

/** An error and its causes in one line: "Failed to create ...: No space left on device (ENOSPC)". */
export function describeChain(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && depth < 5; depth++) {
    const text = describeError(e);
    if (!parts.includes(text)) parts.push(text);
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(': ');
}
