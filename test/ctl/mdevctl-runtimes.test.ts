/**
 * bin/mdevctl is dist/mdevctl: where Bun runs, the mdevctl commands compiled
 * into one executable; elsewhere Node running dist/mdevctl.cjs
 * (scripts/compile-mdevctl.mjs). Both come from the same sources and must
 * be indistinguishable: same exit status, same bytes on stdout and stderr,
 * same files written, same callout calls. These command lines go where the
 * two runtimes' node:fs and node:child_process are known to differ —
 * callouts fed on stdin (spawnSync's input), --jsonfile /dev/stdin, error
 * texts (JSON syntax errors, errno chains), exit statuses with output still
 * to write, output larger than a pipe's buffer, a reader that goes away —
 * each run once by the compiled program and once by Node, on twin trees.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { requires } from '../support/capabilities.js';
import { runMdevkit } from '../support/cli.js';
import { tmpDir } from '../support/tmp.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const COMPILED = path.join(ROOT, 'dist/mdevctl');
const BUNDLE = path.join(ROOT, 'dist/mdevctl.cjs');

/** Is dist/mdevctl a compiled program (an ELF file), not the Node launcher? */
function isCompiled(): boolean {
  try {
    const fd = fs.openSync(COMPILED, 'r');
    const head = Buffer.alloc(4);
    fs.readSync(fd, head, 0, 4, 0);
    fs.closeSync(fd);
    return head.toString('latin1') === '\x7fELF';
  } catch {
    return false;
  }
}

const U1 = '6a0f5c1e-0001-4a4b-8c8d-000000000001';
const U2 = '6a0f5c1e-0002-4a4b-8c8d-000000000002';
const U3 = '6a0f5c1e-0003-4a4b-8c8d-000000000003';
const NOT_UUIDS = ['zz-not-a-uuid', 'aa-not-a-uuid', 'mm-not-a-uuid', 'bb-not-a-uuid'];

/** A directory's names in the order readdir(3) gives them (fs.readdirSync sorts in Node). */
function directoryOrder(dir: string): string[] {
  const d = fs.opendirSync(dir);
  const names: string[] = [];
  for (let e = d.readSync(); e !== null; e = d.readSync()) names.push(e.name);
  d.closeSync();
  return names;
}

// Owns mtty devices (exit 2 for the others, as the protocol says), records
// its arguments and what it got on stdin, and says something on stderr.
const CALLOUT = `#!/bin/sh
case "$*" in *"-t mtty-"*) ;; *) exit 2 ;; esac
input=$(cat)
printf '%s | %s\\n' "$*" "$input" >> "$RUNTIMES_LOG"
echo "callout: $4 $6" >&2
exit 0
`;
const NOTIFIER = `#!/bin/sh
printf 'notify %s | %s\\n' "$*" "$(cat)" >> "$RUNTIMES_LOG"
`;

function makeTree(dir: string): void {
  const snap = runMdevkit(['lab', 'snapshot', dir]);
  assert.equal(snap.status, 0, snap.stderr);
  for (const d of ['etc/mdevctl.d/scripts.d', 'usr/lib/mdevctl/scripts.d']) {
    fs.mkdirSync(path.join(dir, d, 'callouts'), { recursive: true });
    fs.mkdirSync(path.join(dir, d, 'notifiers'), { recursive: true });
  }
  fs.writeFileSync(path.join(dir, 'etc/mdevctl.d/scripts.d/callouts/log'), CALLOUT, {
    mode: 0o755,
  });
  fs.writeFileSync(path.join(dir, 'usr/lib/mdevctl/scripts.d/notifiers/log'), NOTIFIER, {
    mode: 0o755,
  });
  // Bus entries that are not UUIDs, made out of name order: `list` warns of
  // each in the order the directory gives them, which Node reads entry by
  // entry and Bun in one readdirSync (src/port/fs-port.ts).
  for (const name of NOT_UUIDS) fs.mkdirSync(path.join(dir, 'sys/bus/mdev/devices', name));
  // Enough definitions that a listing is larger than a pipe's 64 KiB.
  const many = path.join(dir, 'etc/mdevctl.d/mdpy');
  fs.mkdirSync(many, { recursive: true });
  for (let i = 0; i < 1500; i++) {
    const uuid = `7b000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
    const attrs = i % 3 === 0 ? [{ note: `definition ${i}` }] : [];
    fs.writeFileSync(
      path.join(many, uuid),
      JSON.stringify({ mdev_type: 'mdpy-vga', start: i % 2 ? 'auto' : 'manual', attrs }, null, 2),
    );
  }
}

interface Step {
  readonly args: readonly string[];
  readonly input?: string;
  /** Run through `sh -c` with this pipeline after the program (e.g. "| head -c 100"). */
  readonly pipe?: string;
  /** Run under the name lsmdev. */
  readonly lsmdev?: boolean;
}

const STEPS: readonly Step[] = [
  { args: ['--version'] },
  { args: ['types'] },
  { args: ['types', '--dumpjson'] },
  { args: ['list'] },
  { args: ['define', '-u', U1, '-p', 'mtty', '-t', 'mtty-1', '--auto'] },
  {
    args: ['define', '-u', U2, '-p', 'mtty', '--jsonfile', '/dev/stdin'],
    input: '{"mdev_type": "mtty-2", "start": "manual", "attrs": [{"a": "1"}]}',
  },
  {
    args: ['define', '-u', U3, '-p', 'mtty', '--jsonfile=/dev/stdin'],
    input: '{"mdev_type": "mtty-2",\n  "start": "manual" "attrs": []}',
  },
  { args: ['define', '-u', U3, '-p', 'mtty', '--jsonfile', '/dev/stdin'], input: '' },
  { args: ['modify', '-u', U1, '--addattr=foo', '--value=bar'] },
  { args: ['list', '-d', '-p', 'mtty'] },
  { args: ['list', '-d', '--dumpjson', '-u', U2] },
  { args: ['list', '-d', '--dumpjson'] },
  { args: ['list', '-d', '-v'], pipe: '| head -c 300' },
  { args: ['list', '-d'], lsmdev: true },
  { args: ['start', '-u', U2] },
  { args: ['start', '-u', '6a0f5c1e-0009-4a4b-8c8d-000000000009'] },
  { args: ['undefine', '-u', U2] },
  { args: ['stop', '-u', U1] },
  { args: ['frobnicate'] },
  { args: ['list', '--bogus'] },
];

interface Outcome {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

// WARN lines carry the time they were written.
const untimed = (s: string): string =>
  s.replace(/^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ /gm, '[<time> ');

function run(tree: string, compiled: boolean, step: Step, links: string): Outcome {
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LC_ALL: 'C' };
  env['MDEVCTL_ENV_ROOT'] = tree;
  env['RUNTIMES_LOG'] = path.join(tree, 'callouts.log');
  let argv: string[];
  if (compiled) argv = [step.lsmdev ? path.join(links, 'lsmdev') : COMPILED];
  else argv = [process.execPath, BUNDLE, ...(step.lsmdev ? ['--as-lsmdev'] : [])];
  argv.push(...step.args);
  const r =
    step.pipe === undefined
      ? spawnSync(argv[0]!, argv.slice(1), { env, input: step.input ?? '', encoding: 'utf8' })
      : spawnSync(
          'bash',
          // --norc: bash reads ~/.bashrc when its stdin looks like a remote shell's socket.
          ['--norc', '-c', `"$@" ${step.pipe}; exit \${PIPESTATUS[0]}`, 'runtimes', ...argv],
          { env, input: step.input ?? '', encoding: 'utf8' },
        );
  return { status: r.status, stdout: r.stdout, stderr: untimed(r.stderr) };
}

/** Every definition and the callout log, as text. */
function written(tree: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    const abs = path.join(tree, rel);
    if (fs.statSync(abs).isDirectory()) {
      for (const n of fs.readdirSync(abs).sort()) walk(path.join(rel, n));
    } else out.set(rel, fs.readFileSync(abs, 'utf8'));
  };
  walk('etc/mdevctl.d');
  walk('callouts.log');
  return out;
}

test('the compiled bin/mdevctl and Node running dist/mdevctl.cjs behave the same', (t) => {
  if (
    !requires(
      t,
      { 'compiled dist/mdevctl': isCompiled() },
      '`npm run build` compiles it where Bun runs (the bun devDependency)',
    )
  )
    return;
  const work = tmpDir('mdevkit-runtimes-');
  const trees = { compiled: path.join(work, 'compiled'), node: path.join(work, 'node') };
  makeTree(trees.compiled);
  makeTree(trees.node);
  fs.symlinkSync(COMPILED, path.join(work, 'lsmdev'));

  for (const step of STEPS) {
    const what = `mdevctl ${step.args.join(' ')}${step.lsmdev ? ' (as lsmdev)' : ''}`;
    const compiled = run(trees.compiled, true, step, work);
    const node = run(trees.node, false, step, work);
    assert.deepEqual(compiled, node, what);
  }
  assert.deepEqual(written(trees.compiled), written(trees.node));

  // The steps did reach the places they are meant to test.
  const log = fs.readFileSync(path.join(trees.compiled, 'callouts.log'), 'utf8');
  assert.match(log, /-e pre -a define -s none -u 6a0f5c1e-0002.* \| \{"mdev_type":"mtty-2"/);
  assert.match(log, /^notify .*-a define/m);
  const outcome = (step: Step) => run(trees.compiled, true, step, work);
  assert.match(
    outcome(STEPS[6]!).stderr,
    /Caused by:\n {4}expected `,` or `}` at line 2 column 21\n/,
    'serde_json words the syntax error, not the JavaScript engine',
  );
  const big = outcome({ args: ['list', '-d', '--dumpjson'] });
  assert.equal(big.status, 0);
  assert.ok(big.stdout.length > 128 * 1024, `a listing larger than a pipe (${big.stdout.length})`);
  const [parents] = JSON.parse(big.stdout) as [Record<string, unknown[]>];
  assert.deepEqual(Object.keys(parents), ['mdpy', 'mtty']);
  assert.equal(parents['mdpy']!.length, 1500);
  const warned = [
    ...outcome({ args: ['list'] }).stderr.matchAll(/Can't determine uuid for file '([^']+)'/g),
  ].map((m) => m[1]);
  const bus = directoryOrder(path.join(trees.compiled, 'sys/bus/mdev/devices'));
  assert.deepEqual(
    warned,
    bus.filter((n) => NOT_UUIDS.includes(n)),
    'the bus in its directory order',
  );
  const cut = outcome({ args: ['list', '-d', '-v'], pipe: '| head -c 300' });
  assert.deepEqual([cut.status, cut.stdout.length, cut.stderr], [0, 300, '']);
});
