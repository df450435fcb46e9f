import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { InjectOptions } from 'fastify';
import { buildAgent, type Agent } from '../../src/agent/server.js';
import { runAp } from '../../src/cli/ap.js';
import { reportError } from '../../src/cli/command.js';
import { ErrnoError, type ErrnoCode } from '../../src/common/errno.js';
import type { CommandIo } from '../../src/ctl/io.js';
import { runMdevctl } from '../../src/ctl/mdevctl/run.js';
import { changeMatrix } from '../../src/host/ap/edit.js';
import { defineDevice, startDevice, stopDevice, type JsonSource } from '../../src/host/devices.js';
import { environmentAt, type Environment } from '../../src/host/environment.js';
import { MdevError } from '../../src/host/errors.js';
import { controlCall } from '../../src/sim/control.js';
import { FUSE_NEEDS, serveLab, writeProfile } from '../fuse/served-lab.js';
import { requires } from '../support/capabilities.js';
import { MDEVKIT_BIN } from '../support/cli.js';
import { labWith } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';

/**
 * One error model, the same on the lab and on hardware: the same failing
 * operations, run through the host library, the CLI (mdevctl and `mdevkit
 * ap`, with MDEVKIT_ERROR_FORMAT=json) and the HTTP API, on both ports —
 * the emulator's tree in process, and FsSysfsPort over a lab served by
 * FUSE from another process, which is how a real /sys is read — must
 * answer with the same code and errno everywhere. Before this model the
 * in-process port leaked the emulator's explanation, the agent guessed
 * errnos from English messages, and a vfio-ap conflict answered EADDRINUSE
 * in process but EINVAL over FUSE.
 */

const MDEVCTL_BIN = new URL('../../bin/mdevctl', import.meta.url).pathname;
const TOKEN = 'c'.repeat(64);

const DEVICES = [
  { driver: 'mdpy', options: { count: 1 } },
  { driver: 'siov', options: { queues: 4, max_queues_per_device: 4 } },
  {
    driver: 'vfio-ap',
    options: {
      adapters: [
        { id: 3, type: 'CEX7', mode: 'cca' },
        { id: 5, type: 'CEX8', mode: 'cca' },
      ],
      domains: [4, 0x47],
      apmask: '-5', // adapter 5's queues are for guests, adapter 3's the host's
    },
  },
];

const SIOV = '0000:6a:01.0';
const MATRIX = 'vfio_ap-passthrough';
/** Defined and running: fills mdpy (count 1); opened by a "VM" so stop is EBUSY. */
const DEFINED = '0e770001-0000-4000-8000-000000000001';
/** A matrix device holding queue 05.0047. */
const HOLDER = '0e770002-0000-4000-8000-000000000002';
/** An empty matrix device, the target of the ap edits. */
const EMPTY = '0e770003-0000-4000-8000-000000000003';

interface Surfaces {
  readonly env: Environment;
  /** mdevctl ARGS with MDEVKIT_ERROR_FORMAT=json; the parsed error line. */
  mdevctl(args: string[]): Promise<unknown>;
  /** mdevkit ap ARGS, likewise. */
  ap(args: string[]): Promise<unknown>;
  /** Open a device as a VM would (the emulator's control interface). */
  openDevice(uuid: string): Promise<void>;
  closeDevice(uuid: string): Promise<void>;
  close(): Promise<void>;
}

interface HostUnderTest {
  readonly name: string;
  readonly needs: Record<string, boolean>;
  open(): Promise<Surfaces>;
}

/** The error line a CLI printed with MDEVKIT_ERROR_FORMAT=json. */
function errorLine(status: number | null, stderr: string): unknown {
  assert.notEqual(status, 0, 'the command should fail');
  const line = stderr.trim().split('\n').at(-1) ?? '';
  try {
    return (JSON.parse(line) as { error: unknown }).error;
  } catch {
    assert.fail(`not a JSON error line: ${stderr}`);
  }
}

function capture(env: Record<string, string>): { ctx: CommandIo; stderr: () => string } {
  let err = '';
  const ctx: CommandIo = {
    stdout: { write: () => true },
    stderr: { write: (s: string) => (err += s) },
    env,
    cwd: '/',
    readStdin: () => '',
  };
  return { ctx, stderr: () => err };
}

const JSON_ERRORS = { MDEVKIT_ERROR_FORMAT: 'json' };

const HOSTS: HostUnderTest[] = [
  {
    name: 'in-process port (TreeSysfsPort)',
    needs: {},
    async open() {
      const lab = labWith(DEVICES);
      const env = environmentAt(tmpDir('mdevkit-errors-'), lab.port);
      for (const d of [env.configDir, env.calloutDirs[0]!, env.notifierDirs[0]!])
        fs.mkdirSync(d, { recursive: true });
      return {
        env,
        async mdevctl(args) {
          const { ctx, stderr } = capture(JSON_ERRORS);
          return errorLine(runMdevctl(ctx, args, 'mdevctl', env), stderr());
        },
        async ap(args) {
          const { ctx, stderr } = capture(JSON_ERRORS);
          let status: number;
          try {
            status = runAp(ctx, lab.port, args);
          } catch (err) {
            status = reportError(ctx, err);
          }
          return errorLine(status, stderr());
        },
        async openDevice(uuid) {
          lab.open(uuid);
        },
        async closeDevice(uuid) {
          lab.close(uuid);
        },
        async close() {},
      };
    },
  },
  {
    name: 'node:fs port over a FUSE-served lab (FsSysfsPort)',
    needs: FUSE_NEEDS,
    async open() {
      const lab = await serveLab(['--profile', writeProfile(DEVICES)]);
      const env = environmentAt(lab.dir);
      const spawnEnv = { ...process.env, ...JSON_ERRORS, MDEVCTL_ENV_ROOT: lab.dir };
      const control = `${lab.dir}/lab.sock`;
      return {
        env,
        async mdevctl(args) {
          const r = spawnSync(MDEVCTL_BIN, args, { encoding: 'utf8', env: spawnEnv });
          return errorLine(r.status, r.stderr);
        },
        async ap(args) {
          const r = spawnSync(process.execPath, [MDEVKIT_BIN, 'ap', ...args, '--root', lab.dir], {
            encoding: 'utf8',
            env: spawnEnv,
          });
          return errorLine(r.status, r.stderr);
        },
        async openDevice(uuid) {
          await controlCall(control, { op: 'open', uuid });
        },
        async closeDevice(uuid) {
          await controlCall(control, { op: 'close', uuid });
        },
        close: () => lab.close(),
      };
    },
  },
];

/** A JSON document for start, in a file for mdevctl --jsonfile and as a source for the library. */
function document(dir: string, name: string, type: string, attrs: [string, string][]) {
  const text = JSON.stringify({
    mdev_type: type,
    start: 'manual',
    attrs: attrs.map(([k, v]) => ({ [k]: v })),
  });
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, text);
  const source: JsonSource = { name: file, read: () => text };
  const api = attrs.map(([k, v]) => ({ name: k, value: v }));
  return { file, source, api };
}

interface FailingOp {
  readonly name: string;
  readonly code: string;
  readonly errno: ErrnoCode;
  /** Context entries every surface must report. */
  readonly context?: Record<string, string>;
  library(env: Environment): unknown;
  /** ['mdevctl', ...] or ['ap', ...]. */
  readonly cli: string[];
  readonly api: InjectOptions;
}

function failingOps(dir: string): FailingOp[] {
  const post = (payload: object): InjectOptions => ({
    method: 'POST',
    url: '/api/v1/devices',
    headers: { authorization: `Bearer ${TOKEN}` },
    payload,
  });
  const transient = (parent: string, type: string, attrs: { name: string; value: string }[] = []) =>
    post({ parent, type, attrs, define: false, activate: true });
  const matrixStart = (name: string, attrs: [string, string][], code: string, errno: ErrnoCode) => {
    const doc = document(dir, name, MATRIX, attrs);
    return {
      name,
      code,
      errno,
      library: (env: Environment) => startDevice(env, { parent: 'matrix', json: doc.source }),
      cli: ['mdevctl', 'start', '-p', 'matrix', '--jsonfile', doc.file],
      api: transient('matrix', MATRIX, doc.api),
    } satisfies FailingOp;
  };
  const apAssign = (
    name: string,
    adapters: number[],
    domains: number[],
    code: string,
    errno: ErrnoCode,
    context: Record<string, string>,
  ): FailingOp => ({
    name,
    code,
    errno,
    context,
    library: (env) => changeMatrix(env.port, EMPTY, 'assign', { adapters, domains }),
    cli: ['ap', 'assign', EMPTY, '--adapters', adapters.join(','), '--domains', domains.join(',')],
    api: {
      method: 'POST',
      url: `/api/v1/ap/devices/${EMPTY}/assign`,
      headers: { authorization: `Bearer ${TOKEN}` },
      payload: { adapters, domains },
    },
  });
  return [
    {
      name: 'start a type whose available_instances reads 0 (refused before the kernel is asked)',
      code: 'no-instances',
      errno: 'EUSERS',
      context: { parent: 'mdpy', type: 'mdpy-vga' },
      library: (env) => startDevice(env, { parent: 'mdpy', type: 'mdpy-vga' }),
      cli: ['mdevctl', 'start', '-p', 'mdpy', '-t', 'mdpy-vga'],
      api: transient('mdpy', 'mdpy-vga'),
    },
    (() => {
      const doc = document(dir, 'aggregate', 'idxd-1wq', [['mdev/aggregation/value', '4']]);
      return {
        name: "aggregate beyond the work queues left, as a start's attribute",
        code: 'ENOSPC',
        errno: 'ENOSPC',
        context: { parent: SIOV, type: 'idxd-1wq', attribute: 'mdev/aggregation/value' },
        library: (env: Environment) => startDevice(env, { parent: SIOV, json: doc.source }),
        cli: ['mdevctl', 'start', '-p', SIOV, '--jsonfile', doc.file],
        api: transient(SIOV, 'idxd-1wq', doc.api),
      } satisfies FailingOp;
    })(),
    {
      name: 'stop a device a VM holds open (the kernel\'s errno behind "Error removing device")',
      code: 'EBUSY',
      errno: 'EBUSY',
      context: { uuid: DEFINED },
      library: (env) => stopDevice(env, DEFINED),
      cli: ['mdevctl', 'stop', '-u', DEFINED],
      api: {
        method: 'POST',
        // Made by the library, not through the API: not the agent's to stop
        // unless forced (not-owner); forced, the kernel's EBUSY comes back.
        url: `/api/v1/devices/${DEFINED}/stop?force=true`,
        headers: { authorization: `Bearer ${TOKEN}` },
      },
    },
    {
      name: 'define a device that is defined already',
      code: 'already-defined',
      errno: 'EEXIST',
      context: { uuid: DEFINED, parent: 'mdpy' },
      library: (env) => defineDevice(env, { uuid: DEFINED, parent: 'mdpy', type: 'mdpy-vga' }),
      cli: ['mdevctl', 'define', '-u', DEFINED, '-p', 'mdpy', '-t', 'mdpy-vga'],
      api: post({ uuid: DEFINED, parent: 'mdpy', type: 'mdpy-vga' }),
    },
    {
      name: 'start on a parent that is not there',
      code: 'parent-missing',
      errno: 'ENODEV',
      context: { parent: 'nosuch' },
      library: (env) => startDevice(env, { parent: 'nosuch', type: 'x-1' }),
      cli: ['mdevctl', 'start', '-p', 'nosuch', '-t', 'x-1'],
      api: transient('nosuch', 'x-1'),
    },
    matrixStart(
      'assign an adapter above the maximum',
      [['assign_adapter', '256']],
      'ENODEV',
      'ENODEV',
    ),
    matrixStart(
      'assign an adapter that is no number',
      [['assign_adapter', 'zz']],
      'EINVAL',
      'EINVAL',
    ),
    matrixStart(
      "assign a queue another matrix device holds, as a start's attributes",
      [
        ['assign_adapter', '5'],
        ['assign_domain', '0x47'],
      ],
      'EADDRINUSE',
      'EADDRINUSE',
    ),
    matrixStart(
      "assign a queue the host keeps, as a start's attributes",
      [
        ['assign_adapter', '3'],
        ['assign_domain', '4'],
      ],
      'EADDRNOTAVAIL',
      'EADDRNOTAVAIL',
    ),
    apAssign(
      'ap assign a queue another matrix device holds',
      [5],
      [0x47],
      'queue-in-use',
      'EADDRINUSE',
      {
        uuid: EMPTY,
        queue: '05.0047',
        owner: HOLDER,
      },
    ),
    apAssign('ap assign a queue the host keeps', [3], [4], 'queue-host-owned', 'EADDRNOTAVAIL', {
      uuid: EMPTY,
      queue: '03.0004',
    }),
  ];
}

/** The host state every operation fails against; built through the library, as a user would. */
async function prepare(s: Surfaces, dir: string): Promise<void> {
  const env = s.env;
  defineDevice(env, { uuid: DEFINED, parent: 'mdpy', type: 'mdpy-vga' });
  startDevice(env, { uuid: DEFINED });
  await s.openDevice(DEFINED);
  startDevice(env, { parent: SIOV, type: 'idxd-1wq' }); // 1 of 4 work queues
  const holder = document(dir, 'holder', MATRIX, [
    ['assign_adapter', '5'],
    ['assign_domain', '0x47'],
  ]);
  startDevice(env, { uuid: HOLDER, parent: 'matrix', json: holder.source });
  startDevice(env, { uuid: EMPTY, parent: 'matrix', type: MATRIX });
}

interface Seen {
  code: unknown;
  errno: unknown;
  context?: unknown;
}

const seen = new Map<string, Seen>();

for (const host of HOSTS) {
  describe(`one error model: ${host.name}`, { concurrency: false }, () => {
    const usable = Object.values(host.needs).every(Boolean);
    const dir = tmpDir('mdevkit-errors-docs-');
    let s: Surfaces | undefined;
    let agent: Agent | undefined;
    before(async () => {
      if (!usable) return;
      s = await host.open();
      await prepare(s, dir);
      agent = await buildAgent({
        env: s.env,
        events: { subscribe: () => () => {} },
        token: TOKEN,
        mode: 'host',
        hostLabel: host.name,
        loopbackOnly: true,
      });
    });
    after(async () => {
      await agent?.close();
      if (s !== undefined) {
        await s.closeDevice(DEFINED).catch(() => {});
        await s.close();
      }
    });

    for (const op of failingOps(dir)) {
      it(`${op.name}: ${op.code} (${op.errno}) from the library, the CLI and the API`, async (t) => {
        if (!requires(t, host.needs, 'serves a lab over FUSE in a child process')) return;
        const surfaces = s!;
        let lib: MdevError | undefined;
        try {
          op.library(surfaces.env);
        } catch (err) {
          if (!(err instanceof MdevError)) throw err;
          lib = err;
        }
        assert.ok(lib !== undefined, 'the library call should fail');
        const [tool, ...args] = op.cli;
        const cli = (await (tool === 'ap' ? surfaces.ap(args) : surfaces.mdevctl(args))) as Seen;
        const res = await agent!.app.inject(op.api);
        const api = (JSON.parse(res.body) as { error: Seen }).error;
        const got = {
          library: { code: lib.code, errno: lib.errno },
          cli: { code: cli.code, errno: cli.errno },
          api: { code: api.code, errno: api.errno },
        };
        const want = { code: op.code, errno: op.errno };
        assert.deepEqual(got, { library: want, cli: want, api: want }, res.body);
        for (const [k, v] of Object.entries(op.context ?? {})) {
          assert.equal(lib.context[k as keyof typeof lib.context], v, `library context.${k}`);
          assert.equal((cli.context as Record<string, string>)?.[k], v, `CLI context.${k}`);
          assert.equal((api.context as Record<string, string>)?.[k], v, `API context.${k}`);
        }
        assert.ok(res.statusCode >= 400 && res.statusCode < 500, `HTTP ${res.statusCode}`);
        seen.set(`${host.name}\0${op.name}`, { code: lib.code, errno: lib.errno });
      });
    }

    it('the port itself throws the same error object for the same failure', (t) => {
      if (!requires(t, host.needs, 'serves a lab over FUSE in a child process')) return;
      const port = s!.env.port;
      const file = `/sys/bus/mdev/devices/${EMPTY}/assign_adapter`;
      let raw: unknown;
      try {
        port.write(file, '256');
      } catch (err) {
        raw = err;
      }
      assert.ok(raw instanceof ErrnoError);
      // Everything a caller could look at: no emulator explanation rides along.
      const shape = {
        name: raw.name,
        code: raw.code,
        errno: raw.errno,
        path: raw.path,
        message: raw.message,
        detail: raw.detail,
        keys: Object.keys(raw).sort(),
      };
      assert.deepEqual(shape, {
        name: 'ErrnoError',
        code: 'ENODEV',
        errno: 19,
        path: file,
        message: `ENODEV: No such device, '${file}'`,
        detail: undefined,
        keys: ['code', 'detail', 'errno', 'name', 'path'],
      });
    });
  });
}

describe('one error model: both ports', () => {
  it('gave every operation the same code on both ports', (t) => {
    const names = failingOps(tmpDir()).map((op) => op.name);
    const [inProcess, fuse] = HOSTS;
    if (!requires(t, fuse!.needs, 'serves a lab over FUSE in a child process')) return;
    for (const name of names) {
      const a = seen.get(`${inProcess!.name}\0${name}`);
      const b = seen.get(`${fuse!.name}\0${name}`);
      assert.ok(a !== undefined && b !== undefined, `${name} ran on both ports`);
      assert.deepEqual(a, b, name);
    }
  });
});
