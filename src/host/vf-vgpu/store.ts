import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { isUuid } from '../../common/uuid.js';
import { TEMP_PREFIX, writeFileAtomic } from '../config-store.js';
import { readSmallFile } from '../devices/draft.js';
import type { Environment } from '../environment.js';
import { VfVgpuError } from './errors.js';
import { isPciAddress } from './sysfs.js';

/**
 * Persistent VF vGPU definitions. mdevctl's store cannot hold them (its
 * files name an mdev parent and an mdev type, and mdevctl would try to
 * start them), so they live beside it, in mdevkit's own directory:
 *
 *     <configDir>/../mdevkit/vf-vgpus/<GPU address>/<uuid>
 *     (/etc/mdevkit/vf-vgpus/0000:41:00.0/3f2c...; <root>/etc/... with --root)
 *     {
 *       "vgpu_type": 1153,
 *       "vgpu_type_name": "NVIDIA L40S-12Q",
 *       "vf": 3,
 *       "start": "auto",
 *       "vgpu_params": "frame_rate_limiter=0",
 *       "owner": "user:root"
 *     }
 *
 * One file per vGPU, named by its UUID: the vGPU's identity, since a VF has
 * none of its own and the same VF path is reused by one vGPU after
 * another. The UUID is what the VM's QEMU gets as `-uuid` and what every
 * command and API takes. A definition is pinned to one VF (`vf`, the index
 * of `virtfn<vf>`), chosen when it is made: a VM's domain XML names the
 * VF's PCI address, which must stay the same across reboots. The GPU
 * address is the directory, as mdevctl's parent is; `vgpu_type_name` keeps
 * the name the type had (sysfs names a type only while it is creatable).
 * JSON, two-space indented, written atomically (temp file, fsync, rename,
 * fsync of the directory); unknown keys are ignored, files whose names are
 * not UUIDs and temp files (".#...") skipped.
 */

export type VfStartMode = 'auto' | 'manual';

export interface VfVgpuDefinition {
  readonly uuid: string;
  readonly gpu: string;
  readonly vf: number;
  readonly typeId: number;
  readonly typeName: string | undefined;
  readonly start: VfStartMode;
  /** vgpu_params to write after the type ('' for none). */
  readonly params: string;
  /** Who made it: "user:NAME", "api:CLIENT", "config:NAME". */
  readonly owner: string;
}

/** <configDir>/../mdevkit/vf-vgpus. */
export function vfStoreDir(env: Pick<Environment, 'configDir'>): string {
  return nodePath.join(nodePath.dirname(env.configDir), 'mdevkit', 'vf-vgpus');
}

function definitionPath(env: Pick<Environment, 'configDir'>, gpu: string, uuid: string): string {
  if (!isPciAddress(gpu))
    throw new VfVgpuError('invalid-argument', `invalid GPU address ${JSON.stringify(gpu)}`);
  if (!isUuid(uuid))
    throw new VfVgpuError('invalid-argument', `invalid UUID ${JSON.stringify(uuid)}`);
  return nodePath.join(vfStoreDir(env), gpu, uuid.toLowerCase());
}

/** The file's JSON, in the documented key order. */
export function formatDefinition(d: VfVgpuDefinition): string {
  const json: Record<string, unknown> = { vgpu_type: d.typeId };
  if (d.typeName !== undefined) json['vgpu_type_name'] = d.typeName;
  json['vf'] = d.vf;
  json['start'] = d.start;
  if (d.params !== '') json['vgpu_params'] = d.params;
  json['owner'] = d.owner;
  return JSON.stringify(json, null, 2) + '\n';
}

export function parseDefinition(
  text: string,
  gpu: string,
  uuid: string,
  path: string,
): VfVgpuDefinition {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new VfVgpuError('invalid-config', `${path}: not JSON: ${(err as Error).message}`, {
      context: { uuid, gpu },
    });
  }
  const o = (
    json !== null && typeof json === 'object' && !Array.isArray(json) ? json : {}
  ) as Record<string, unknown>;
  const bad = (what: string): never => {
    throw new VfVgpuError('invalid-config', `${path}: ${what}`, { context: { uuid, gpu } });
  };
  const type = o['vgpu_type'];
  if (typeof type !== 'number' || !Number.isSafeInteger(type) || type <= 0) {
    bad('"vgpu_type" must be a positive type id');
  }
  const vf = o['vf'];
  if (typeof vf !== 'number' || !Number.isSafeInteger(vf) || vf < 0 || vf > 255) {
    bad('"vf" must be a VF index (0..255)');
  }
  const name = o['vgpu_type_name'];
  if (name !== undefined && typeof name !== 'string') bad('"vgpu_type_name" must be a string');
  const params = o['vgpu_params'] ?? '';
  if (typeof params !== 'string') bad('"vgpu_params" must be a string');
  const owner = o['owner'];
  if (typeof owner !== 'string' || owner === '') bad('"owner" must name who made it');
  return {
    uuid,
    gpu,
    vf: vf as number,
    typeId: type as number,
    typeName: name as string | undefined,
    start: o['start'] === 'auto' ? 'auto' : 'manual',
    params: params as string,
    owner: owner as string,
  };
}

export interface ListHooks {
  /** A definition file that cannot be read: skipped and reported here (else it throws). */
  readonly invalid?: (path: string, error: VfVgpuError) => void;
}

function dirEntries(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * Definitions already parsed, by path, with the file's identity when it was
 * read. Writes replace a file by rename (a new inode) and removals unlink
 * it, so an unchanged (device, inode, size, mtime) is the same content:
 * a listing pays one stat per definition instead of open, read, close and a
 * parse — what an agent polling every second, and listings of hundreds of
 * vGPUs, are made of.
 */
const parsed = new Map<string, { readonly key: string; readonly def: VfVgpuDefinition }>();

function readDefinitionFile(path: string, gpu: string, uuid: string): VfVgpuDefinition {
  let key: string;
  try {
    const st = fs.statSync(path);
    key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    key = '';
  }
  const hit = parsed.get(path);
  if (hit !== undefined && key !== '' && hit.key === key) return hit.def;
  const def = parseDefinition(readSmallFile(path), gpu, uuid, path);
  if (key !== '') parsed.set(path, { key, def });
  return def;
}

/** Every definition (of one GPU), sorted by GPU, VF, UUID. */
export function listDefinitions(
  env: Pick<Environment, 'configDir'>,
  filter: { readonly gpu?: string } = {},
  hooks: ListHooks = {},
): VfVgpuDefinition[] {
  const root = vfStoreDir(env);
  const gpus = filter.gpu !== undefined ? [filter.gpu] : dirEntries(root).filter(isPciAddress);
  const out: VfVgpuDefinition[] = [];
  for (const gpu of gpus) {
    for (const name of dirEntries(nodePath.join(root, gpu))) {
      if (name.startsWith(TEMP_PREFIX) || !isUuid(name)) continue;
      const path = nodePath.join(root, gpu, name);
      try {
        out.push(readDefinitionFile(path, gpu, name.toLowerCase()));
      } catch (err) {
        if (err instanceof VfVgpuError && hooks.invalid !== undefined) hooks.invalid(path, err);
        else throw err;
      }
    }
  }
  return out.sort((a, b) =>
    a.gpu !== b.gpu
      ? a.gpu < b.gpu
        ? -1
        : 1
      : a.vf !== b.vf
        ? a.vf - b.vf
        : a.uuid < b.uuid
          ? -1
          : 1,
  );
}

/** The definition of `uuid`, wherever it is; undefined when there is none. */
export function findDefinition(
  env: Pick<Environment, 'configDir'>,
  uuid: string,
): VfVgpuDefinition | undefined {
  const u = uuid.toLowerCase();
  const root = vfStoreDir(env);
  for (const gpu of dirEntries(root).filter(isPciAddress)) {
    const path = nodePath.join(root, gpu, u);
    let text: string;
    try {
      text = fs.readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    return parseDefinition(text, gpu, u, path);
  }
  return undefined;
}

/** Store a definition atomically (the GPU's directory made durably when new). */
export function writeDefinition(env: Pick<Environment, 'configDir'>, d: VfVgpuDefinition): string {
  const path = definitionPath(env, d.gpu, d.uuid);
  fs.mkdirSync(nodePath.dirname(path), { recursive: true });
  writeFileAtomic(path, formatDefinition(d));
  return path;
}

export function removeDefinition(env: Pick<Environment, 'configDir'>, d: VfVgpuDefinition): void {
  const path = definitionPath(env, d.gpu, d.uuid);
  fs.rmSync(path, { force: true });
  parsed.delete(path);
}
