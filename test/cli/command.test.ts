import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CommandError,
  UsageError,
  command,
  group,
  runProgram,
  type Group,
  type Runnable,
} from '../../src/cli/command.js';
import { MDEVKIT } from '../../src/cli/main.js';
import type { CommandIo } from '../../src/ctl/io.js';
import { environmentAt } from '../../src/host/environment.js';
import { labWith } from '../support/labs.js';

/** mdevkit's command helper: the same --help, usage errors and exit codes for every command. */

function capture(env: Record<string, string> = {}) {
  let out = '';
  let err = '';
  const io: CommandIo = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env,
    cwd: '/',
    readStdin: () => '',
  };
  return { io, out: () => out, err: () => err };
}

/** Every command path below `g` ("lab serve", "nodedev-list", ...), with what it is. */
async function walk(g: Group, path: string[] = []): Promise<[string[], Runnable][]> {
  const out: [string[], Runnable][] = [];
  for (const [name, entry] of Object.entries(g.commands)) {
    const r = await entry.load();
    out.push([[...path, name], r]);
    if (r.kind === 'group') out.push(...(await walk(r, [...path, name])));
  }
  return out;
}

describe('every mdevkit command', () => {
  it('answers --help and -h on stdout with its usage, exit 0', async () => {
    const all = await walk(MDEVKIT);
    assert.ok(all.length > 25, `${all.length} commands found`);
    for (const [path, r] of all) {
      for (const flag of ['--help', '-h']) {
        const c = capture();
        const code = await runProgram(MDEVKIT, c.io, [...path, flag]);
        assert.equal(code, 0, `${path.join(' ')} ${flag}: ${c.err()}`);
        assert.equal(c.err(), '', `${path.join(' ')} ${flag} says nothing on stderr`);
        // mdevctl's own commands print clap's help; mdevkit's print "usage: mdevkit PATH".
        const expected =
          r.kind === 'raw'
            ? /^Usage: (mdevctl|mdevkit|lsmdev)\b/m
            : new RegExp(`^usage: mdevkit ${path.join(' ')}`);
        assert.match(c.out(), expected, `${path.join(' ')} ${flag}`);
      }
    }
  });

  it('refuses an unknown option with exit 2, the message and the usage, no stack', async () => {
    for (const path of [['lab', 'summary'], ['ap', 'show'], ['nodedev-list'], ['agent']]) {
      const c = capture();
      assert.equal(await runProgram(MDEVKIT, c.io, [...path, '--bogus']), 2);
      assert.match(c.err(), /^mdevkit: Unknown option '--bogus'/);
      assert.match(c.err(), new RegExp(`\\n\\nusage: mdevkit ${path.join(' ')}`));
      assert.doesNotMatch(c.err(), /\n\s+at /);
    }
  });

  it('a group without a command prints its usage and exits 2; an unknown one is a usage error', async () => {
    const c = capture();
    assert.equal(await runProgram(MDEVKIT, c.io, ['lab']), 2);
    assert.match(c.out(), /^usage: mdevkit lab <command>/);
    const d = capture();
    assert.equal(await runProgram(MDEVKIT, d.io, ['lab', 'frobnicate']), 2);
    assert.match(d.err(), /^mdevkit: unknown lab command 'frobnicate'\n\nusage: mdevkit lab/);
    const v = capture();
    assert.equal(await runProgram(MDEVKIT, v.io, ['--version']), 0);
    assert.match(v.out(), /^mdevkit \d+\.\d+\.\d+\n$/);
  });
});

describe('the helper', () => {
  const seen: unknown[] = [];
  const probe = command({
    synopsis: 'NAME [--count N]',
    description: 'A probe.',
    options: {
      count: { type: 'string', value: 'N', default: '1', help: 'how many' },
      loud: { type: 'boolean', help: 'say more' },
    },
    positionals: [{ name: 'NAME' }],
    root: true,
    json: true,
    explain: (err) => (err instanceof RangeError ? `out of range: ${err.message}` : undefined),
    run(io, call) {
      if (call.positionals[0] === 'range') throw new RangeError('too far');
      if (call.positionals[0] === 'usage') throw new UsageError('not like that');
      if (call.positionals[0] === 'fail') throw new CommandError('it broke', 3);
      seen.push({ values: { ...call.values }, root: call.host().root });
      call.output({ name: call.positionals[0] }, () => `name ${call.positionals[0]}\n`);
    },
  });
  const top = group({ commands: { probe: { summary: 'a probe', load: () => probe } } });

  it('parses options with defaults, --root against the working directory, and --json', async () => {
    seen.length = 0;
    const c = capture({ MDEVCTL_ENV_ROOT: '/from-env' });
    assert.equal(await runProgram(top, c.io, ['probe', 'x', '--loud']), 0);
    assert.equal(c.out(), 'name x\n');
    const j = capture();
    assert.equal(await runProgram(top, j.io, ['probe', 'y', '--json', '--root', 'lab']), 0);
    assert.deepEqual(JSON.parse(j.out()), { name: 'y' });
    assert.deepEqual(seen, [
      { values: { count: '1', loud: true }, root: '/from-env' },
      { values: { count: '1', json: true, root: 'lab' }, root: '/lab' },
    ]);
  });

  it('maps failures to exit codes: usage 2 with usage, words 1, explained library errors 1', async () => {
    const u = capture();
    assert.equal(await runProgram(top, u.io, ['probe', 'usage']), 2);
    assert.match(u.err(), /^mdevkit: not like that\n\nusage: mdevkit probe NAME \[--count N\]/);
    const missing = capture();
    assert.equal(await runProgram(top, missing.io, ['probe']), 2);
    assert.match(missing.err(), /^mdevkit: probe takes one NAME\n/);
    const f = capture();
    assert.equal(await runProgram(top, f.io, ['probe', 'fail']), 3);
    assert.equal(f.err(), 'mdevkit: it broke\n');
    const r = capture();
    assert.equal(await runProgram(top, r.io, ['probe', 'range']), 1);
    assert.equal(r.err(), 'mdevkit: out of range: too far\n');
  });

  it('hands a test the host it chooses instead of --root', async () => {
    seen.length = 0;
    const lab = labWith([{ driver: 'mtty' }]);
    const c = capture();
    await runProgram(top, c.io, ['probe', 'z'], {
      host: () => environmentAt('/lab-root', lab.port),
    });
    assert.deepEqual(seen, [{ values: { count: '1' }, root: '/lab-root' }]);
  });
});
