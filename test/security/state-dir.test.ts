import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isRoot, requires } from '../support/capabilities.js';
import { MDEVKIT_BIN } from '../support/cli.js';
import { tmpDir } from '../support/tmp.js';
import { startAgent } from '../agent/running.js';

/*
 * The agent trusts its state directory (its token; for the lab, the lab's
 * mdevctl.d), the directories it runs scripts from, and its token file only
 * when nobody but its own user (or root) can change them — tested with a
 * second user, nobody, planting files the way a local attacker would.
 */

const NOBODY = 65534;
const hasRunuser = fs.existsSync('/usr/sbin/runuser') || fs.existsSync('/sbin/runuser');

interface Exit {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run `mdevkit agent ARGS` expecting it to stop by itself (a refusal), within `ms`. */
function agentExit(args: string[], opts: { user?: string; bin?: string; ms?: number } = {}): Exit {
  const bin = opts.bin ?? MDEVKIT_BIN;
  const argv = [process.execPath, bin, 'agent', '--listen', '127.0.0.1:0', ...args];
  const r =
    opts.user === undefined
      ? spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: opts.ms ?? 15_000 })
      : spawnSync('runuser', ['-u', opts.user, '--', ...argv], {
          encoding: 'utf8',
          timeout: opts.ms ?? 15_000,
        });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A refusal: exit 1, one line naming the path and a fix, no stack trace, nothing served. */
function assertRefused(e: Exit, pattern: RegExp, what: string): void {
  assert.equal(e.status, 1, `${what}: exit ${e.status}\n${e.stdout}\n${e.stderr}`);
  assert.match(e.stderr, pattern, what);
  assert.doesNotMatch(e.stderr, /\n\s+at /, `${what}: no stack trace`);
  assert.doesNotMatch(e.stdout, /listening on/, what);
}

const asNobody = (...cmd: string[]): void => {
  execFileSync('runuser', ['-u', 'nobody', '--', ...cmd], { stdio: 'pipe' });
};

/** A copy of bin/ and dist/ that nobody can read (the checkout may not be). */
function publicCopyOfTheCli(): string {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'mdevkit-sec-bin-'));
  fs.chmodSync(dir, 0o755);
  const root = nodePath.resolve(nodePath.dirname(MDEVKIT_BIN), '..');
  fs.cpSync(nodePath.join(root, 'bin'), nodePath.join(dir, 'bin'), { recursive: true });
  fs.cpSync(nodePath.join(root, 'dist'), nodePath.join(dir, 'dist'), { recursive: true });
  return dir;
}

describe('the state directory and the script directories, tested as nobody', () => {
  const base = tmpDir('mdevkit-sec-state-');
  let cli = '';
  before(() => {
    fs.chmodSync(base, 0o755);
    if (isRoot && hasRunuser) cli = publicCopyOfTheCli();
  });
  const planted: string[] = [];
  after(() => {
    if (cli !== '') fs.rmSync(cli, { recursive: true, force: true });
    for (const d of planted) fs.rmSync(d, { recursive: true, force: true });
  });

  test('root refuses a state dir that nobody made, and never runs the callout planted in it', (t) => {
    if (!requires(t, { root: isRoot, runuser: hasRunuser }, 'plants files as another user')) return;
    // nobody's own directory in /tmp, as a local user would make one.
    const state = execFileSync(
      'runuser',
      [
        '-u',
        'nobody',
        '--',
        'mktemp',
        '-d',
        nodePath.join(os.tmpdir(), 'mdevkit-sec-nobody-XXXXXX'),
      ],
      {
        encoding: 'utf8',
      },
    ).trim();
    planted.push(state);
    const callouts = nodePath.join(state, 'usr/lib/mdevctl/scripts.d/callouts');
    const marker = nodePath.join(base, 'planted-ran');
    asNobody('mkdir', '-p', callouts, nodePath.join(state, 'etc/mdevctl.d/mdpy'));
    const script = nodePath.join(callouts, 'evil');
    asNobody(
      'sh',
      '-c',
      `printf '#!/bin/sh\\ntouch ${marker}\\nexit 0\\n' > ${script} && chmod 755 ${script}`,
    );
    // A start=auto definition, so that a lab booting would run the callout.
    asNobody(
      'sh',
      '-c',
      `printf '{"mdev_type":"mdpy-hd","start":"auto","attrs":[]}' > ${state}/etc/mdevctl.d/mdpy/11111111-1111-4111-8111-111111111111`,
    );
    const e = agentExit(['--state-dir', state]);
    assertRefused(
      e,
      new RegExp(`state directory ${state}: it belongs to uid ${NOBODY}.*--state-dir.*chown`),
      'foreign state dir',
    );
    assert.equal(fs.existsSync(marker), false, 'the planted callout never ran');
    assert.equal(
      fs.existsSync(nodePath.join(state, 'agent-token')),
      false,
      'no token was made there',
    );
  });

  test('a state dir writable by group or others, or a symlink, is refused with the fix', () => {
    for (const mode of [0o777, 0o770, 0o702]) {
      const state = nodePath.join(base, `mode-${mode.toString(8)}`);
      fs.mkdirSync(state);
      fs.chmodSync(state, mode);
      assertRefused(
        agentExit(['--state-dir', state]),
        /writable by group or others \(mode 0\d+\).*chmod go-w/,
        `mode ${mode.toString(8)}`,
      );
    }
    const real = nodePath.join(base, 'real');
    fs.mkdirSync(real, { mode: 0o700 });
    const link = nodePath.join(base, 'link');
    fs.symlinkSync(real, link);
    assertRefused(agentExit(['--state-dir', link]), /it is a symlink.*--state-dir/, 'symlink');
  });

  test('a directory above the state dir that others can change is refused; a sticky one (/tmp) is fine', () => {
    const open = nodePath.join(base, 'open');
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o777);
    const state = nodePath.join(open, 'state');
    fs.mkdirSync(state, { mode: 0o700 });
    assertRefused(
      agentExit(['--state-dir', state]),
      /a directory above it, is writable by others/,
      'open parent',
    );
  });

  test('script directories: one that nobody owns, one others can write, a script nobody owns — each refused', (t) => {
    if (!requires(t, { root: isRoot, runuser: hasRunuser }, 'plants files as another user')) return;
    const cases: [string, (state: string) => void, RegExp][] = [
      [
        'callouts dir of nobody',
        (state) => {
          const d = nodePath.join(state, 'usr/lib/mdevctl/scripts.d/callouts');
          fs.mkdirSync(d, { recursive: true, mode: 0o755 });
          fs.chownSync(d, NOBODY, NOBODY);
        },
        /callout directory .*scripts\.d\/callouts/,
      ],
      [
        'world-writable notifiers',
        (state) => {
          const d = nodePath.join(state, 'etc/mdevctl.d/scripts.d/notifiers');
          fs.mkdirSync(d, { recursive: true, mode: 0o755 });
          fs.chmodSync(d, 0o777);
        },
        /notifier directory .*writable by group or others.*chmod go-w/,
      ],
      [
        "nobody's script in root's callouts dir",
        (state) => {
          const d = nodePath.join(state, 'etc/mdevctl.d/scripts.d/callouts');
          fs.mkdirSync(d, { recursive: true, mode: 0o755 });
          fs.writeFileSync(nodePath.join(d, 'x'), '#!/bin/sh\nexit 2\n', { mode: 0o755 });
          fs.chownSync(nodePath.join(d, 'x'), NOBODY, NOBODY);
        },
        new RegExp(`script .*callouts/x belongs to uid ${NOBODY}.*chown`),
      ],
    ];
    for (const [what, plant, pattern] of cases) {
      const state = fs.mkdtempSync(nodePath.join(base, 'scripts-'));
      plant(state);
      assertRefused(agentExit(['--state-dir', state]), pattern, what);
    }
  });

  test("with --root, the host's callout dirs follow the same rule", (t) => {
    if (!requires(t, { root: isRoot, runuser: hasRunuser }, 'plants files as another user')) return;
    const root = fs.mkdtempSync(nodePath.join(base, 'host-'));
    fs.chmodSync(root, 0o755);
    fs.mkdirSync(nodePath.join(root, 'sys'));
    fs.mkdirSync(nodePath.join(root, 'usr/lib/mdevctl/scripts.d/callouts'), {
      recursive: true,
      mode: 0o755,
    });
    fs.chownSync(nodePath.join(root, 'usr/lib/mdevctl/scripts.d/callouts'), NOBODY, NOBODY);
    const state = fs.mkdtempSync(nodePath.join(base, 'hoststate-'));
    assertRefused(
      agentExit(['--root', root, '--state-dir', state]),
      new RegExp(`belongs to uid ${NOBODY}`),
      '--root callouts',
    );
  });

  test("nobody's own agent: refuses root's state dir, runs in its own", async (t) => {
    if (!requires(t, { root: isRoot, runuser: hasRunuser }, 'runs the agent as nobody')) return;
    const roots = fs.mkdtempSync(nodePath.join(base, 'roots-'));
    fs.chmodSync(roots, 0o755);
    const bin = nodePath.join(cli, 'bin/mdevkit');
    assertRefused(
      agentExit(['--state-dir', roots], { user: 'nobody', bin }),
      /belongs to uid 0, not to this agent's user \(uid 65534\)/,
      "root's dir for nobody",
    );
    const own = execFileSync(
      'runuser',
      [
        '-u',
        'nobody',
        '--',
        'mktemp',
        '-d',
        nodePath.join(os.tmpdir(), 'mdevkit-sec-nobody-XXXXXX'),
      ],
      {
        encoding: 'utf8',
      },
    ).trim();
    planted.push(own);
    const child = spawn(
      'runuser',
      [
        '-u',
        'nobody',
        '--',
        process.execPath,
        bin,
        'agent',
        '--listen',
        '127.0.0.1:0',
        '--state-dir',
        own,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    try {
      let out = '';
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no start as nobody: ${out}`)), 15_000);
        child.stdout.on('data', (d: Buffer) => {
          out += d;
          if (/listening on/.test(out)) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
      });
      const st = fs.statSync(nodePath.join(own, 'agent-token'));
      assert.equal(st.uid, NOBODY);
      assert.equal(st.mode & 0o777, 0o600);
    } finally {
      child.kill('SIGTERM');
    }
  });
});

describe('the token file: symlinks, FIFOs, garbage, foreign owners', () => {
  const base = tmpDir('mdevkit-sec-token-');
  const fresh = (): string => fs.mkdtempSync(nodePath.join(base, 's-'));

  test('a symlink to a good token, and a dangling symlink, are refused at once (O_NOFOLLOW)', () => {
    const elsewhere = nodePath.join(base, 'token-elsewhere');
    fs.writeFileSync(elsewhere, `${'c'.repeat(64)}\n`, { mode: 0o600 });
    for (const target of [elsewhere, nodePath.join(base, 'nothing-here')]) {
      const state = fresh();
      fs.symlinkSync(target, nodePath.join(state, 'agent-token'));
      const e = agentExit(['--state-dir', state], { ms: 10_000 });
      assertRefused(
        e,
        /agent token .*agent-token: it is a symlink; remove it/,
        `symlink to ${target}`,
      );
      assert.ok(
        fs.lstatSync(nodePath.join(state, 'agent-token')).isSymbolicLink(),
        'left as it was',
      );
    }
  });

  test('a FIFO does not hang the start', () => {
    const state = fresh();
    execFileSync('mkfifo', [nodePath.join(state, 'agent-token')]);
    assertRefused(
      agentExit(['--state-dir', state], { ms: 10_000 }),
      /is not a regular file/,
      'fifo',
    );
  });

  test('garbage is a clear error that does not quote it', () => {
    for (const [what, content] of [
      ['text', 'root:$y$j9T$secret-looking-bytes\n'],
      ['short', 'abc\n'],
      ['binary', Buffer.from([0, 1, 2, 255, 254])],
      ['huge', 'f'.repeat(1 << 20)],
      ['empty', ''],
    ] as const) {
      const state = fresh();
      fs.writeFileSync(nodePath.join(state, 'agent-token'), content, { mode: 0o600 });
      const e = agentExit(['--state-dir', state]);
      assertRefused(e, /does not hold an agent token \(64 hex digits\); remove it/, what);
      assert.doesNotMatch(e.stderr, /secret-looking|abc|ffff/, `${what}: contents not quoted`);
    }
  });

  test('a token others can read or write, or that another user owns, is refused', (t) => {
    const state = fresh();
    const token = nodePath.join(state, 'agent-token');
    fs.writeFileSync(token, `${'d'.repeat(64)}\n`, { mode: 0o600 });
    fs.chmodSync(token, 0o644);
    assertRefused(
      agentExit(['--state-dir', state]),
      /read or written by group or others \(mode 0644\).*chmod 600/,
      '0644',
    );
    if (!requires(t, { root: isRoot }, 'chowns the token to nobody')) return;
    fs.chmodSync(token, 0o600);
    fs.chownSync(token, NOBODY, NOBODY);
    assertRefused(
      agentExit(['--state-dir', state]),
      new RegExp(`belongs to uid ${NOBODY}`),
      'foreign owner',
    );
  });

  test('a good token is read back; a missing one is made 0600 with no debris', async () => {
    const state = fresh();
    const a = await startAgent(['--listen', '127.0.0.1:0', '--state-dir', state]);
    await a.stop();
    assert.deepEqual(
      fs.readdirSync(state).filter((n) => n.includes('token')),
      ['agent-token'],
    );
    const token = fs.readFileSync(nodePath.join(state, 'agent-token'), 'utf8');
    const b = await startAgent(['--listen', '127.0.0.1:0', '--state-dir', state]);
    await b.stop();
    assert.equal(fs.readFileSync(nodePath.join(state, 'agent-token'), 'utf8'), token);
  });
});

describe('--socket PATH removes only a stale socket', () => {
  const base = tmpDir('mdevkit-sec-socket-');

  test('a regular file at PATH is refused and left alone', () => {
    const path = nodePath.join(base, 'file.sock');
    fs.writeFileSync(path, 'precious');
    const e = spawnSync(
      process.execPath,
      [
        MDEVKIT_BIN,
        'agent',
        '--socket',
        path,
        '--state-dir',
        fs.mkdtempSync(nodePath.join(base, 's-')),
      ],
      {
        encoding: 'utf8',
        timeout: 15_000,
      },
    );
    assertRefused(
      { status: e.status, stdout: e.stdout, stderr: e.stderr },
      /not a socket/,
      'regular file',
    );
    assert.equal(fs.readFileSync(path, 'utf8'), 'precious');
  });

  test("a live agent's socket is refused, and that agent keeps answering", async () => {
    const path = nodePath.join(base, 'live.sock');
    const first = await startAgent([
      '--socket',
      path,
      '--state-dir',
      fs.mkdtempSync(nodePath.join(base, 's-')),
    ]);
    try {
      const e = spawnSync(
        process.execPath,
        [
          MDEVKIT_BIN,
          'agent',
          '--socket',
          path,
          '--state-dir',
          fs.mkdtempSync(nodePath.join(base, 's-')),
        ],
        {
          encoding: 'utf8',
          timeout: 15_000,
        },
      );
      assertRefused(
        { status: e.status, stdout: e.stdout, stderr: e.stderr },
        /another process is listening on it/,
        'live socket',
      );
      const answered = await new Promise<boolean>((resolve) => {
        const c = net.connect(path, () => {
          c.end('GET /healthz HTTP/1.0\r\n\r\n');
        });
        let t = '';
        c.on('data', (d) => (t += d));
        c.on('close', () => resolve(/"status":"ok"/.test(t)));
        c.on('error', () => resolve(false));
      });
      assert.ok(answered, 'the first agent still answers on its socket');
    } finally {
      await first.stop();
    }
  });

  test('a stale socket (its process was killed) is replaced; the new one is 0600 from the start', async () => {
    const path = nodePath.join(base, 'stale.sock');
    // A process that listens, then dies by SIGKILL: the socket file stays.
    const holder = spawn(
      process.execPath,
      [
        '-e',
        `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`,
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    assert.ok(fs.lstatSync(path).isSocket(), 'a stale socket is left behind');
    const a = await startAgent([
      '--socket',
      path,
      '--state-dir',
      fs.mkdtempSync(nodePath.join(base, 's-')),
    ]);
    try {
      assert.equal(fs.statSync(path).mode & 0o777, 0o600);
    } finally {
      assert.equal(await a.stop(), 0, 'stopped cleanly by SIGTERM');
    }
    assert.equal(fs.existsSync(path), false, 'removed on exit');
  });
});
