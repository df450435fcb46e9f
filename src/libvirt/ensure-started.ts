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
import { findDefinition } from './definitions.js';
import { XmlInputError, child, childrenNamed, parseXml } from './xml.js';

/**
 * Make sure every mediated device a domain uses is running before QEMU
 * starts: a device that is defined (mdevctl) but not running is started
 * from its definition. Without this a VM whose mdev is defined but inactive
 * fails to boot (virt-manager#392). Used by `mdevkit ensure-started` and by
 * the libvirt qemu hook in its "prepare" phase.
 *
 * All or nothing: when one device cannot start, the devices this call
 * started are stopped again, so a failed VM start leaves the host as it was.
 */

export interface DomainMdevs {
  /** The domain's name, when the XML has one. */
  readonly domain: string | undefined;
  /** UUIDs of its mdev hostdevs, in document order, without repeats. */
  readonly uuids: readonly string[];
}

/** Read the mdev hostdevs from a domain XML (as libvirt passes it to hooks). */
export function domainMdevs(xml: string, what = 'domain XML'): DomainMdevs {
  const root = parseXml(xml, what);
  if (root.name !== 'domain') {
    throw new XmlInputError(`${what} is not a domain: its root element is <${root.name}>`);
  }
  const name = child(root, 'name')?.text;
  const uuids: string[] = [];
  const devices = child(root, 'devices');
  for (const hostdev of devices === undefined ? [] : childrenNamed(devices, 'hostdev')) {
    if (hostdev.attrs['type'] !== 'mdev') continue;
    if ((hostdev.attrs['mode'] ?? 'subsystem') !== 'subsystem') continue;
    const uuid = child(child(hostdev, 'source') ?? hostdev, 'address')?.attrs['uuid'];
    if (uuid === undefined || !isUuid(uuid)) {
      throw new XmlInputError(
        `${what}: an mdev <hostdev> has no valid <source><address uuid='...'/></source>`,
      );
    }
    const canonical = uuid.toLowerCase();
    if (!uuids.includes(canonical)) uuids.push(canonical);
  }
  return { domain: name === '' ? undefined : name, uuids };
}

export type EnsureState = 'running' | 'started' | 'rolled-back';

export interface EnsureOutcome {
  readonly uuid: string;
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
        stopDevice(env, o.uuid, hooks);
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
