import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { InjectOptions } from 'fastify';
import { buildAgent, type Agent } from '../../src/agent/server.js';
import { reportError, runAt } from '../../src/cli/command.js';
import { VF } from '../../src/cli/vf.js';
import type { ErrnoCode } from '../../src/common/errno.js';
import type { CommandIo } from '../../src/ctl/io.js';
import { environmentAt, type Environment } from '../../src/host/environment.js';
import { MdevError } from '../../src/host/errors.js';
import { createVgpu, removeVgpu, stopVgpu } from '../../src/host/vf-vgpu.js';
import { controlCall } from '../../src/sim/control.js';
import { FUSE_NEEDS, serveLab, writeProfile } from '../fuse/served-lab.js';
import { requires } from '../support/capabilities.js';
import { MDEVKIT_BIN } from '../support/cli.js';
import { labWith } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';

/**
 * NVIDIA VF vGPU failures answer the same code, errno and words through
 * the host library, the CLI (MDEVKIT_ERROR_FORMAT=json) and the API, on
 * the in-process port and over a FUSE-served lab: the three refusals the
 * issue names ("VFs are not enabled", a size that does not fit, "the VF is
 * in use by a VM") and another owner's vGPU.
 */

const TOKEN = 'd'.repeat(64);
const GPU = '0000:41:00.0';
const OTHER = '0000:42:00.0';
const DEVICES = [{ driver: 'nvidia-l40s', options: { gpus: [GPU, OTHER], vfs: 4 } }];
/** A 12Q vGPU on GPU's VF 0, opened by a "VM"; made by config:x. */
const HELD = '0f160001-0000-4000-8000-000000000001';

interface Surfaces {
  readonly env: Environment;
  cli(args: string[]): unknown;
  open(address: string): Promise<void>;
  close(address: string): Promise<void>;
  sriovManage(target: string): Promise<void>;
  done(): Promise<void>;
}

function errorLine(status: number | null, stderr: string): unknown {
  assert.notEqual(status, 0, 'the command should fail');
  const line = stderr.trim().split('\n').at(-1) ?? '';
  return (JSON.parse(line) as { error: unknown }).error;
}

const HOSTS: { name: string; needs: Record<string, boolean>; open(): Promise<Surfaces> }[] = [
  {
    name: 'in-process port',
    needs: {},
    async open() {
      const lab = labWith(DEVICES);
      const env = environmentAt(tmpDir('mdevkit-vf-errors-'), lab.port);
      fs.mkdirSync(env.configDir, { recursive: true });
      return {
        env,
        cli(args) {
          let err = '';
          const io: CommandIo = {
            stdout: { write: () => true },
            stderr: { write: (s: string) => (err += s) },
            env: { MDEVKIT_ERROR_FORMAT: 'json', USER: 'tester' },
            cwd: '/',
            readStdin: () => '',
          };
          let status: number;
          try {
            status = runAt(['vf'], VF, io, args, { host: () => env }) as number;
          } catch (e) {
            status = reportError(io, e);
          }
          return errorLine(status, err);
        },
        open: async (a) => void lab.open(a),
        close: async (a) => void lab.close(a),
        sriovManage: async (t) => void lab.sriovManage(true, t),
        done: async () => {},
      };
    },
  },
  {
    name: 'node:fs port over a FUSE-served lab',
    needs: FUSE_NEEDS,
    async open() {
      const lab = await serveLab(['--profile', writeProfile(DEVICES)]);
      const env = environmentAt(lab.dir);
      const sock = `${lab.dir}/lab.sock`;
      return {
        env,
        cli(args) {
          const r = spawnSync(process.execPath, [MDEVKIT_BIN, 'vf', ...args, '--root', lab.dir], {
            encoding: 'utf8',
            env: { ...process.env, MDEVKIT_ERROR_FORMAT: 'json', USER: 'tester' },
          });
          return errorLine(r.status, r.stderr);
        },
        open: async (a) => void (await controlCall(sock, { op: 'open', device: a })),
        close: async (a) => void (await controlCall(sock, { op: 'close', device: a })),
        sriovManage: async (t) =>
          void (await controlCall(sock, { op: 'sriov-manage', enable: true, target: t })),
        done: () => lab.close(),
      };
    },
  },
];

interface Failing {
  readonly name: string;
  readonly code: string;
  readonly errno: ErrnoCode;
  readonly message: string | RegExp;
  library(env: Environment): unknown;
  readonly cli: string[];
  readonly api: InjectOptions;
}

const auth = { authorization: `Bearer ${TOKEN}`, 'x-mdevkit-client': 'tester' };
const FAILING: Failing[] = [
  {
    name: 'a vGPU on a GPU whose VFs are not enabled',
    code: 'vf-not-enabled',
    errno: 'ENODEV',
    message: 'VFs are not enabled on 0000:42:00.0: run sriov-manage -e',
    library: (env) => createVgpu(env, { gpu: OTHER, type: 'L40S-12Q', owner: 'user:tester' }),
    cli: ['create', '--gpu', OTHER, '--type', 'L40S-12Q'],
    api: {
      method: 'POST',
      url: '/api/v1/vf-vgpus',
      headers: auth,
      payload: { gpu: OTHER, type: 'L40S-12Q' },
    },
  },
  {
    name: 'a size the GPU does not run',
    code: 'vgpu-size-mismatch',
    errno: 'EIO',
    message: 'L40S-24Q does not fit: this GPU runs 12 GB types',
    library: (env) => createVgpu(env, { gpu: GPU, type: 'L40S-24Q', owner: 'user:tester' }),
    cli: ['create', '--gpu', GPU, '--type', 'L40S-24Q'],
    api: {
      method: 'POST',
      url: '/api/v1/vf-vgpus',
      headers: auth,
      payload: { gpu: GPU, type: 'L40S-24Q' },
    },
  },
  {
    name: "destroying a vGPU while a VM uses its VF (the driver's EBUSY)",
    code: 'vf-in-use',
    errno: 'EBUSY',
    message: /the VF 0000:41:00\.4 is in use by a VM$/,
    library: (env) => stopVgpu(env, HELD),
    cli: ['stop', HELD],
    api: { method: 'POST', url: `/api/v1/vf-vgpus/${HELD}/stop`, headers: auth },
  },
  {
    name: "removing another owner's vGPU",
    code: 'foreign-vgpu',
    errno: 'EPERM',
    message: new RegExp(
      `^vGPU ${HELD} belongs to config:x, not (user|api):tester; use --force to remove it anyway$`,
    ),
    library: (env) => removeVgpu(env, HELD, { as: 'user:tester' }),
    cli: ['remove', HELD, '--owner', 'user:tester'],
    api: {
      method: 'DELETE',
      url: `/api/v1/vf-vgpus/${HELD}`,
      headers: { ...auth, 'x-mdevkit-client': 'tester' },
    },
  },
];

for (const host of HOSTS) {
  describe(`VF vGPU errors, one model: ${host.name}`, () => {
    let s: Surfaces | undefined;
    let agent: Agent | undefined;
    const runnable = Object.values(host.needs).every(Boolean);
    before(async () => {
      if (!runnable) return;
      s = await host.open();
      await s.sriovManage(GPU);
      createVgpu(s.env, { gpu: GPU, type: 'L40S-12Q', owner: 'config:x', uuid: HELD });
      await s.open('0000:41:00.4');
      agent = await buildAgent({
        env: s.env,
        events: { subscribe: () => () => {} },
        token: TOKEN,
        mode: 'host',
        hostLabel: 'test',
      });
    });
    after(async () => {
      await agent?.close();
      if (s !== undefined) {
        await s.close('0000:41:00.4');
        await s.done();
      }
    });

    for (const op of FAILING) {
      it(`${op.name}: ${op.code} (${op.errno}) from the library, the CLI and the API`, async (t) => {
        if (!requires(t, host.needs, 'serves the lab over FUSE')) return;
        let lib: unknown;
        try {
          op.library(s!.env);
        } catch (e) {
          lib = e;
        }
        assert.ok(lib instanceof MdevError, `the library refuses: ${String(lib)}`);
        assert.deepEqual([lib.code, lib.errno], [op.code, op.errno]);
        const cli = s!.cli(op.cli) as { code: string; errno: string; message: string };
        assert.deepEqual([cli.code, cli.errno], [op.code, op.errno]);
        const api = await agent!.app.inject(op.api);
        const body = JSON.parse(api.body) as {
          error: { code: string; errno: string; message: string };
        };
        assert.deepEqual([body.error.code, body.error.errno], [op.code, op.errno]);
        // The API's message adds the kernel's words for its errno (the cause chain).
        for (const m of [
          lib.message,
          cli.message.split(': Device or')[0]!,
          body.error.message.split(': Device or')[0]!,
        ]) {
          if (typeof op.message === 'string') assert.equal(m, op.message);
          else assert.match(m, op.message);
        }
      });
    }
  });
}
