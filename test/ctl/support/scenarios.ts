/**
 * Differential scenarios (test/ctl/scenarios/*.json): what a scenario file
 * may say, how it is loaded, and how its tree is built.
 *
 * A scenario is inputs only — a static host (parents, types, active
 * devices, definitions, callout scripts, deliberately broken states) and
 * one or more mdevctl command lines. Expected results are never written
 * down: whatever the reference mdevctl does on the scenario is the expected
 * result (test/ctl/support/differential.ts runs and compares).
 *
 * The format, key by key (unknown keys are errors, so a typo fails loudly):
 *
 *   description   what the scenario checks (required)
 *   base          a fixture in scenarios/fixtures/NAME.json; its tree arrays
 *                 come first, the scenario's are appended
 *   tree          parents, active, defined, extra, omit (see TreeSpec below)
 *   args | steps  one command line, or [{args, stdin?, jsonfile?, compare?}, ...]
 *                 run in order in the same tree
 *   jsonfile      written to the step's input file; `@JSONFILE@` in args is
 *                 its path (the same path on both sides), `@INPUT@` the
 *                 input directory; an object is written pretty-printed, a
 *                 string verbatim
 *   stdin         fed through a real pipe (mdevctl cannot read a socket)
 *   env           a step's MDEVCTL_LOG or COLUMNS (nothing else of the
 *                 caller's environment reaches either side)
 *   random_uuid   the command invents UUIDs: any UUID the scenario does not
 *                 mention is replaced by <UUID#n> (<non-v4-UUID#n> when not
 *                 an RFC 4122 v4 UUID) on each side, in order of appearance
 *   compare       {exit: exact|status|ignore, stdout: exact|help|presence|ignore,
 *                  stderr: exact|help|presence|ignore, tree: true|false}; "help"
 *                 compares the skeleton of clap's help (usage lines, headings,
 *                 option and command names), not its prose, which is ours;
 *                 stderr "exact" compares the text, log timestamps aside
 *   refs          the reference releases the scenario is meaningful for
 *                 (default: every one); e.g. callouts under
 *                 /usr/lib/mdevctl/scripts.d exist only from 1.3 on
 *   upstream      ids of upstream mdevctl's own test cases this scenario
 *                 covers (test/ctl/upstream-cases.json)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import type { MdevctlVersion } from '../../support/capabilities.js';

export const SCENARIO_DIR = new URL('../scenarios/', import.meta.url).pathname;

const relPath = z
  .string()
  .min(1)
  .refine((p) => !path.isAbsolute(p) && !p.split('/').includes('..'), 'must stay inside the tree');
const name = z
  .string()
  .min(1)
  .refine((s) => !s.includes('/'), 'must not contain /');

/** A sysfs attribute: a string gets sysfs's trailing newline, {raw} is written verbatim, null means absent. */
const attrValue = z.union([z.string(), z.strictObject({ raw: z.string() }), z.null()]);

const parentSpec = z.strictObject({
  name,
  /** below sys/devices; default pci0000:00/NAME for PCI names, else virtual/mdev-parents/NAME */
  devpath: relPath.optional(),
  /** sys/class/mdev_bus/NAME link; default true */
  class_link: z.boolean().optional(),
  /** false: no mdev_supported_types directory at all */
  supported_types_dir: z.boolean().optional(),
  files: z.record(z.string(), attrValue).optional(),
  /** type id -> attributes (defaults: available_instances "1", device_api "vfio-pci", empty create) */
  types: z.record(z.string(), z.record(z.string(), attrValue)).optional(),
});

const activeSpec = z.strictObject({
  uuid: name,
  parent: name,
  type: z.string().optional(),
  files: z.record(z.string(), attrValue).optional(),
  /** each part of the kernel's layout can be left out to build a broken state */
  type_link: z.boolean().optional(),
  remove: z.boolean().optional(),
  bus_link: z.boolean().optional(),
  type_devices_link: z.boolean().optional(),
});

const definedSpec = z
  .strictObject({
    parent: name,
    uuid: name.optional(),
    /** a file name other than a UUID */
    file: name.optional(),
    /** written as mdevctl writes it (JSON.stringify(v, null, 2)) */
    config: z.unknown().optional(),
    /** written verbatim */
    raw: z.string().optional(),
  })
  .refine((d) => (d.uuid ?? d.file) !== undefined, 'needs "uuid" or "file"')
  .refine((d) => (d.config === undefined) !== (d.raw === undefined), 'needs one of config, raw');

const extraSpec = z.strictObject({
  path: relPath.refine(
    (p) => /^(sys|etc\/mdevctl\.d|usr\/lib\/mdevctl\/scripts\.d|input)(\/|$)/.test(p),
    'must be under sys/, etc/mdevctl.d/, usr/lib/mdevctl/scripts.d/ or input/',
  ),
  content: z.string().optional(),
  dir: z.boolean().optional(),
  symlink: z.string().optional(),
  /** octal, e.g. "755" */
  mode: z
    .string()
    .regex(/^[0-7]{3,4}$/)
    .optional(),
});

const treeSpec = z.strictObject({
  parents: z.array(parentSpec).optional(),
  active: z.array(activeSpec).optional(),
  defined: z.array(definedSpec).optional(),
  extra: z.array(extraSpec).optional(),
  /** paths removed after building (e.g. etc/mdevctl.d/scripts.d) */
  omit: z
    .array(relPath.refine((p) => /^(sys|etc\/mdevctl\.d|usr\/lib\/mdevctl)\//.test(p)))
    .optional(),
});

const compareSpec = z.strictObject({
  exit: z.enum(['exact', 'status', 'ignore']).optional(),
  stdout: z.enum(['exact', 'help', 'presence', 'ignore']).optional(),
  stderr: z.enum(['exact', 'help', 'presence', 'ignore']).optional(),
  tree: z.boolean().optional(),
});

const stepSpec = z.strictObject({
  args: z.array(z.string()),
  stdin: z.string().optional(),
  /** environment variables of this step: mdevctl's log filter, the terminal width */
  env: z
    .strictObject({ MDEVCTL_LOG: z.string().optional(), COLUMNS: z.string().optional() })
    .optional(),
  jsonfile: z
    .union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())])
    .optional(),
  compare: compareSpec.omit({ tree: true }).optional(),
});

const versions = z.enum(['1.2.0', '1.4.0']);

const scenarioSpec = z
  .strictObject({
    description: z.string().min(1),
    base: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+$/)
      .optional(),
    tree: treeSpec.optional(),
    args: stepSpec.shape.args.optional(),
    stdin: stepSpec.shape.stdin,
    jsonfile: stepSpec.shape.jsonfile,
    steps: z.array(stepSpec).min(1).optional(),
    random_uuid: z.boolean().optional(),
    compare: compareSpec.optional(),
    refs: z.array(versions).min(1).optional(),
    upstream: z.array(z.string().min(1)).min(1).optional(),
  })
  .refine(
    (s) => (s.steps === undefined) !== (s.args === undefined),
    'needs either "args" or "steps"',
  )
  .refine(
    (s) => s.steps === undefined || (s.stdin === undefined && s.jsonfile === undefined),
    'with "steps", stdin and jsonfile belong to the steps',
  );

export type TreeSpec = z.infer<typeof treeSpec>;
export type StepSpec = z.infer<typeof stepSpec>;
export type CompareSpec = z.infer<typeof compareSpec>;

export interface Scenario {
  readonly name: string;
  readonly file: string;
  readonly description: string;
  readonly tree: TreeSpec;
  readonly steps: readonly StepSpec[];
  readonly randomUuid: boolean;
  readonly compare: CompareSpec;
  readonly refs: readonly MdevctlVersion[];
  readonly upstream: readonly string[];
  /** every lower-case UUID the scenario (and its fixture) mentions */
  readonly knownUuids: ReadonlySet<string>;
}

const TREE_KEYS = ['parents', 'active', 'defined', 'extra', 'omit'] as const;
const UUID_RE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown, file: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const why = r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`);
  throw new Error(`${file}: ${why.join('; ')}`);
}

/** Load and check one scenario file (its fixture merged in). */
export function loadScenario(file: string): Scenario {
  const spec = parse(scenarioSpec, readJson(file), file);
  let tree: TreeSpec = spec.tree ?? {};
  if (spec.base !== undefined) {
    const fixtureFile = path.join(path.dirname(file), 'fixtures', `${spec.base}.json`);
    const fixture = parse(treeSpec, readJson(fixtureFile), fixtureFile);
    const merged: Record<string, unknown[]> = {};
    for (const k of TREE_KEYS) {
      const both = [...(fixture[k] ?? []), ...(tree[k] ?? [])];
      if (both.length > 0) merged[k] = both;
    }
    tree = merged as TreeSpec;
  }
  const parents = new Set((tree.parents ?? []).map((p) => p.name));
  if (parents.size !== (tree.parents ?? []).length)
    throw new Error(`${file}: a parent is declared twice`);
  for (const a of tree.active ?? []) {
    if (!parents.has(a.parent))
      throw new Error(`${file}: active ${a.uuid}: undeclared parent ${a.parent}`);
  }
  const steps: StepSpec[] = spec.steps ?? [
    {
      args: spec.args ?? [],
      ...(spec.stdin !== undefined ? { stdin: spec.stdin } : {}),
      ...(spec.jsonfile !== undefined ? { jsonfile: spec.jsonfile } : {}),
    },
  ];
  const mentioned = JSON.stringify({ spec, tree }).toLowerCase().match(UUID_RE) ?? [];
  return {
    name: path.basename(file, '.json'),
    file,
    description: spec.description,
    tree,
    steps,
    randomUuid: spec.random_uuid ?? false,
    compare: spec.compare ?? {},
    refs: spec.refs ?? ['1.2.0', '1.4.0'],
    upstream: spec.upstream ?? [],
    knownUuids: new Set(mentioned),
  };
}

/** Every scenario of `dir`, in name order. */
export function loadScenarios(dir = SCENARIO_DIR): Scenario[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => loadScenario(path.join(dir, f)));
}

// ---- building a scenario's tree ---------------------------------------

function writeAttr(file: string, v: z.infer<typeof attrValue>): void {
  if (v === null) return;
  fs.writeFileSync(file, typeof v === 'string' ? `${v}\n` : v.raw);
}

function defaultDevpath(parent: string): string {
  return /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]$/i.test(parent)
    ? `pci0000:00/${parent}`
    : `virtual/mdev-parents/${parent}`;
}

/**
 * Build `tree` under `root` (sys/, etc/mdevctl.d/, usr/lib/mdevctl/scripts.d/)
 * as the kernel and mdevctl's packages lay it out; `input` receives extra
 * files under input/.
 */
export function buildTree(root: string, tree: TreeSpec, input: string): void {
  const sys = path.join(root, 'sys');
  const etc = path.join(root, 'etc/mdevctl.d');
  const classDir = path.join(sys, 'class/mdev_bus');
  const busDir = path.join(sys, 'bus/mdev/devices');
  const mkdir = (d: string): void => void fs.mkdirSync(d, { recursive: true });
  for (const d of [
    path.join(sys, 'devices'),
    classDir,
    busDir,
    path.join(etc, 'scripts.d/callouts'),
    path.join(etc, 'scripts.d/notifiers'),
    path.join(root, 'usr/lib/mdevctl/scripts.d/callouts'),
    path.join(root, 'usr/lib/mdevctl/scripts.d/notifiers'),
  ]) {
    mkdir(d);
  }

  const parentDirs = new Map<string, string>();
  for (const p of tree.parents ?? []) {
    const pdir = path.join(sys, 'devices', p.devpath ?? defaultDevpath(p.name));
    mkdir(pdir);
    parentDirs.set(p.name, pdir);
    if (p.class_link !== false) {
      fs.symlinkSync(path.relative(classDir, pdir), path.join(classDir, p.name));
    }
    for (const [f, v] of Object.entries(p.files ?? {})) writeAttr(path.join(pdir, f), v);
    if (p.supported_types_dir === false) continue;
    mkdir(path.join(pdir, 'mdev_supported_types'));
    for (const [type, attrs] of Object.entries(p.types ?? {})) {
      const tdir = path.join(pdir, 'mdev_supported_types', type);
      mkdir(path.join(tdir, 'devices'));
      const all = {
        available_instances: '1',
        device_api: 'vfio-pci',
        create: { raw: '' },
        ...attrs,
      };
      for (const [f, v] of Object.entries(all)) writeAttr(path.join(tdir, f), v);
    }
  }

  for (const a of tree.active ?? []) {
    const pdir = parentDirs.get(a.parent)!;
    const ddir = path.join(pdir, a.uuid);
    mkdir(ddir);
    if (a.type !== undefined && a.type_link !== false) {
      fs.symlinkSync(`../mdev_supported_types/${a.type}`, path.join(ddir, 'mdev_type'));
    }
    if (a.remove !== false) fs.writeFileSync(path.join(ddir, 'remove'), '');
    for (const [f, v] of Object.entries(a.files ?? {})) writeAttr(path.join(ddir, f), v);
    const typeDevices = path.join(pdir, 'mdev_supported_types', a.type ?? '', 'devices');
    if (a.type !== undefined && a.type_devices_link !== false && fs.existsSync(typeDevices)) {
      fs.symlinkSync(`../../../${a.uuid}`, path.join(typeDevices, a.uuid));
    }
    if (a.bus_link !== false) {
      fs.symlinkSync(path.relative(busDir, ddir), path.join(busDir, a.uuid));
    }
  }

  for (const d of tree.defined ?? []) {
    mkdir(path.join(etc, d.parent));
    const content = d.raw ?? JSON.stringify(d.config, null, 2);
    fs.writeFileSync(path.join(etc, d.parent, (d.file ?? d.uuid)!), content);
  }

  for (const e of tree.extra ?? []) {
    const target = e.path.startsWith('input')
      ? path.join(input, e.path.slice('input'.length))
      : path.join(root, e.path);
    mkdir(path.dirname(target));
    if (e.dir === true) mkdir(target);
    else if (e.symlink !== undefined) fs.symlinkSync(e.symlink, target);
    else fs.writeFileSync(target, e.content ?? '');
    if (e.mode !== undefined && e.symlink === undefined) fs.chmodSync(target, parseInt(e.mode, 8));
  }

  for (const o of tree.omit ?? []) fs.rmSync(path.join(root, o), { recursive: true, force: true });
}
