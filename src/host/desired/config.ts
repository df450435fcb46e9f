/**
 * The host configuration: a YAML file with one or more named
 * configurations (as NVIDIA's vgpu-device-manager has `vgpu-configs`), each
 * a policy and a list of entries — a parent selector and what the selected
 * parents should carry.
 *
 *     version: 1
 *     configs:
 *       default:
 *         policy: pack                    # or spread
 *         entries:
 *           - parents: { vendorDevice: "10de:13f2" }
 *             devices:
 *               - { type: nvidia-12, count: fill, start: auto }
 *           - parents: 0000:00:02.0       # an address or a glob
 *             devices:
 *               - { type: i915-GVTg_V5_4, count: 2, aggregation: 2 }
 *           - parents: all
 *             devices:
 *               - { select: { minFramebuffer: 2G }, count: 4 }
 *           - parents: { driver: vfio_ap }
 *             matrix:
 *               - { adapters: "5", domains: "0x47" }
 *
 * Parsed with the `yaml` library (positions kept), validated with zod;
 * every error names the file, line, column and field. Names that end up in
 * sysfs or config paths (types, attributes, parents) are checked to stay
 * inside their directory here, before anything reads the host.
 */
import { LineCounter, isMap, isPair, isScalar, isSeq, parseDocument, type Node } from 'yaml';
import { z } from 'zod';
import { readFileLimited, sizeWords } from '../../common/read-limited.js';
import { checkAttributeName, checkComponent, controlCharacterProblem } from '../paths.js';
import { DesiredError } from './errors.js';

export const CONFIG_VERSION = 1;
export const DEFAULT_CONFIG_NAME = 'default';

// ---------------------------------------------------------------- the model

export type Policy = 'pack' | 'spread';
export type StartPolicy = 'auto' | 'manual';

/** Which parents an entry applies to: every given field must match. */
export interface ParentSelector {
  readonly all: boolean;
  /** Parent names (sysfs names, e.g. PCI addresses) or globs over them. */
  readonly address?: readonly string[];
  /** Driver bound to the parent (its `driver` link), or the types' prefix. */
  readonly driver?: string;
  /** PCI vendor and device id, lower-case hex. */
  readonly vendorDevice?: { readonly vendor: number; readonly device: number };
  readonly numaNode?: number;
}

/** A type left to placement: any type of the parent that satisfies these. */
export interface TypeConstraints {
  /** At least this much framebuffer (MB), as the vendor's description states it. */
  readonly minFramebufferMb?: number;
  readonly deviceApi?: string;
  /** Glob over the type id or its `name`. */
  readonly name?: string;
}

export interface DeviceRequest {
  /** Where it is in the file ("configs.default.entries[0].devices[1]"). */
  readonly field: string;
  readonly type?: string;
  readonly select?: TypeConstraints;
  /** A number of devices, or as many as fit. */
  readonly count: number | 'fill';
  /** `entry`: the count is the total over the selected parents; `parent`: per parent. */
  readonly per: 'entry' | 'parent';
  /** Instances' worth each device aggregates (mdev/aggregation/value). */
  readonly aggregation?: number;
  /** Attributes in the order they are written (mdevctl's attrs). */
  readonly attrs: readonly { readonly name: string; readonly value: string }[];
  readonly start: StartPolicy;
  /** Placement constraints beyond the entry's selector. */
  readonly numaNode?: number;
  readonly parents?: readonly string[];
  /** Devices sharing a label go to different parents. */
  readonly antiAffinity?: string;
}

export interface MatrixRequest {
  readonly field: string;
  readonly adapters: readonly number[];
  readonly domains: readonly number[];
  readonly controlDomains: readonly number[];
  readonly start: StartPolicy;
}

export interface ConfigEntry {
  readonly field: string;
  readonly name?: string;
  readonly parents: ParentSelector;
  readonly devices: readonly DeviceRequest[];
  readonly matrix: readonly MatrixRequest[];
}

export interface HostConfig {
  readonly name: string;
  readonly policy: Policy;
  readonly entries: readonly ConfigEntry[];
}

/** A parsed file: its configurations and a way back to positions in it. */
export interface ConfigFile {
  readonly file: string;
  readonly configs: ReadonlyMap<string, HostConfig>;
  /** Line and column (1-based) of a field ("configs.default.entries[0].devices[1].type"). */
  locate(field: string): { line: number; column: number } | undefined;
}

// ---------------------------------------------------------------- the schema

const safe =
  (what: string, check: (v: string) => unknown) =>
  (v: string, ctx: z.RefinementCtx): void => {
    try {
      check(v);
    } catch {
      ctx.addIssue({
        code: 'custom',
        message: `${JSON.stringify(v)} is not a valid ${what} (no "/", NUL, "." or ".." allowed)`,
      });
    }
  };

const component = (what: string) =>
  z
    .string()
    .min(1)
    .max(255)
    .superRefine(safe(what, (v) => checkComponent(v, what)));

/** A parent name or a glob over names (*, ?, [...]): one path component either way. */
const parentPattern = component('parent name or glob');

const configName = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    'a configuration name is letters, digits, ".", "_" and "-" (at most 64)',
  );

const attrName = z.string().min(1).max(255).superRefine(safe('attribute name', checkAttributeName));

/** "2G", "512M", "2048MB", or a number of MB. */
const sizeMb = z.union([z.number().int().min(0), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+)\s*([KMGT]?)i?B?\s*$/i.exec(v);
  if (m === null) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a size such as 2G or 512M` });
    return z.NEVER;
  }
  const scale = { '': 1, K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024 }[m[2]!.toUpperCase()]!;
  return Math.ceil(Number(m[1]) * scale);
});

/** AP ids: "5,0x47,10-12" (decimal or 0x hex, inclusive ranges) or a list of numbers. */
const apIds = z
  .union([z.array(z.number().int().min(0).max(255)), z.string(), z.number().int()])
  .transform((v, ctx) => {
    if (Array.isArray(v)) return [...new Set(v)].sort((a, b) => a - b);
    const ids = parseApIds(String(v));
    if (typeof ids === 'string') {
      ctx.addIssue({ code: 'custom', message: ids });
      return z.NEVER;
    }
    return ids;
  });

export function parseApIds(text: string): number[] | string {
  const out = new Set<number>();
  const num = (s: string): number | undefined => {
    const t = s.trim();
    if (/^0x[0-9a-f]+$/i.test(t)) return parseInt(t.slice(2), 16);
    if (/^\d+$/.test(t)) return parseInt(t, 10);
    return undefined;
  };
  if (text.trim() === '') return [];
  for (const part of text.split(',')) {
    const [a, b, extra] = part.split('-');
    const lo = num(a ?? '');
    const hi = b === undefined ? lo : num(b);
    if (lo === undefined || hi === undefined || extra !== undefined || hi < lo) {
      return `"${part.trim()}" is not an id or range (e.g. 5, 0x47, 10-12)`;
    }
    if (hi > 255) return `${hi} is above 255, the largest AP id`;
    for (let i = lo; i <= hi; i++) out.add(i);
  }
  return [...out].sort((x, y) => x - y);
}

const start = z.enum(['auto', 'manual']).default('auto');

const selectorObject = z.strictObject({
  all: z.literal(true).optional(),
  address: z.union([parentPattern, z.array(parentPattern).min(1)]).optional(),
  driver: component('driver name').optional(),
  vendorDevice: z
    .string()
    .regex(/^(0x)?[0-9a-fA-F]{4}:(0x)?[0-9a-fA-F]{4}$/, 'vendor:device in hex, e.g. 10de:13f2')
    .optional(),
  numaNode: z.number().int().min(-1).optional(),
});

/** `parents:` may be "all", an address or glob, or a selector object. */
const selector = z.preprocess(
  (v) => (v === 'all' ? { all: true } : typeof v === 'string' ? { address: v } : v),
  selectorObject.refine((s) => Object.keys(s).length > 0, {
    message: 'an empty selector: say `all`, or give address, driver, vendorDevice or numaNode',
  }),
);

/** Attributes as an ordered map, or as mdevctl's list of one-key maps. */
const attrs = z
  .union([
    z.array(z.record(attrName, z.union([z.string(), z.number()]))),
    z.record(attrName, z.union([z.string(), z.number()])),
  ])
  .transform((v, ctx) => {
    const list = Array.isArray(v) ? v : [v];
    const out: { name: string; value: string }[] = [];
    for (const item of list) {
      const pairs = Object.entries(item);
      if (Array.isArray(v) && pairs.length !== 1) {
        ctx.addIssue({ code: 'custom', message: 'each item of an attribute list has one key' });
        return z.NEVER;
      }
      for (const [name, value] of pairs) {
        // The host library's rule for values (a definition holding one is invalid).
        const problem = controlCharacterProblem(String(value), 'an attribute value');
        if (problem !== undefined) {
          ctx.addIssue({ code: 'custom', message: problem });
          return z.NEVER;
        }
        out.push({ name, value: String(value) });
      }
    }
    return out;
  });

const deviceRequest = z
  .strictObject({
    type: component('type name').optional(),
    select: z
      .strictObject({
        minFramebuffer: sizeMb.optional(),
        deviceApi: z.string().min(1).optional(),
        name: z.string().min(1).optional(),
      })
      .optional(),
    count: z.union([z.number().int().min(0).max(1_000_000), z.literal('fill')]),
    per: z.enum(['entry', 'parent']).default('entry'),
    aggregation: z.number().int().min(1).max(1024).optional(),
    attrs: attrs.optional(),
    start,
    numaNode: z.number().int().min(-1).optional(),
    parents: z.array(parentPattern).min(1).optional(),
    antiAffinity: z.string().min(1).max(64).optional(),
  })
  .superRefine((r, ctx) => {
    if ((r.type === undefined) === (r.select === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: 'give either `type` or `select` (a type left to placement), not both or neither',
      });
    }
  });

const matrixRequest = z.strictObject({
  adapters: apIds,
  domains: apIds,
  controlDomains: apIds.default([]),
  start,
});

const entry = z
  .strictObject({
    name: z.string().min(1).max(64).optional(),
    parents: selector,
    devices: z.array(deviceRequest).optional(),
    matrix: z.array(matrixRequest).optional(),
  })
  .refine((e) => e.devices !== undefined || e.matrix !== undefined, {
    message: 'an entry says what its parents carry: `devices` or `matrix`',
  });

const hostConfig = z.strictObject({
  policy: z.enum(['pack', 'spread']).default('pack'),
  entries: z.array(entry),
});

const fileSchema = z.strictObject({
  version: z.literal(CONFIG_VERSION),
  configs: z.record(configName, hostConfig),
});

// ---------------------------------------------------------------- parsing

type Segment = string | number;

export function fieldName(path: readonly Segment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}

function parseField(field: string): Segment[] {
  const out: Segment[] = [];
  for (const m of field.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) {
    out.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  }
  return out;
}

/** The node at `path`, or the deepest one on the way; `key` points at a map key instead. */
function nodeAt(root: Node | null, path: readonly Segment[], key?: string): Node | undefined {
  let node: Node | undefined = root ?? undefined;
  let found = node;
  const steps = key === undefined ? path : [...path, key];
  for (let i = 0; i < steps.length && node !== undefined; i++) {
    const seg = steps[i]!;
    const last = i === steps.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === seg);
      if (pair === undefined) return found;
      if (last && key !== undefined) return (pair.key as Node) ?? found;
      node = (pair.value as Node | null) ?? (pair.key as Node);
    } else if (isSeq(node) && typeof seg === 'number') {
      node = (node.items[seg] as Node | undefined) ?? undefined;
    } else return found;
    if (node !== undefined) found = node;
  }
  return found;
}

/**
 * Read and validate a configuration file. Throws DesiredError
 * (`config-unreadable`, `config-invalid`) naming file, line, column and field.
 */
/** A host configuration is a few kilobytes; /dev/zero or an endless pipe must not be read to the end. */
export const MAX_CONFIG_BYTES = 1 << 20;

export function loadConfigFile(file: string): ConfigFile {
  let text: string;
  try {
    text = readFileLimited(file, MAX_CONFIG_BYTES);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'EFBIG' ? `larger than ${sizeWords(MAX_CONFIG_BYTES)}` : code;
    throw new DesiredError('config-unreadable', `${file}: cannot read the file (${why})`, {
      file,
    });
  }
  return parseConfigText(text, file);
}

/**
 * An unknown key as an error may name it: a field name is a word; anything
 * else is not quoted, as the file may be no configuration at all
 * (`-f /etc/shadow` reads as one long key holding the hash).
 */
const isFieldWord = (key: string): boolean => /^[A-Za-z_][A-Za-z0-9_-]{0,31}$/.test(key);
function fieldWords(key: string): string {
  return isFieldWord(key) ? JSON.stringify(key) : '(a key that is no field name)';
}

export function parseConfigText(text: string, file: string): ConfigFile {
  if (text.includes('\0')) {
    throw new DesiredError('config-invalid', `${file}: the file contains a NUL byte`, { file });
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const pos = (offset: number): { line: number; column: number } => {
    const p = lines.linePos(offset);
    return { line: p.line, column: p.col };
  };
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const { line, column } = pos(e.pos[0]);
    const what = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new DesiredError('config-invalid', `${file}:${line}:${column}: not valid YAML: ${what}`, {
      file,
      line,
      column,
    });
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch {
    // Only aliases fail here. yaml's message quotes the alias, and the file
    // may be no configuration at all: say what, never what it holds.
    throw new DesiredError(
      'config-invalid',
      `${file}: not usable YAML: an alias that cannot be resolved (no anchor before it, or aliases that expand too far)`,
      { file },
    );
  }
  const locate = (field: string, key?: string): { line: number; column: number } | undefined => {
    const node = nodeAt(doc.contents, parseField(field), key);
    return node?.range ? pos(node.range[0]) : undefined;
  };
  const parsed = fileSchema.safeParse(value ?? {});
  if (!parsed.success) {
    const issues = parsed.error.issues;
    const described = issues.slice(0, 8).map((issue) => {
      let path = issue.path.filter((p): p is Segment => typeof p !== 'symbol');
      let key: string | undefined;
      let message = issue.message;
      if (issue.code === 'unrecognized_keys') {
        key = issue.keys[0];
        message = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map(fieldWords).join(', ')}`;
      } else if (issue.code === 'invalid_type' && issue.input === undefined) {
        message = `missing (${issue.message.replace(/^Invalid input: /, '')})`;
      } else if (issue.code === 'invalid_key') {
        // A record key: point at the key itself.
        key = String(path.at(-1));
        path = path.slice(0, -1);
        message = issue.issues[0]?.message ?? message;
      }
      const field = fieldName(key === undefined || !isFieldWord(key) ? path : [...path, key]);
      const at = locate(fieldName(path), key) ?? { line: 1, column: 1 };
      return { field, message, ...at };
    });
    const first = described[0]!;
    const text = described
      .map((d) => `${file}:${d.line}:${d.column}: ${d.field || '(top level)'}: ${d.message}`)
      .join('\n');
    const more = issues.length > described.length ? `\n(${issues.length - 8} more)` : '';
    throw new DesiredError('config-invalid', text + more, {
      file,
      line: first.line,
      column: first.column,
      field: first.field,
    });
  }
  const configs = new Map<string, HostConfig>();
  for (const [name, c] of Object.entries(parsed.data.configs)) {
    const base = `configs.${name}`;
    configs.set(name, {
      name,
      policy: c.policy,
      entries: c.entries.map((e, i) => toEntry(e, `${base}.entries[${i}]`)),
    });
  }
  return { file, configs, locate: (field) => locate(field) };
}

type RawEntry = z.output<typeof entry>;

function toEntry(e: RawEntry, field: string): ConfigEntry {
  const s = e.parents;
  const vd = s.vendorDevice?.toLowerCase().replaceAll('0x', '').split(':');
  const selector: ParentSelector = {
    all: s.all === true,
    ...(s.address !== undefined && {
      address: typeof s.address === 'string' ? [s.address] : s.address,
    }),
    ...(s.driver !== undefined && { driver: s.driver }),
    ...(vd !== undefined && {
      vendorDevice: { vendor: parseInt(vd[0]!, 16), device: parseInt(vd[1]!, 16) },
    }),
    ...(s.numaNode !== undefined && { numaNode: s.numaNode }),
  };
  return {
    field,
    ...(e.name !== undefined && { name: e.name }),
    parents: selector,
    devices: (e.devices ?? []).map((d, j): DeviceRequest => {
      const select: TypeConstraints | undefined =
        d.select === undefined
          ? undefined
          : {
              ...(d.select.minFramebuffer !== undefined && {
                minFramebufferMb: d.select.minFramebuffer,
              }),
              ...(d.select.deviceApi !== undefined && { deviceApi: d.select.deviceApi }),
              ...(d.select.name !== undefined && { name: d.select.name }),
            };
      return {
        field: `${field}.devices[${j}]`,
        ...(d.type !== undefined && { type: d.type }),
        ...(select !== undefined && { select }),
        count: d.count,
        per: d.per,
        ...(d.aggregation !== undefined && { aggregation: d.aggregation }),
        attrs: d.attrs ?? [],
        start: d.start,
        ...(d.numaNode !== undefined && { numaNode: d.numaNode }),
        ...(d.parents !== undefined && { parents: d.parents }),
        ...(d.antiAffinity !== undefined && { antiAffinity: d.antiAffinity }),
      };
    }),
    matrix: (e.matrix ?? []).map((m, j) => ({
      field: `${field}.matrix[${j}]`,
      adapters: m.adapters,
      domains: m.domains,
      controlDomains: m.controlDomains,
      start: m.start,
    })),
  };
}

/** The configuration `name` of a file, or `config-unknown` listing the ones there are. */
export function selectConfig(file: ConfigFile, name: string = DEFAULT_CONFIG_NAME): HostConfig {
  const c = file.configs.get(name);
  if (c !== undefined) return c;
  const names = [...file.configs.keys()];
  throw new DesiredError(
    'config-unknown',
    `${file.file}: no configuration named ${JSON.stringify(name)} (the file has ${names.length === 0 ? 'none' : names.join(', ')})`,
    { file: file.file, config: name },
  );
}

const globs = new Map<string, RegExp>();

/** fnmatch-style glob (*, ?, [...]) over one name. */
export function globMatch(pattern: string, name: string): boolean {
  if (!/[*?[]/.test(pattern)) return pattern === name;
  let compiled = globs.get(pattern);
  if (compiled === undefined) {
    compiled = globRegExp(pattern);
    if (globs.size > 1024) globs.clear();
    globs.set(pattern, compiled);
  }
  return compiled.test(name);
}

function globRegExp(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end === -1) re += '\\[';
      else {
        let body = pattern.slice(i + 1, end).replace(/[\\^]/g, '\\$&');
        if (body.startsWith('!')) body = '^' + body.slice(1);
        re += `[${body}]`;
        i = end;
      }
    } else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(re + '$');
}
