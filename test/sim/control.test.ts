import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  ControlUnavailableError,
  controlCall,
  controlRequest,
  startControlServer,
  type ControlServer,
} from '../../src/sim/control.js';
import type { Lab } from '../../src/sim/lab.js';
import { FUSE_NEEDS, serveLab } from '../fuse/served-lab.js';
import { requires } from '../support/capabilities.js';
import { MDEVKIT_BIN, runMdevkit, type RunResult } from '../support/cli.js';
import { labWith, U1, U2 } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';

const IGD = '0000:00:02.0';
const V8 = `/sys/class/mdev_bus/${IGD}/mdev_supported_types/i915-GVTg_V5_8`;
const dev = (u: string): string => `/sys/bus/mdev/devices/${u}`;

const servers: ControlServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

/** A GVT-g lab with its control server on a fresh socket. */
async function servedLab(): Promise<{ lab: Lab; dir: string; sock: string }> {
  const lab = labWith([{ driver: 'gvt' }]);
  const dir = tmpDir('mdevkit-control-');
  const sock = path.join(dir, 'lab.sock');
  servers.push(await startControlServer(lab, sock));
  return { lab, dir, sock };
}

const errnoOf = async (p: Promise<unknown>): Promise<string | undefined> => {
  try {
    await p;
    return undefined;
  } catch (err) {
    return String((err as { code?: unknown }).code);
  }
};

/** bin/mdevkit, asynchronously: the control server runs in this process's event loop. */
function mdevkitAsync(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MDEVKIT_BIN, ...args], {
      env: { ...process.env, MDEVKIT_LAB: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ status: code ?? -1, stdout, stderr }));
  });
}

describe('emulator control socket', () => {
  it('opens and releases devices; while open, remove and aggregation are EBUSY', async () => {
    const { lab, sock } = await servedLab();
    const { port } = lab;
    port.write(`${V8}/create`, U1);
    const opened = await controlCall(sock, { op: 'open', uuid: U1.toUpperCase() });
    assert.deepEqual(opened, { ok: true, uuid: U1, openCount: 1 });
    assert.equal(lab.core.device(U1)?.isOpen, true);
    assert.throws(() => port.write(`${dev(U1)}/remove`, '1'), { code: 'EBUSY' });
    assert.throws(() => port.write(`${dev(U1)}/mdev/aggregation/value`, '2'), { code: 'EBUSY' });
    const status = await controlCall(sock, { op: 'status' });
    assert.deepEqual(status['devices'], [
      { uuid: U1, parent: IGD, type: 'i915-GVTg_V5_8', openCount: 1, aggregation: 1 },
    ]);
    assert.equal(status['profile'], 'test');
    await controlCall(sock, { op: 'close', uuid: U1 });
    port.write(`${dev(U1)}/mdev/aggregation/value`, '2');
    port.write(`${dev(U1)}/remove`, '1');
    assert.equal(port.kind(dev(U1)), null);
  });

  it('answers failures with the errno, never by dropping the connection', async () => {
    const { lab, sock } = await servedLab();
    lab.port.write(`${V8}/create`, U1);
    assert.equal(await errnoOf(controlCall(sock, { op: 'open', uuid: U2 })), 'ENODEV');
    assert.equal(await errnoOf(controlCall(sock, { op: 'close', uuid: U1 })), 'EINVAL');
    assert.equal(await errnoOf(controlCall(sock, { op: 'open', uuid: 'nope' })), 'EINVAL');
    const res = await controlRequest(sock, { op: 'reboot', id: 7 });
    assert.equal(res.ok, true);
    assert.equal(res.id, 7);
    assert.equal(lab.core.device(U1), undefined, 'a reboot takes every active device');
    assert.equal(await errnoOf(controlCall(sock, { op: 'open', uuid: U1 })), 'ENODEV');
    // Raw protocol: several requests on one connection, answered in order,
    // bad lines included.
    const lines = await rawExchange(sock, [
      'not json',
      '[1]',
      JSON.stringify({ op: 'fly', id: 'a' }),
      JSON.stringify({ op: 'dmesg', after: -1 }),
      JSON.stringify({ op: 'status', id: 'b' }),
    ]);
    assert.equal(lines.length, 5);
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      parsed.map((p) => (p['ok'] ? 'ok' : (p['error'] as { code: string }).code)),
      ['EINVAL', 'EINVAL', 'EINVAL', 'EINVAL', 'ok'],
    );
    assert.equal(parsed[2]!['id'], 'a');
    assert.equal((parsed[2]!['error'] as { errno: number }).errno, 22);
    assert.equal(parsed[4]!['id'], 'b');
  });

  it('logs opens and releases in the emulated dmesg', async () => {
    const { lab, sock } = await servedLab();
    lab.port.write(`${V8}/create`, U1);
    await controlCall(sock, { op: 'open', uuid: U1 });
    await controlCall(sock, { op: 'open', uuid: U1 });
    const nested = await controlCall(sock, { op: 'close', uuid: U1 });
    assert.equal(nested['openCount'], 1, 'opens nest');
    const { lines } = (await controlCall(sock, { op: 'dmesg' })) as {
      lines: { seq: number; message: string }[];
    };
    const mine = lines.filter((l) => l.message.includes(U1)).map((l) => l.message);
    assert.deepEqual(mine, [
      `mdev ${U1}: opened by a VM`,
      `mdev ${U1}: opened by a VM`,
      `mdev ${U1}: released by a VM`,
    ]);
    const last = lines.at(-1)!.seq;
    const later = (await controlCall(sock, { op: 'dmesg', after: last })) as { lines: unknown[] };
    assert.deepEqual(later.lines, []);
  });

  it('replaces a stale socket, refuses a live one and any other file', async () => {
    const dir = tmpDir('mdevkit-control-');
    const sock = path.join(dir, 'lab.sock');
    await leaveStaleSocket(sock);
    assert.ok(fs.statSync(sock).isSocket(), 'a socket file nobody serves');
    const lab = labWith([{ driver: 'gvt' }]);
    const server = await startControlServer(lab, sock);
    servers.push(server);
    assert.equal((await controlCall(sock, { op: 'status' }))['profile'], 'test');
    assert.equal((fs.statSync(sock).mode & 0o777).toString(8), '600');
    await assert.rejects(startControlServer(lab, sock), { code: 'EADDRINUSE' });
    const file = path.join(dir, 'plain');
    fs.writeFileSync(file, '');
    await assert.rejects(startControlServer(lab, file), { code: 'EEXIST' });
    await server.close();
    assert.equal(fs.existsSync(sock), false, 'close removes the socket');
  });

  it('tells a client that no lab is serving', async () => {
    const dir = tmpDir('mdevkit-control-');
    await assert.rejects(
      controlRequest(path.join(dir, 'lab.sock'), { op: 'status' }),
      (err: unknown) => err instanceof ControlUnavailableError && err.code === 'ENOENT',
    );
  });
});

describe('mdevkit lab open|close', () => {
  it('opens and closes a device of a served lab', async () => {
    const { lab, dir } = await servedLab();
    lab.port.write(`${V8}/create`, U1);
    let r = await mdevkitAsync(['lab', 'open', U1, '--lab', dir]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(lab.core.device(U1)?.openCount, 1);
    assert.throws(() => lab.port.write(`${dev(U1)}/remove`, '1'), { code: 'EBUSY' });
    // $MDEVKIT_LAB names the lab when --lab is not given (lab shell sets it).
    r = await mdevkitAsync(['lab', 'close', U1], { MDEVKIT_LAB: dir });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(lab.core.device(U1)?.openCount, 0);
    // Closing what is not open: the emulator's errno, in words.
    r = await mdevkitAsync(['lab', 'close', U1, '--lab', dir]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`^mdevkit: cannot close ${U1}: Invalid argument`));
    r = await mdevkitAsync(['lab', 'open', U2, '--mount', dir]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot open .*: No such device \(no mediated device/);
  });

  it('explains usage mistakes and a lab that is not running', async () => {
    const dir = tmpDir('mdevkit-control-');
    let r = await mdevkitAsync(['lab', 'open', U1, '--lab', dir]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no lab is running at .*mdevkit lab serve --mount/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    r = await mdevkitAsync(['lab', 'open', 'not-a-uuid', '--lab', dir]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /'not-a-uuid' is not a UUID/);
    r = await mdevkitAsync(['lab', 'open', U1]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /which lab\? give --lab DIR or set MDEVKIT_LAB/);
    r = await mdevkitAsync(['lab', 'close', '--help']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^usage: mdevkit lab close UUID/);
  });
});

/** A server process killed outright leaves its socket file behind, as a crashed lab would. */
describe('a served lab (FUSE): the VM holds a device, tools see EBUSY through real files', () => {
  it('open via the CLI, then remove / aggregation / vgpu_params are EBUSY until close', async (t) => {
    if (!requires(t, FUSE_NEEDS, 'serves the lab over FUSE')) return;
    const served = await serveLab();
    t.after(() => served.close());
    const sys = served.sys;
    const gvt = `${sys}/class/mdev_bus/${IGD}/mdev_supported_types/i915-GVTg_V5_8`;
    const m60 = `${sys}/class/mdev_bus/0000:85:00.0/mdev_supported_types/nvidia-12`;
    fs.writeFileSync(`${gvt}/create`, U1);
    fs.writeFileSync(`${m60}/create`, U2);
    const fsErrno = (fn: () => void): string | undefined => {
      try {
        fn();
        return undefined;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code;
      }
    };
    const devices = `${sys}/bus/mdev/devices`;
    for (const u of [U1, U2]) {
      const r = runMdevkit(['lab', 'open', u, '--lab', served.dir]);
      assert.equal(r.status, 0, r.stderr);
    }
    assert.equal(
      fsErrno(() => fs.writeFileSync(`${devices}/${U1}/remove`, '1')),
      'EBUSY',
    );
    assert.equal(
      fsErrno(() => fs.writeFileSync(`${devices}/${U1}/mdev/aggregation/value`, '2')),
      'EBUSY',
    );
    assert.equal(
      fsErrno(() =>
        fs.writeFileSync(`${devices}/${U2}/nvidia/vgpu_params`, 'frame_rate_limiter=0'),
      ),
      'EBUSY',
    );
    for (const u of [U1, U2]) {
      const r = runMdevkit(['lab', 'close', u], {
        env: { ...process.env, MDEVKIT_LAB: served.dir },
      });
      assert.equal(r.status, 0, r.stderr);
    }
    fs.writeFileSync(`${devices}/${U1}/mdev/aggregation/value`, '2');
    assert.equal(fs.readFileSync(`${devices}/${U1}/mdev/aggregation/value`, 'utf8'), '2\n');
    fs.writeFileSync(`${devices}/${U1}/remove`, '1');
    fs.writeFileSync(`${devices}/${U2}/remove`, '1');
    assert.deepEqual(fs.readdirSync(devices), []);
  });
});

async function leaveStaleSocket(sock: string): Promise<void> {
  const child = spawn(process.execPath, [
    '-e',
    "require('net').createServer().listen(process.argv[1], () => console.log('up'))",
    sock,
  ]);
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('error', reject);
  });
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

/** Send lines on one connection; collect as many response lines. */
function rawExchange(sock: string, lines: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const c = net.connect(sock);
    let buf = '';
    c.setEncoding('utf8');
    c.once('connect', () => c.write(lines.map((l) => `${l}\n`).join('')));
    c.on('data', (d: string) => {
      buf += d;
      const got = buf.split('\n').filter((l) => l !== '');
      if (got.length >= lines.length) {
        c.destroy();
        resolve(got);
      }
    });
    c.once('error', reject);
  });
}
