/**
 * Differential runs: the same mdevctl command lines run with a reference
 * mdevctl and with a candidate (bin/mdevctl), each in its own identical copy
 * of a host tree that is /sys, /etc/mdevctl.d and /usr/lib/mdevctl/scripts.d
 * inside a private mount namespace (scripts/mdevctl-ns), and everything the
 * two did is compared: exit codes, stdout (bytes, and structure when it is
 * JSON), whether stderr is empty, and every file, link and directory of the
 * resulting trees.
 *
 * Each difference has a short, stable signature ("stdout-text",
 * "step 2: exit-code", "tree etc/mdevctl.d/P/U") so lists of expected
 * differences (test/ctl/known-differences/) can name them exactly.
 */
import { spawn } from 'node:child_process';
import { isDeepStrictEqual } from 'node:util';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MDEVCTL_NS } from '../../support/capabilities.js';
import { buildTree, type CompareSpec, type Scenario, type StepSpec } from './scenarios.js';

export const REPO = new URL('../../../', import.meta.url).pathname;
/** The drop-in under test. */
export const CANDIDATE = `${REPO}bin/mdevctl`;

/** A program the steps run with: a reference mdevctl or a candidate. */
export interface Program {
  readonly label: string;
  readonly argv: readonly string[];
}

export interface StepRun {
  readonly args: readonly string[];
  /** exit status (128+N for signal N, 101 for a Rust panic), or 'timeout' */
  readonly status: number | 'timeout';
  readonly stdout: string;
  readonly stderr: string;
}

export type TreeEntry =
  | { readonly kind: 'file'; readonly content: string }
  | { readonly kind: 'link'; readonly target: string }
  | { readonly kind: 'dir' }
  | { readonly kind: 'other' };

export interface SideRun {
  readonly program: Program;
  readonly steps: readonly StepRun[];
  /** relative path -> entry, for sys/, etc/mdevctl.d/ and usr/lib/mdevctl/scripts.d/ */
  readonly tree: ReadonlyMap<string, TreeEntry>;
}

/** One command line of a run; stdin is fed through a real pipe. */
export interface StepInput {
  readonly args: readonly string[];
  readonly stdinFile?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Where scratch trees go: a tmpfs when there is one (tree building dominates the time). */
export const SCRATCH_BASE = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();

const COMPARED_ROOTS = ['sys', 'etc/mdevctl.d', 'usr/lib/mdevctl/scripts.d'];
const STEP_TIMEOUT_S = 30;

const shellQuote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** The environment of both sides: no MDEVCTL_* , RUST_* or COLUMNS from the caller, C locale. */
function sideEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', LANG: 'C' };
  for (const k of Object.keys(env)) {
    if (k.startsWith('MDEVCTL_') || k.startsWith('RUST_') || k === 'COLUMNS') delete env[k];
  }
  return env;
}

/** Every file, link and directory under the compared roots of `root`, with contents. */
export function snapshotTree(root: string): Map<string, TreeEntry> {
  const out = new Map<string, TreeEntry>();
  const walk = (rel: string, top: boolean): void => {
    const abs = path.join(root, rel);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(abs);
    } catch {
      return;
    }
    if (st.isSymbolicLink()) out.set(rel, { kind: 'link', target: fs.readlinkSync(abs) });
    else if (st.isDirectory()) {
      if (!top) out.set(rel, { kind: 'dir' });
      for (const n of fs.readdirSync(abs).sort()) walk(`${rel}/${n}`, false);
    } else if (st.isFile()) out.set(rel, { kind: 'file', content: fs.readFileSync(abs, 'latin1') });
    else out.set(rel, { kind: 'other' });
  };
  for (const r of COMPARED_ROOTS) walk(r, true);
  return out;
}

/** Every file, link and directory under `root` (all of it), as text: content, "-> target" or "<dir>". */
export function readTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    const abs = path.join(root, rel);
    const st = fs.lstatSync(abs);
    if (st.isSymbolicLink()) out.set(rel, `-> ${fs.readlinkSync(abs)}`);
    else if (st.isDirectory()) {
      if (rel !== '') out.set(rel, '<dir>');
      for (const n of fs.readdirSync(abs).sort()) walk(path.join(rel, n));
    } else out.set(rel, fs.readFileSync(abs, 'latin1'));
  };
  walk('');
  return out;
}

/**
 * Run `steps` with `program` in `tree` (used as it is, and changed by the
 * commands), all in one mount namespace; `work` receives the driver script
 * and the outputs. Resolves when every step has run.
 */
export function runInTree(
  tree: string,
  work: string,
  program: Program,
  steps: readonly StepInput[],
): Promise<SideRun> {
  const out = path.join(work, 'out');
  fs.mkdirSync(out, { recursive: true });
  const lines = ['#!/bin/sh', 'cd /'];
  steps.forEach((step, i) => {
    const vars = Object.entries(step.env ?? {}).flatMap(([k, v]) =>
      v === undefined ? [] : [`${k}=${v}`],
    );
    const cmd = [...(vars.length > 0 ? ['env', ...vars] : []), ...program.argv, ...step.args]
      .map(shellQuote)
      .join(' ');
    const o = (ext: string): string => shellQuote(path.join(out, `${i}.${ext}`));
    const run = `timeout -k 2 ${STEP_TIMEOUT_S} ${cmd} >${o('out')} 2>${o('err')}`;
    lines.push(
      step.stdinFile === undefined
        ? `${run} </dev/null; echo $? >${o('rc')}`
        : `cat ${shellQuote(step.stdinFile)} | ${run}; echo $? >${o('rc')}`,
    );
  });
  const driver = path.join(work, 'run.sh');
  fs.writeFileSync(driver, `${lines.join('\n')}\n`, { mode: 0o755 });
  return new Promise<SideRun>((resolve, reject) => {
    const child = spawn(MDEVCTL_NS, ['--as-is', tree, '--', driver], {
      env: sideEnv(),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) {
        reject(new Error(`mdevctl-ns for ${program.label} exited ${code}: ${stderr}`));
        return;
      }
      try {
        const results = steps.map((step, i): StepRun => {
          const rc = Number(fs.readFileSync(path.join(out, `${i}.rc`), 'utf8'));
          return {
            args: step.args,
            status: rc === 124 || rc === 137 ? 'timeout' : rc,
            stdout: fs.readFileSync(path.join(out, `${i}.out`), 'utf8'),
            stderr: fs.readFileSync(path.join(out, `${i}.err`), 'utf8'),
          };
        });
        resolve({ program, steps: results, tree: snapshotTree(tree) });
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

// ---- scenarios ----------------------------------------------------------

/** The input directory's files for each step: jsonfile-N.json and stdin-N. */
function writeInputs(scenario: Scenario, input: string): StepInput[] {
  fs.mkdirSync(input, { recursive: true });
  return scenario.steps.map((step: StepSpec, i): StepInput => {
    const jsonfile = path.join(input, `jsonfile-${i}.json`);
    if (step.jsonfile !== undefined) {
      const j = step.jsonfile;
      fs.writeFileSync(jsonfile, typeof j === 'string' ? j : JSON.stringify(j, null, 2));
    }
    let stdinFile: string | undefined;
    if (step.stdin !== undefined) {
      stdinFile = path.join(input, `stdin-${i}`);
      fs.writeFileSync(stdinFile, step.stdin);
    }
    const args = step.args.map((a) =>
      a.replaceAll('@JSONFILE@', jsonfile).replaceAll('@INPUT@', input),
    );
    return {
      args,
      ...(stdinFile === undefined ? {} : { stdinFile }),
      ...(step.env === undefined ? {} : { env: step.env }),
    };
  });
}

/**
 * Run `scenario` once per program, each in its own fresh copy of the
 * scenario's tree under `scratch`, all sides at once. The input directory
 * is shared, so paths in arguments and messages are the same on every side.
 */
export async function runScenario(
  scenario: Scenario,
  scratch: string,
  programs: readonly Program[],
): Promise<SideRun[]> {
  const input = path.join(scratch, 'input');
  const steps = writeInputs(scenario, input);
  return Promise.all(
    programs.map((program, i) => {
      const side = path.join(scratch, `side-${i}`);
      const tree = path.join(side, 'tree');
      buildTree(tree, scenario.tree, input);
      return runInTree(tree, side, program, steps);
    }),
  );
}

/** Run `fn` over `items`, `jobs` at a time, keeping the order of results. */
export async function pool<T, R>(
  items: readonly T[],
  jobs: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, items.length) }, worker));
  return results;
}

// ---- comparing ----------------------------------------------------------

export interface Difference {
  /** stable, short: what differs, e.g. "step 2: stdout-json" or "tree etc/mdevctl.d/P/U" */
  readonly signature: string;
  /** for people: both sides' outputs */
  readonly detail: string;
}

const UUID_RE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/** Replaces UUIDs a scenario does not mention by numbered placeholders, in order of appearance. */
function uuidPlaceholders(known: ReadonlySet<string>): (s: string) => string {
  const seen = new Map<string, string>();
  return (s) =>
    s.replace(UUID_RE, (u) => {
      if (known.has(u)) return u;
      let p = seen.get(u);
      if (p === undefined) {
        const v4 = u[14] === '4' && '89ab'.includes(u[19]!);
        p = `<${v4 ? '' : 'non-v4-'}UUID#${seen.size + 1}>`;
        seen.set(u, p);
      }
      return p;
    });
}

interface Normalised {
  readonly stdout: string[];
  readonly stderr: string[];
  readonly tree: Map<string, TreeEntry>;
}

/** One side's outputs with invented UUIDs replaced (stdout, then the tree, then stderr). */
function normalise(side: SideRun, known: ReadonlySet<string> | undefined): Normalised {
  const n = known === undefined ? (s: string) => s : uuidPlaceholders(known);
  const stdout = side.steps.map((s) => n(s.stdout));
  const tree = new Map<string, TreeEntry>();
  for (const [k, e] of side.tree) {
    tree.set(
      n(k),
      e.kind === 'file'
        ? { kind: 'file', content: n(e.content) }
        : e.kind === 'link'
          ? { kind: 'link', target: n(e.target) }
          : e,
    );
  }
  const stderr = side.steps.map((s) => n(s.stderr));
  return { stdout, stderr, tree };
}

function parseJsonOutput(s: string): unknown {
  const t = s.trim();
  if (t === '' || !'[{'.includes(t[0]!)) return undefined;
  try {
    return JSON.parse(t);
  } catch {
    return undefined;
  }
}

/** JSON.parse, but key order does not matter to isDeepStrictEqual anyway. */
function tryJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

export function block(label: string, s: string): string {
  if (s === '') return `  ${label}: (empty)\n`;
  const lines = s.split('\n');
  const trailing = s.endsWith('\n');
  if (trailing) lines.pop();
  return `${lines.map((l) => `  ${label}| ${l}`).join('\n')}\n${trailing ? '' : '  (no newline at end)\n'}`;
}

function describeEntry(e: TreeEntry | undefined): string {
  if (e === undefined) return 'absent';
  if (e.kind === 'file') return `file ${JSON.stringify(e.content.slice(0, 60))}`;
  if (e.kind === 'link') return `link -> ${e.target}`;
  return e.kind;
}

const statusText = (s: number | 'timeout'): string => String(s);

/** Log lines with their time replaced: `[2025-01-02T03:04:05Z WARN  ...` -> `[<time> WARN  ...`. */
export function withoutLogTimes(s: string): string {
  return s.replace(/^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ /gm, '[<time> ');
}

/**
 * What clap's help says apart from its prose: the usage lines, the section
 * headings, each argument's flags and value names, each command's name, in
 * order. Help texts are our own words; this skeleton is the interface.
 */
export function helpSkeleton(text: string): string {
  const out: string[] = [];
  let section = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('Usage: ')) out.push(line);
    else if (/^[A-Z][A-Za-z ]*:$/.test(line)) {
      section = line;
      out.push(line);
    } else if (section === 'Commands:') {
      const m = /^ {2}(\S+)/.exec(line);
      if (m !== null) out.push(`  ${m[1]}`);
    } else {
      const m =
        /^ {2}((?:-\S, |    )?--\S+(?: <[^>]+>)?|<[^>]+>|\[[^\]]+\](?:\.\.\.)?)(?: {2,}| *$)/.exec(
          line,
        );
      if (m !== null) out.push(`  ${m[1]}`);
    }
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

/**
 * Everything in which `cand` differs from `ref` on `scenario`. With
 * `scenario.randomUuid`, UUIDs the scenario does not mention are compared
 * by shape and order of appearance only.
 */
export function compareSides(
  scenario: Pick<Scenario, 'steps' | 'compare' | 'randomUuid' | 'knownUuids'>,
  ref: SideRun,
  cand: SideRun,
): Difference[] {
  const known = scenario.randomUuid ? scenario.knownUuids : undefined;
  const r = normalise(ref, known);
  const c = normalise(cand, known);
  const diffs: Difference[] = [];
  const multi = scenario.steps.length > 1;
  ref.steps.forEach((rs, i) => {
    const cs = cand.steps[i]!;
    const cmp: CompareSpec = { ...scenario.compare, ...scenario.steps[i]?.compare };
    const pre = multi ? `step ${i + 1}: ` : '';
    const head = `${pre}mdevctl ${rs.args.join(' ')}\n  exit: ref ${statusText(rs.status)}, cand ${statusText(cs.status)}\n`;
    const add = (what: string, detail = ''): void =>
      void diffs.push({ signature: `${pre}${what}`, detail: `${head}${detail}` });
    if (cs.status === 'timeout' || rs.status === 'timeout') add('timeout');
    else if ((cmp.exit ?? 'exact') !== 'ignore') {
      if ((rs.status === 0) !== (cs.status === 0))
        add('exit-status', block('ref stderr', r.stderr[i]!) + block('cand stderr', c.stderr[i]!));
      else if ((cmp.exit ?? 'exact') === 'exact' && rs.status !== cs.status) add('exit-code');
    }
    const rOut = r.stdout[i]!;
    const cOut = c.stdout[i]!;
    const outDetail = block('ref', rOut) + block('cand', cOut);
    if ((cmp.stdout ?? 'exact') === 'exact') {
      const rj = parseJsonOutput(rOut);
      if (rj !== undefined && !isDeepStrictEqual(rj, parseJsonOutput(cOut)))
        add('stdout-json', outDetail);
      else if (rOut !== cOut) add('stdout-text', outDetail);
    } else if (cmp.stdout === 'help') {
      const rh = helpSkeleton(rOut);
      const ch = helpSkeleton(cOut);
      if (rh !== ch) add('stdout-help', block('ref', rh) + block('cand', ch));
    } else if (cmp.stdout === 'presence' && (rOut === '') !== (cOut === '')) {
      add('stdout-presence', outDetail);
    }
    const rErr = r.stderr[i]!;
    const cErr = c.stderr[i]!;
    const errDetail = block('ref', rErr) + block('cand', cErr);
    if ((cmp.stderr ?? 'presence') === 'presence' && (rErr === '') !== (cErr === '')) {
      add('stderr-presence', errDetail);
    } else if (cmp.stderr === 'exact' && withoutLogTimes(rErr) !== withoutLogTimes(cErr)) {
      add('stderr-text', errDetail);
    } else if (cmp.stderr === 'help' && helpSkeleton(rErr) !== helpSkeleton(cErr)) {
      add('stderr-help', block('ref', helpSkeleton(rErr)) + block('cand', helpSkeleton(cErr)));
    }
  });
  if (scenario.compare.tree !== false) {
    const paths = [...new Set([...r.tree.keys(), ...c.tree.keys()])].sort();
    for (const p of paths) {
      const re = r.tree.get(p);
      const ce = c.tree.get(p);
      if (isDeepStrictEqual(re, ce)) continue;
      if (re?.kind === 'file' && ce?.kind === 'file') {
        const rj = tryJson(re.content);
        const same = rj !== undefined && isDeepStrictEqual(rj, tryJson(ce.content));
        diffs.push({
          signature: `tree${same ? '-text' : ''} ${p}`,
          detail: `${p}\n${block('ref', re.content)}${block('cand', ce.content)}`,
        });
      } else {
        diffs.push({
          signature: `tree ${p}`,
          detail: `${p}: ref ${describeEntry(re)}, cand ${describeEntry(ce)}\n`,
        });
      }
    }
  }
  return diffs;
}

// ---- building trees by hand (test/ctl/mdevctl-snapshot.test.ts) ---------

/**
 * Add an active mdev to a static tree as the kernel lays it out: the device
 * directory under its parent, its mdev_type link, a remove file, the type's
 * devices/ link and the /sys/bus/mdev/devices link.
 */
export function addActiveDevice(tree: string, parent: string, type: string, uuid: string): void {
  const classLink = path.join(tree, 'sys/class/mdev_bus', parent);
  const parentDir = path.resolve(path.dirname(classLink), fs.readlinkSync(classLink));
  const devDir = path.join(parentDir, uuid);
  fs.mkdirSync(devDir);
  fs.symlinkSync(`../mdev_supported_types/${type}`, path.join(devDir, 'mdev_type'));
  fs.writeFileSync(path.join(devDir, 'remove'), '');
  const typeDevices = path.join(parentDir, 'mdev_supported_types', type, 'devices');
  fs.mkdirSync(typeDevices, { recursive: true });
  fs.symlinkSync(`../../../${uuid}`, path.join(typeDevices, uuid));
  const bus = path.join(tree, 'sys/bus/mdev/devices');
  fs.mkdirSync(bus, { recursive: true });
  fs.symlinkSync(path.relative(bus, devDir), path.join(bus, uuid));
}

/** Store a definition the way mdevctl writes it. */
export function addDefinition(tree: string, parent: string, uuid: string, config: unknown): void {
  const dir = path.join(tree, 'etc/mdevctl.d', parent);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, uuid), JSON.stringify(config, null, 2));
}
