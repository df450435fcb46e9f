/**
 * The clap-alike parser and the command line's edges, in process: the
 * option spellings clap accepts, the usage errors (exit 2, "error: ..."),
 * help and version on stdout, runtime errors as "Error: ..." with exit 1.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ArgError, ArgExit, parse } from '../../src/ctl/mdevctl/args.js';
import { formatError, runMdevctl } from '../../src/ctl/mdevctl/run.js';
import { LIST, findCommand } from '../../src/ctl/mdevctl/spec.js';
import { MdevError } from '../../src/host/devices.js';
import { tmpDir } from '../support/tmp.js';

const U = '5f1c6e2a-8d3b-4c7e-9f10-2a3b4c5d6e71';
const p = (cmd: string, argv: string[]): Record<string, unknown> =>
  parse('mdevctl', findCommand(cmd)!, argv, () => 'HELP', 'VERSION');

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
  assert.deepEqual(p('list', ['-u', U.toUpperCase()]), { uuid: U }, 'UUIDs are normalised');
  assert.deepEqual(p('list', ['-u', `{${U}}`]), { uuid: U });
  assert.deepEqual(p('list', ['-u', U.replaceAll('-', '')]), { uuid: U });
  assert.deepEqual(p('start-parent-mdevs', ['0000:00:02.0']), { PARENT: '0000:00:02.0' });
  assert.deepEqual(p('modify', ['-u', U, '-i', '3', '--delattr']), {
    uuid: U,
    index: 3,
    delattr: true,
  });
});

test('usage errors', () => {
  const cases: [string, string[], RegExp][] = [
    ['list', ['--bogus'], /Found argument '--bogus'/],
    ['list', ['-x'], /Found argument '-x'/],
    ['list', ['stray'], /Found argument 'stray'/],
    ['list', ['-u'], /requires a value/],
    ['list', ['-p', '-d'], /requires a value/],
    ['list', ['-p', 'a', '-p', 'b'], /more than once/],
    ['list', ['-d', '-d'], /more than once/],
    ['list', ['-u', 'zzz'], /Invalid value "zzz" for '--uuid <UUID>'/],
    ['list', ['--defined=yes'], /takes no value/],
    [
      'define',
      [],
      /required arguments were not provided:\n {4}--uuid <UUID>\n {4}--parent <PARENT>/,
    ],
    ['define', ['-p', 'P', '-a', '--jsonfile', 'f'], /'--auto' cannot be used with '--jsonfile/],
    ['start', ['-p', 'P', '-t', 'T', '--jsonfile', 'f'], /cannot be used with/],
    ['modify', ['-u', U, '--auto', '--manual'], /'--auto' cannot be used with '--manual'/],
    ['modify', ['-u', U, '--addattr', 'x'], /--value <attr_value>/],
    ['modify', ['-u', U, '-i', 'x'], /invalid digit/],
    ['modify', ['-u', U, '-i', '4294967296'], /too large/],
    ['modify', ['-u', U, '--live'], /--jsonfile/],
    ['undefine', [], /--uuid <UUID>/],
    ['stop', ['-u', U, '-p', 'P'], /Found argument '-p'/],
    ['start-parent-mdevs', [], /<PARENT>/],
  ];
  for (const [cmd, argv, re] of cases) {
    assert.throws(
      () => p(cmd, argv),
      (err: unknown) => err instanceof ArgError && re.test(err.message),
      `${cmd} ${argv.join(' ')}`,
    );
  }
  assert.throws(() => p('list', ['--', '-d']), /Found argument '-d'/);
});

test('help and version ask to exit 0', () => {
  assert.throws(
    () => p('list', ['-h']),
    (e: unknown) => e instanceof ArgExit && e.text === 'HELP',
  );
  assert.throws(
    () => p('define', ['--help', '--bogus']),
    (e: unknown) => e instanceof ArgExit,
  );
  assert.throws(
    () => parse('mdevctl', LIST, ['-V'], () => 'HELP', 'VERSION'),
    (e: unknown) => e instanceof ArgExit && e.text === 'VERSION',
  );
  assert.throws(() => p('define', ['-V']), ArgError, 'only list and the top level have -V');
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
  assert.match(c.err.join(''), /USAGE:\n {4}mdevctl <SUBCOMMAND>/);

  c = capture();
  assert.equal(runMdevctl(c.io, ['--help']), 0);
  assert.match(c.out.join(''), /SUBCOMMANDS:/);
  assert.doesNotMatch(c.out.join(''), /start-parent-mdevs/, 'hidden, as in mdevctl');

  c = capture();
  assert.equal(runMdevctl(c.io, ['-V']), 0);
  assert.equal(c.out.join(''), 'mdevctl 1.2.0\n');

  c = capture();
  assert.equal(runMdevctl(c.io, ['help', 'modify']), 0);
  assert.match(c.out.join(''), /--addattr <attr_name>/);

  c = capture();
  assert.equal(runMdevctl(c.io, ['frobnicate']), 2);
  assert.match(c.err.join(''), /^error: Found argument 'frobnicate'/);

  const root = tmpDir('mdevkit-args-');
  c = capture({ MDEVCTL_ENV_ROOT: root });
  assert.equal(runMdevctl(c.io, ['list']), 1, 'missing /etc/mdevctl.d is a runtime error');
  assert.match(c.err.join(''), /^Error: Required directory ".*etc\/mdevctl\.d" doesn't exist/);

  for (const d of ['callouts', 'notifiers']) {
    fs.mkdirSync(path.join(root, 'etc/mdevctl.d/scripts.d', d), { recursive: true });
  }
  c = capture({ MDEVCTL_ENV_ROOT: root });
  assert.equal(runMdevctl(c.io, ['list']), 0);
  assert.equal(c.out.join(''), '\n', 'an empty listing is one blank line');

  c = capture({});
  assert.equal(runMdevctl(c.io, ['list', '--root', root, '--dumpjson'], 'mdevkit'), 0);
  assert.equal(c.out.join(''), '[]\n');
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
