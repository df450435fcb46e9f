/**
 * The clap-alike parser and the command line's edges, in process: the
 * option spellings clap accepts, the usage errors (exit 2, "error: ..."),
 * help and version on stdout, runtime errors as "Error: ..." with exit 1.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ArgError, ArgExit, jaro, parse } from '../../src/ctl/mdevctl/args.js';
import { formatError, runMdevctl, warnEnabled } from '../../src/ctl/mdevctl/run.js';
import { LIST, programSpec } from '../../src/ctl/mdevctl/spec.js';
import { MdevError } from '../../src/host/devices.js';
import { uuidParseProblem } from '../../src/host/uuid-forms.js';
import { tmpDir } from '../support/tmp.js';

const U = '5f1c6e2a-8d3b-4c7e-9f10-2a3b4c5d6e71';
const MDEVCTL = programSpec('mdevctl');
const p = (cmd: string, argv: string[]): Record<string, unknown> =>
  parse(MDEVCTL, [cmd, ...argv]).values;
const usageError = (argv: string[]): string => {
  try {
    parse(MDEVCTL, argv);
  } catch (err) {
    if (err instanceof ArgError) return err.text;
    throw err;
  }
  throw new Error(`accepted: ${argv.join(' ')}`);
};

test('option spellings: --opt value, --opt=value, -o value, -ovalue, -o=value, clusters', () => {
  for (const argv of [
    ['--uuid', U, '--parent', 'P'],
    [`--uuid=${U}`, '--parent=P'],
    ['-u', U, '-p', 'P'],
    [`-u${U}`, '-pP'],
    [`-u=${U}`, '-p=P'],
  ]) {
    assert.deepEqual(p('list', argv), { uuid: U, parent: 'P' }, argv.join(' '));
  }
  assert.deepEqual(p('list', ['-dvp', 'P']), { defined: true, verbose: true, parent: 'P' });
  assert.deepEqual(p('list', ['-pd']), { parent: 'd' }, 'the rest of a cluster is the value');
  assert.deepEqual(p('list', ['-u', U.toUpperCase()]), { uuid: U }, 'UUIDs are normalised');
  assert.deepEqual(p('list', ['-u', `{${U}}`]), { uuid: U });
  assert.deepEqual(p('list', ['-u', U.replaceAll('-', '')]), { uuid: U });
  assert.deepEqual(p('start-parent-mdevs', ['0000:00:02.0']), { PARENT: '0000:00:02.0' });
  assert.deepEqual(p('modify', ['-u', U, '-i', '+3', '--delattr']), {
    uuid: U,
    index: 3,
    delattr: true,
  });
  // libvirt's calls, verbatim
  assert.deepEqual(p('start', ['--parent=P', '--jsonfile=/dev/stdin', `--uuid=${U}`]), {
    parent: 'P',
    jsonfile: '/dev/stdin',
    uuid: U,
  });
  assert.deepEqual(
    p('modify', ['--parent=P', '--jsonfile=/dev/stdin', `--uuid=${U}`, '--defined', '--live']),
    { uuid: U, parent: 'P', jsonfile: '/dev/stdin', live: true, defined: true },
  );
  assert.throws(
    () => parse(MDEVCTL, ['modify', '--defined', '--live', '--jsonfile', 'b', '--help']),
    (e: unknown) => e instanceof ArgExit && e.status === 0 && /--live/.test(e.text),
    "libvirt's capability probe: help, exit 0, before the missing --uuid is noticed",
  );
});

test("usage errors in clap 4's words, with its usage lines", () => {
  const M = '<--auto|--manual|--addattr <attr_name>|--delattr|--jsonfile <JSONFILE>>';
  const cases: [string[], string][] = [
    [
      ['list', '--bogus'],
      "error: unexpected argument '--bogus' found\n\nUsage: mdevctl list [OPTIONS]\n",
    ],
    [['list', 'stray'], "error: unexpected argument 'stray' found\n"],
    [['list', '-u'], "error: a value is required for '--uuid <UUID>' but none was supplied\n"],
    [['list', '-p', '-d'], "error: a value is required for '--parent <PARENT>'"],
    [['list', '-d', '-d'], "error: the argument '--defined' cannot be used multiple times\n"],
    [
      ['list', '--defined=yes'],
      "error: unexpected value 'yes' for '--defined' found; no more were expected\n\nUsage: mdevctl list --defined\n",
    ],
    [
      ['list', '--define'],
      "error: unexpected argument '--define' found\n\n  tip: a similar argument exists: '--defined'\n\nUsage: mdevctl list <--defined|--dumpjson|--verbose|--uuid <UUID>|--parent <PARENT>>\n",
    ],
    [['list', '-u', 'zz', '--bogus'], "error: unexpected argument '--bogus' found"],
    [
      ['list', '-u', 'zz', '-d'],
      "error: invalid value 'zz' for '--uuid <UUID>': invalid character",
    ],
    [
      ['define'],
      'error: the following required arguments were not provided:\n  --uuid <UUID>\n  --parent <PARENT>\n\nUsage: mdevctl define --uuid <UUID> --parent <PARENT>\n',
    ],
    [
      ['define', '-p', 'P', '--jsonfile', 'f', '-a'],
      "error: the argument '--jsonfile <JSONFILE>' cannot be used with '--auto'",
    ],
    [
      ['modify', '-u', U],
      `error: the following required arguments were not provided:\n  ${M}\n\nUsage: mdevctl modify --uuid <UUID> ${M}\n`,
    ],
    [
      ['modify', '-u', U, '--auto', '--manual'],
      `error: the argument '--auto' cannot be used with '--manual'\n\nUsage: mdevctl modify --uuid <UUID> ${M}\n`,
    ],
    [
      ['modify', '-u', U, '--delattr', '--addattr', 'x', '--value', 'v'],
      "error: the argument '--delattr' cannot be used with:\n  --addattr <attr_name>\n  --value <attr_value>\n",
    ],
    [
      ['modify', '-u', U, '--addattr', 'x'],
      `  --value <attr_value>\n\nUsage: mdevctl modify --uuid <UUID> --value <attr_value> ${M}\n`,
    ],
    [
      ['modify', '-u', U, '-i', 'x', '--delattr'],
      "for '--index <INDEX>': invalid digit found in string\n",
    ],
    [
      ['modify', '-u', U, '-i', '4294967296', '--delattr'],
      ': 4294967296 is not in 0..=4294967295\n',
    ],
    [
      ['stop', '-u', U, '-p', 'P'],
      "error: unexpected argument '-p' found\n\nUsage: mdevctl stop [OPTIONS] --uuid <UUID>\n",
    ],
    [['start-parent-mdevs', '--x'], "  tip: to pass '--x' as a value, use '-- --x'\n"],
    [
      ['lst'],
      "error: unrecognized subcommand 'lst'\n\n  tip: some similar subcommands exist: 'stop', 'list'\n\nUsage: mdevctl <COMMAND>\n",
    ],
    [['--defined', 'list'], "  tip: 'list --defined' exists\n"],
    [['list', '--', '-d'], "error: unexpected argument '-d' found\n"],
  ];
  for (const [argv, want] of cases) {
    const text = usageError(argv);
    assert.ok(text.includes(want), `${argv.join(' ')}:\n${text}\nshould contain:\n${want}`);
    assert.ok(text.endsWith("\n\nFor more information, try '--help'.\n"), argv.join(' '));
  }
});

test('a bad UUID explained as the uuid crate does', () => {
  const cases: [string, string][] = [
    [
      'zz',
      'invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `z` at 1',
    ],
    ['5f1c6e2a8d3b', 'invalid length: expected length 32 for simple format, found 12'],
    ['5f1c6e2a-8d3b-4c7e-9f10', 'invalid group count: expected 5, found 4'],
    [
      '5f1c6e2a-8d3b-4c7e-9f10-2a3b4c5d6e7',
      'invalid group length in group 4: expected 12, found 11',
    ],
    [
      '5f1c6e2-a8d3b-4c7e-9f10-2a3b4c5d6e71',
      'invalid group length in group 0: expected 8, found 7',
    ],
    ['{5f1c6e2a-8d3b-4c7e-9f10-2a3b4c5d6e71', 'found `{` at 1'],
    // not the length of a braced UUID: explained with the braces counted
    [
      '{5f1c6e2a-8d3b-4c7e-9f10-2a3b4c5d6e7}',
      'invalid group length in group 4: expected 12, found 13',
    ],
    ['urn:uuid:5f1c6e2a-8d3b-4c7e-9f10-2a3b4c5d6eZ1', 'found `Z` at 35'],
    ['urn:uuid:5f1c6e2a-8d3b-4c7e-9f10-2a3b4c5d6eZ', 'found `Z` at 44'],
    ['é', 'found `é` at 1'],
  ];
  for (const [input, want] of cases) assert.ok(uuidParseProblem(input).includes(want), input);
});

test('suggestions use Jaro similarity', () => {
  assert.equal(jaro('', ''), 1);
  assert.equal(jaro('abc', ''), 0);
  assert.equal(jaro('martha', 'marhta').toFixed(4), '0.9444');
  assert.equal(jaro('dixon', 'dicksonx').toFixed(4), '0.7667');
});

test('help and version ask to exit 0, on stdout', () => {
  const exit = (argv: string[], opts = {}): ArgExit => {
    try {
      parse(MDEVCTL, argv, opts);
    } catch (e) {
      if (e instanceof ArgExit) return e;
      throw e;
    }
    throw new Error('no exit');
  };
  assert.match(
    exit(['list', '-h']).text,
    /^List mediated devices\n\nUsage: mdevctl list \[OPTIONS\]\n/,
  );
  assert.match(exit(['list', '-h']).text, /-h, --help {13}Print help \(see more with '--help'\)\n/);
  assert.match(exit(['list', '--help']).text, /\n {2}-d, --defined\n {10}\S/);
  assert.match(exit(['define', '--help', '--bogus']).text, /Usage: mdevctl define \[OPTIONS\]/);
  assert.equal(exit(['-V']).text, 'mdevctl 1.4.0\n');
  assert.equal(exit(['list', '-V']).text, 'mdevctl-list 1.4.0\n');
  assert.equal(exit(['-V'], { single: LIST }).text, 'mdevctl 1.4.0\n');
  assert.equal(
    exit(['--version'], { single: LIST }).text,
    'mdevctl 1.4.0\n',
    'lsmdev is the program name, given by programSpec',
  );
  assert.equal(exit([]).status, 2, 'nothing at all: the help as an error');
  assert.equal(exit([]).stream, 'stderr');
  assert.match(usageError(['define', '-V']), /unexpected argument '-V'/, 'only list has -V');
  // help wraps at the width asked for (usage lines excepted, as clap does)
  const narrow = exit(['help', 'modify'], { width: 40 }).text.split('\n');
  assert.ok(narrow.length > 30);
  assert.deepEqual(
    narrow.filter((l) => l.length > 40 && !l.startsWith('Usage: ')),
    [],
  );
});

function capture(env: Record<string, string> = {}): {
  io: Parameters<typeof runMdevctl>[0];
  out: string[];
  err: string[];
} {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: {
      stdout: { write: (s: string) => out.push(s) },
      stderr: { write: (s: string) => err.push(s) },
      env,
      cwd: '/',
      readStdin: () => '',
    },
    out,
    err,
  };
}

test('the command line: exit codes and where text goes', () => {
  let c = capture();
  assert.equal(runMdevctl(c.io, []), 2);
  assert.equal(c.out.join(''), '');
  assert.match(c.err.join(''), /Usage: mdevctl <COMMAND>/);

  c = capture();
  assert.equal(runMdevctl(c.io, ['--help']), 0);
  assert.match(c.out.join(''), /\nCommands:\n/);
  assert.doesNotMatch(c.out.join(''), /start-parent-mdevs/, 'hidden, as in mdevctl');

  c = capture();
  assert.equal(runMdevctl(c.io, ['-V']), 0);
  assert.equal(c.out.join(''), 'mdevctl 1.4.0\n');

  c = capture();
  assert.equal(runMdevctl(c.io, ['help', 'modify']), 0);
  assert.match(c.out.join(''), /--addattr <attr_name>/);

  c = capture();
  assert.equal(runMdevctl(c.io, ['frobnicate']), 2);
  assert.match(c.err.join(''), /^error: unrecognized subcommand 'frobnicate'/);

  const root = tmpDir('mdevkit-args-');
  c = capture({ MDEVCTL_ENV_ROOT: root });
  assert.equal(runMdevctl(c.io, ['list']), 1, 'missing /etc/mdevctl.d is a runtime error');
  assert.match(c.err.join(''), /^Error: Required directory ".*etc\/mdevctl\.d" doesn't exist/);

  fs.mkdirSync(path.join(root, 'etc/mdevctl.d'), { recursive: true });
  c = capture({ MDEVCTL_ENV_ROOT: root });
  assert.equal(runMdevctl(c.io, ['--help']), 1, 'the directories are checked before anything else');
  assert.match(
    c.err.join(''),
    /^Error: Required directory ".*usr\/lib\/mdevctl\/scripts\.d\/callouts"/,
  );

  for (const d of ['callouts', 'notifiers']) {
    fs.mkdirSync(path.join(root, 'usr/lib/mdevctl/scripts.d', d), { recursive: true });
  }
  c = capture({ MDEVCTL_ENV_ROOT: root });
  assert.equal(runMdevctl(c.io, ['list']), 0);
  assert.equal(c.out.join(''), '', 'an empty listing prints nothing');

  c = capture({});
  assert.equal(runMdevctl(c.io, ['list', '--root', root, '--dumpjson'], 'mdevkit'), 0);
  assert.equal(c.out.join(''), '[]', 'JSON without a newline at the end');

  c = capture({ MDEVCTL_ENV_ROOT: root });
  assert.equal(runMdevctl(c.io, ['list', '--bogus'], 'lsmdev'), 2);
  assert.match(c.err.join(''), /Usage: lsmdev \[OPTIONS\]/);
});

test('errors print as anyhow does: message, then the causes', () => {
  const one = new MdevError('ENOENT', 'Error removing device X', {
    cause: Object.assign(new Error('ENOENT'), { code: 'ENOENT', syscall: 'open' }),
  });
  assert.equal(
    formatError(one),
    'Error: Error removing device X\n\nCaused by:\n    No such file or directory (os error 2)\n',
  );
  const two = new MdevError('EIO', 'a', { cause: new Error('b', { cause: new Error('c') }) });
  assert.equal(formatError(two), 'Error: a\n\nCaused by:\n    0: b\n    1: c\n');
  assert.equal(formatError(new MdevError('not-defined', 'x')), 'Error: x\n');
});

test("MDEVCTL_LOG decides which warnings show, as env_logger's filter", () => {
  const cases: [string | undefined, string, boolean][] = [
    [undefined, 'mdevctl::callouts', true],
    ['', 'mdevctl', false],
    ['error', 'mdevctl::environment', false],
    ['OFF', 'mdevctl', false],
    ['info', 'mdevctl::mdev', true],
    ['mdevctl::environment=error', 'mdevctl::environment', false],
    ['mdevctl::environment=error', 'mdevctl::callouts', false],
    ['mdevctl=error,mdevctl::callouts=warn', 'mdevctl::callouts', true],
    ['mdevctl=error,mdevctl::callouts=warn', 'mdevctl::mdev', false],
    ['warn,mdevctl::env=off', 'mdevctl::environment', false],
    ['warn,bogus=off', 'mdevctl', true],
    ['bogus', 'mdevctl', false],
    ['mdevctl', 'mdevctl::callouts', true],
    ['warn/regex', 'mdevctl', true],
  ];
  for (const [spec, module, want] of cases) {
    assert.equal(warnEnabled(spec, module), want, `${JSON.stringify(spec)} ${module}`);
  }
});
