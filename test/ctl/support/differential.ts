import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MDEVCTL_NS } from '../../support/capabilities.js';

/**
 * Differential runs through ../shared/tools/mdevctl-ns: a sequence of
 * mdevctl command lines runs once with /usr/bin/mdevctl and once with a
 * candidate, each in its own copy of a tree mounted as /sys and
 * /etc/mdevctl.d, and every step's exit status and stdout plus the final
 * trees are returned for comparison.
 */

export const REPO = new URL('../../../', import.meta.url).pathname;
export const CANDIDATE = `${REPO}bin/mdevctl`;

export interface StepResult {
  readonly args: readonly string[];
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface SideResult {
  readonly steps: StepResult[];
  /** relative path -> file content or "-> link target" or "<dir>" */
  readonly tree: Map<string, string>;
}

const shellQuote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C' };
  for (const k of Object.keys(env))
    if (k.startsWith('MDEVCTL_') || k.startsWith('RUST_')) delete env[k];
  return env;
}

/** Every file, link and directory under `root`, with contents. */
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

/** Run `steps` with `program` in a copy of `tree` (made under `work`). */
export function runSide(
  tree: string,
  work: string,
  program: string[],
  steps: readonly (readonly string[])[],
  stdinFor?: (i: number) => string | undefined,
): SideResult {
  fs.cpSync(tree, work, { recursive: true, verbatimSymlinks: true });
  // One namespace for the whole sequence: a script runs each step and
  // records its status, stdout and stderr in files under the tree's input/.
  const out = path.join(work, 'out');
  fs.mkdirSync(out);
  const lines = ['#!/bin/sh', 'cd /'];
  steps.forEach((args, i) => {
    const input = stdinFor?.(i);
    let redirect = '</dev/null';
    if (input !== undefined) {
      fs.writeFileSync(path.join(out, `${i}.in`), input);
      redirect = `<${shellQuote(path.join(out, `${i}.in`))}`;
    }
    const cmd = [...program, ...args].map(shellQuote).join(' ');
    lines.push(
      `${cmd} ${redirect} >${shellQuote(path.join(out, `${i}.out`))} 2>${shellQuote(path.join(out, `${i}.err`))}; echo $? >${shellQuote(path.join(out, `${i}.rc`))}`,
    );
  });
  fs.writeFileSync(path.join(work, 'run.sh'), lines.join('\n') + '\n', { mode: 0o755 });
  const r = spawnSync(MDEVCTL_NS, [work, '--', path.join(work, 'run.sh')], {
    encoding: 'utf8',
    env: cleanEnv(),
  });
  if (r.status !== 0) throw new Error(`mdevctl-ns failed: ${r.stderr}`);
  const results = steps.map((args, i) => ({
    args,
    status: Number(fs.readFileSync(path.join(out, `${i}.rc`), 'utf8')),
    stdout: fs.readFileSync(path.join(out, `${i}.out`), 'utf8'),
    stderr: fs.readFileSync(path.join(out, `${i}.err`), 'utf8'),
  }));
  fs.rmSync(out, { recursive: true });
  fs.rmSync(path.join(work, 'run.sh'));
  const treeMap = new Map<string, string>();
  for (const [k, v] of readTree(work)) treeMap.set(k, v);
  return { steps: results, tree: treeMap };
}

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
  const relFromBus = path.relative(bus, devDir);
  fs.symlinkSync(relFromBus, path.join(bus, uuid));
}

/** Store a definition the way mdevctl writes it. */
export function addDefinition(tree: string, parent: string, uuid: string, config: unknown): void {
  const dir = path.join(tree, 'etc/mdevctl.d', parent);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, uuid), JSON.stringify(config, null, 2));
}
