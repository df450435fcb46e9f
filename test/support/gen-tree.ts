/**
 * Generates a static mdev host for tests and benchmarks: DIR/sys laid out as
 * the kernel's mdev core lays it out, and DIR/etc/mdevctl.d with mdevctl's
 * definitions, in any size — P parents × T types, N active devices, D
 * definitions, a share of them both — plus, on request, the broken states
 * real hosts show (dangling links, a device without its type link, malformed
 * definitions, entries that are not UUIDs).
 *
 * Both the real mdevctl (through scripts/mdevctl-ns) and bin/mdevctl
 * (MDEVCTL_ENV_ROOT=DIR) read it. Deterministic for a given seed, so two
 * trees made with the same options are identical byte for byte.
 *
 *   node --import tsx test/support/gen-tree.ts DIR [--parents P] [--types T]
 *        [--active N] [--defined D] [--overlap F] [--seed S] [--broken KIND=N]...
 *
 * prints a JSON summary (counts, and a free parent/type/UUID for `define`).
 *
 * Layout (one parent; a device dir is the UUID):
 *   sys/devices/pci0000:00/0000:00:RR.0/0000:BB:00.0/      vendor device class uevent
 *     mdev_supported_types/nvidia-N/{available_instances,device_api,name,description,create,devices/}
 *     mdev_supported_types/nvidia-N/devices/UUID -> ../../../UUID
 *     UUID/{mdev_type -> ../mdev_supported_types/nvidia-N, subsystem, driver, remove, uevent}
 *   sys/class/mdev_bus/0000:BB:00.0 -> ../../devices/pci0000:00/0000:00:RR.0/0000:BB:00.0
 *   sys/bus/mdev/devices/UUID -> ../../../devices/.../0000:BB:00.0/UUID
 *   etc/mdevctl.d/0000:BB:00.0/UUID                          {"mdev_type", "start", "attrs"}
 *   etc/mdevctl.d/scripts.d/{callouts,notifiers}/, usr/lib/mdevctl/scripts.d/{callouts,notifiers}/
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Broken states a real host can show, each applied to that many devices or definitions. */
export type BrokenKind =
  /** sys/bus/mdev/devices/UUID points at a device directory that is gone. */
  | 'dangling-bus-link'
  /** an active device without its mdev_type link. */
  | 'missing-type-link'
  /** an active device whose mdev_type link names a type the parent lacks. */
  | 'dangling-type-link'
  /** a definition whose file is not JSON. */
  | 'malformed-definition'
  /** a bus entry whose name is not a UUID (links to its parent). */
  | 'non-uuid-bus-entry'
  /** a file in a parent's definition directory whose name is not a UUID. */
  | 'non-uuid-definition';

export const BROKEN_KINDS: readonly BrokenKind[] = [
  'dangling-bus-link',
  'missing-type-link',
  'dangling-type-link',
  'malformed-definition',
  'non-uuid-bus-entry',
  'non-uuid-definition',
];

export interface TreeOptions {
  /** parents (PCI functions 0000:01:00.0 ...), 1..255; default 8 */
  readonly parents?: number;
  /** mdev types per parent; default 4 */
  readonly types?: number;
  /** active devices, spread round-robin over parents and their types; default 100 */
  readonly active?: number;
  /** definitions; default 100 */
  readonly defined?: number;
  /**
   * Share of min(active, defined) that is both active and defined (their
   * definitions say start=auto); the other definitions are of inactive
   * devices (start=manual). Default 0.5.
   */
  readonly overlap?: number;
  /** seed of the UUIDs; default 1 */
  readonly seed?: number;
  /** how many of each broken state to add */
  readonly broken?: Partial<Record<BrokenKind, number>>;
}

export interface TreeDevice {
  readonly uuid: string;
  readonly parent: string;
  readonly type: string;
}

export interface GeneratedTree {
  readonly dir: string;
  readonly parents: readonly string[];
  readonly types: readonly string[];
  readonly active: readonly TreeDevice[];
  readonly defined: readonly (TreeDevice & { readonly start: 'auto' | 'manual' })[];
  /** devices and definitions made broken, by kind (UUIDs or entry names) */
  readonly broken: Partial<Record<BrokenKind, readonly string[]>>;
  /** a parent, type and UUID no device or definition uses: for `define` and `start` */
  readonly free: TreeDevice;
}

/** mulberry32: small, fast and good enough to spread UUIDs. */
function random32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Distinct RFC 4122 version-4 UUIDs, as `uuidgen -r` makes them. */
function uuidSource(seed: number): () => string {
  const next = random32(seed);
  const seen = new Set<string>();
  return () => {
    for (;;) {
      const b = Buffer.alloc(16);
      for (let i = 0; i < 16; i += 4) b.writeUInt32BE(next(), i);
      b[6] = (b[6]! & 0x0f) | 0x40;
      b[8] = (b[8]! & 0x3f) | 0x80;
      const h = b.toString('hex');
      const u = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
      if (!seen.has(u)) {
        seen.add(u);
        return u;
      }
    }
  };
}

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');

function count(name: string, v: number | undefined, dflt: number, min = 0): number {
  const n = v ?? dflt;
  if (!Number.isInteger(n) || n < min) throw new RangeError(`${name} must be an integer >= ${min}`);
  return n;
}

interface ParentPlan {
  readonly name: string;
  /** path below sys/devices */
  readonly devpath: string;
  readonly types: { readonly id: string; readonly label: string; used: number }[];
  assigned: number;
}

/**
 * Write the tree into `dir` (which must not exist or be empty) and describe
 * what is in it.
 */
export function generateTree(dir: string, options: TreeOptions = {}): GeneratedTree {
  const nParents = count('parents', options.parents, 8, 1);
  if (nParents > 255) throw new RangeError('parents must be at most 255');
  const nTypes = count('types', options.types, 4, 1);
  const nActive = count('active', options.active, 100);
  const nDefined = count('defined', options.defined, 100);
  const overlap = options.overlap ?? 0.5;
  if (!(overlap >= 0 && overlap <= 1)) throw new RangeError('overlap must be within [0, 1]');
  const newUuid = uuidSource(count('seed', options.seed, 1));
  const broken = options.broken ?? {};
  for (const [kind, n] of Object.entries(broken)) {
    if (!BROKEN_KINDS.includes(kind as BrokenKind))
      throw new RangeError(`unknown broken state ${kind}`);
    count(`broken ${kind}`, n, 0);
  }

  const root = path.resolve(dir);
  if (fs.existsSync(root) && fs.readdirSync(root).length > 0) {
    throw new Error(`${root} exists and is not empty`);
  }
  const sys = path.join(root, 'sys');
  const etc = path.join(root, 'etc/mdevctl.d');
  const mkdir = (d: string): void => void fs.mkdirSync(d, { recursive: true });
  const write = (f: string, s: string, mode = 0o644): void => fs.writeFileSync(f, s, { mode });
  for (const d of [
    'sys/class/mdev_bus',
    'sys/bus/mdev/devices',
    'sys/bus/mdev/drivers/vfio_mdev',
    'etc/mdevctl.d/scripts.d/callouts',
    'etc/mdevctl.d/scripts.d/notifiers',
    'usr/lib/mdevctl/scripts.d/callouts',
    'usr/lib/mdevctl/scripts.d/notifiers',
  ]) {
    mkdir(path.join(root, d));
  }

  // Discrete GPUs behind root ports, as vGPU hosts have them: 0000:BB:00.0
  // behind 0000:00:RR.0; types named as the NVIDIA vGPU driver names them.
  const parents: ParentPlan[] = [];
  for (let p = 0; p < nParents; p++) {
    const name = `0000:${hex2(p + 1)}:00.0`;
    const types = Array.from({ length: nTypes }, (_, t) => ({
      id: `nvidia-${256 + t * 4}`,
      label: `GRID T4-${2 ** t}Q`,
      used: 0,
    }));
    parents.push({
      name,
      devpath: `pci0000:00/0000:00:${hex2((p % 31) + 1)}.0/${name}`,
      types,
      assigned: 0,
    });
  }

  const active: (TreeDevice & { readonly plan: ParentPlan })[] = [];
  for (let i = 0; i < nActive; i++) {
    const p = parents[i % nParents]!;
    const t = p.types[p.assigned % nTypes]!;
    p.assigned++;
    t.used++;
    active.push({ uuid: newUuid(), parent: p.name, type: t.id, plan: p });
  }
  const maxInstances = Math.max(...parents.flatMap((p) => p.types.map((t) => t.used))) + 4;

  for (const p of parents) {
    const pdir = path.join(sys, 'devices', p.devpath);
    mkdir(pdir);
    write(path.join(pdir, 'vendor'), '0x10de\n');
    write(path.join(pdir, 'device'), '0x1eb8\n');
    write(path.join(pdir, 'class'), '0x030200\n');
    write(path.join(pdir, 'uevent'), `DRIVER=nvidia\nPCI_SLOT_NAME=${p.name}\n`);
    fs.symlinkSync(`../../devices/${p.devpath}`, path.join(sys, 'class/mdev_bus', p.name));
    p.types.forEach((t, i) => {
      const tdir = path.join(pdir, 'mdev_supported_types', t.id);
      mkdir(path.join(tdir, 'devices'));
      write(path.join(tdir, 'available_instances'), `${maxInstances - t.used}\n`, 0o444);
      write(path.join(tdir, 'device_api'), 'vfio-pci\n', 0o444);
      write(path.join(tdir, 'name'), `${t.label}\n`, 0o444);
      write(
        path.join(tdir, 'description'),
        `num_heads=4, frl_config=60, framebuffer=${1024 * 2 ** i}M, max_resolution=5120x2880, max_instance=${maxInstances}\n`,
        0o444,
      );
      write(path.join(tdir, 'create'), '', 0o200);
    });
  }

  for (const d of active) {
    const pdir = path.join(sys, 'devices', d.plan.devpath);
    const ddir = path.join(pdir, d.uuid);
    mkdir(ddir);
    // from sys/devices/<devpath>/<uuid> back up to sys/
    const up = '../'.repeat(d.plan.devpath.split('/').length + 2);
    fs.symlinkSync(`../mdev_supported_types/${d.type}`, path.join(ddir, 'mdev_type'));
    fs.symlinkSync(`${up}bus/mdev`, path.join(ddir, 'subsystem'));
    fs.symlinkSync(`${up}bus/mdev/drivers/vfio_mdev`, path.join(ddir, 'driver'));
    write(path.join(ddir, 'remove'), '', 0o200);
    write(path.join(ddir, 'uevent'), `MDEV_TYPE=${d.type}\nDRIVER=vfio_mdev\n`);
    fs.symlinkSync(
      `../../../${d.uuid}`,
      path.join(pdir, 'mdev_supported_types', d.type, 'devices', d.uuid),
    );
    fs.symlinkSync(
      `../../../devices/${d.plan.devpath}/${d.uuid}`,
      path.join(sys, 'bus/mdev/devices', d.uuid),
    );
  }

  // mdevctl writes definitions as serde_json's pretty printer does, which is
  // JSON.stringify with two spaces, and no newline at the end.
  const defined: (TreeDevice & { start: 'auto' | 'manual' })[] = [];
  const define = (parent: string, uuid: string, type: string, start: 'auto' | 'manual'): void => {
    mkdir(path.join(etc, parent));
    write(
      path.join(etc, parent, uuid),
      JSON.stringify({ mdev_type: type, start, attrs: [] }, null, 2),
    );
    defined.push({ uuid, parent, type, start });
  };
  const nBoth = Math.min(Math.round(overlap * Math.min(nActive, nDefined)), nActive, nDefined);
  for (let i = 0; i < nBoth; i++) {
    const d = active[i]!;
    define(d.parent, d.uuid, d.type, 'auto');
  }
  for (let i = nBoth; i < nDefined; i++) {
    const p = parents[i % nParents]!;
    const t = p.types[Math.floor(i / nParents) % nTypes]!;
    define(p.name, newUuid(), t.id, 'manual');
  }

  // Broken states take the last devices and definitions, so the first ones
  // (the ones `overlap` pairs) stay intact.
  const brokenOut: Partial<Record<BrokenKind, string[]>> = {};
  const take = <T>(kind: BrokenKind, from: readonly T[], n: number): T[] => {
    if (n > from.length) throw new RangeError(`broken ${kind}: only ${from.length} to break`);
    return from.slice(from.length - n);
  };
  const activeLeft = [...active];
  const breakActive = (kind: BrokenKind, n: number): TreeDevice[] => {
    const picked = take(kind, activeLeft, n);
    activeLeft.length -= n;
    return picked;
  };
  const devDir = (d: TreeDevice): string => {
    const p = parents.find((x) => x.name === d.parent)!;
    return path.join(sys, 'devices', p.devpath, d.uuid);
  };
  for (const kind of BROKEN_KINDS) {
    const n = broken[kind] ?? 0;
    if (n === 0) continue;
    const names: string[] = [];
    switch (kind) {
      case 'dangling-bus-link':
        for (const d of breakActive(kind, n)) {
          fs.rmSync(devDir(d), { recursive: true });
          names.push(d.uuid);
        }
        break;
      case 'missing-type-link':
        for (const d of breakActive(kind, n)) {
          fs.unlinkSync(path.join(devDir(d), 'mdev_type'));
          names.push(d.uuid);
        }
        break;
      case 'dangling-type-link':
        for (const d of breakActive(kind, n)) {
          const link = path.join(devDir(d), 'mdev_type');
          fs.unlinkSync(link);
          fs.symlinkSync('../mdev_supported_types/nvidia-0', link);
          names.push(d.uuid);
        }
        break;
      case 'malformed-definition':
        for (const d of take(kind, defined, n)) {
          write(path.join(etc, d.parent, d.uuid), '{ "mdev_type": ');
          names.push(d.uuid);
        }
        break;
      case 'non-uuid-bus-entry':
        for (let i = 0; i < n; i++) {
          const p = parents[i % nParents]!;
          const name = `not-a-uuid-${i}`;
          fs.symlinkSync(`../../../devices/${p.devpath}`, path.join(sys, 'bus/mdev/devices', name));
          names.push(name);
        }
        break;
      case 'non-uuid-definition':
        for (let i = 0; i < n; i++) {
          const p = parents[i % nParents]!;
          const name = `not-a-uuid-${i}`;
          mkdir(path.join(etc, p.name));
          write(
            path.join(etc, p.name, name),
            JSON.stringify({ mdev_type: p.types[0]!.id, start: 'manual', attrs: [] }, null, 2),
          );
          names.push(name);
        }
        break;
    }
    brokenOut[kind] = names;
  }

  const first = parents[0]!;
  return {
    dir: root,
    parents: parents.map((p) => p.name),
    types: first.types.map((t) => t.id),
    active: active.map(({ uuid, parent, type }) => ({ uuid, parent, type })),
    defined,
    broken: brokenOut,
    free: { parent: first.name, type: first.types[0]!.id, uuid: newUuid() },
  };
}

const USAGE =
  'usage: gen-tree DIR [--parents P] [--types T] [--active N] [--defined D] [--overlap F] [--seed S] [--broken KIND=N]...\n' +
  `broken states: ${BROKEN_KINDS.join(', ')}\n`;

/** The command line: prints a one-line JSON summary. */
function main(argv: string[]): number {
  const opts: Record<string, number> = {};
  const broken: Partial<Record<BrokenKind, number>> = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--(parents|types|active|defined|overlap|seed|broken)(?:=(.*))?$/.exec(a);
    if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      return 0;
    } else if (m) {
      const value = m[2] ?? argv[++i];
      if (value === undefined) {
        process.stderr.write(`gen-tree: --${m[1]} needs a value\n${USAGE}`);
        return 2;
      }
      if (m[1] === 'broken') {
        const [kind, n] = value.split('=');
        broken[kind as BrokenKind] = Number(n ?? '1');
      } else opts[m[1]!] = Number(value);
    } else if (a.startsWith('-')) {
      process.stderr.write(`gen-tree: unknown option ${a}\n${USAGE}`);
      return 2;
    } else rest.push(a);
  }
  if (rest.length !== 1) {
    process.stderr.write(USAGE);
    return 2;
  }
  try {
    const t = generateTree(rest[0]!, { ...opts, broken });
    process.stdout.write(
      `${JSON.stringify({
        dir: t.dir,
        parents: t.parents.length,
        types: t.types.length,
        active: t.active.length,
        defined: t.defined.length,
        broken: t.broken,
        free: t.free,
      })}\n`,
    );
    return 0;
  } catch (e) {
    process.stderr.write(`gen-tree: ${(e as Error).message}\n`);
    return 2;
  }
}

// Run as a command only when this very file is the program (not when a
// benchmark bundle that includes it is).
const self = fileURLToPath(import.meta.url);
if (self.endsWith('gen-tree.ts') && process.argv[1] === self) {
  process.exitCode = main(process.argv.slice(2));
}
