/**
 * The callout protocol (src/host/callouts.ts) and the script runners
 * (src/host/script-runner.ts).
 *
 * The protocol is a generator of script runs, so its decisions are tested
 * here without processes: a fake runner answers each request from a table,
 * and the test reads which scripts were asked what. The runners are tested
 * with real scripts: time limits, output caps, scripts that cannot run,
 * and the asynchronous runner leaving the event loop free while a script
 * runs. Against the real mdevctl 1.4.0 the same protocol is checked by the
 * callout-* differential scenarios (test/ctl/scenarios).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import {
  CAPABILITIES_OFFER,
  CalloutContext,
  CalloutTimeoutError,
  DeviceCallout,
  parseCapabilities,
  type CalloutDevice,
} from '../../src/host/callouts.js';
import {
  MdevError,
  defineDeviceAsync,
  errorRecord,
  listActiveDevices,
  listActiveDevicesAsync,
  startDevice,
  startDeviceAsync,
  startDeviceSteps,
  stopDeviceAsync,
  type HostHooks,
} from '../../src/host/devices.js';
import type { Environment } from '../../src/host/environment.js';
import {
  runAsync,
  runSync,
  type ScriptRequest,
  type ScriptResult,
  type Steps,
} from '../../src/host/script-runner.js';
import { labWith, uuidN } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';

const DEV: CalloutDevice = {
  uuid: uuidN(1),
  parent: 'P',
  type: 'T',
  configJson: '{"mdev_type":"T","start":"manual","attrs":[]}',
};

/** An environment whose callout dirs hold `scripts` (names only; the fake runner answers for them). */
function fakeEnv(scripts: Record<string, string[]>): Environment {
  const root = tmpDir('mdevkit-callout-fake-');
  const dirs = Object.keys(scripts).map((d) => path.join(root, d));
  for (const [d, names] of Object.entries(scripts)) {
    fs.mkdirSync(path.join(root, d), { recursive: true });
    for (const n of names) fs.writeFileSync(path.join(root, d, n), '');
  }
  return {
    port: undefined as never,
    root,
    configDir: path.join(root, 'etc'),
    calloutDirs: dirs,
    notifierDirs: [path.join(root, 'notifiers')],
  };
}

type Answer = Partial<Pick<ScriptResult, 'status' | 'stderr' | 'timedOut' | 'spawnError'>> & {
  stdout?: string;
};

/** Drive `steps`, answering each request with `answer`; returns the value and what was asked. */
function drive<T>(
  steps: Steps<T>,
  answer: (script: string, event: string, action: string, req: ScriptRequest) => Answer,
): { value?: T; error?: unknown; asked: string[] } {
  const asked: string[] = [];
  try {
    let next = steps.next();
    while (next.done !== true) {
      const req = next.value;
      const arg = (flag: string): string => req.args[req.args.indexOf(flag) + 1]!;
      const [event, action] = [arg('-e'), arg('-a')];
      asked.push(`${path.basename(req.script)} ${event} ${action} ${arg('-s')}`);
      const a = answer(path.basename(req.script), event, action, req);
      next = steps.next({
        status: a.timedOut === true || a.spawnError !== undefined ? undefined : (a.status ?? 0),
        stdout: Buffer.from(a.stdout ?? ''),
        stderr: a.stderr ?? '',
        timedOut: a.timedOut,
        timeoutMs: a.timedOut === true ? 1000 : undefined,
        spawnError: a.spawnError,
      });
    }
    return { value: next.value, asked };
  } catch (error) {
    return { error, asked };
  }
}

const SUPPORTS = (actions: string[], events: string[]): string =>
  JSON.stringify({ supports: { version: 2, actions, events } });
const ALL = ['start', 'stop', 'define', 'undefine', 'modify', 'attributes'];

describe('the callout protocol, step by step', () => {
  test('no versioned script: every script is asked for capabilities, then the first that claims the device runs the events', () => {
    const env = fakeEnv({ lib: ['10-other', '20-mine'], etc: ['30-old'] });
    const c = new DeviceCallout(new CalloutContext(env), () => DEV);
    const r = drive(
      c.invoke('start', false, function* () {
        return 'created';
      }),
      (s, event) => (event === 'get' ? { status: 0 } : { status: s === '10-other' ? 2 : 0 }),
    );
    assert.equal(r.value, 'created');
    assert.deepEqual(r.asked, [
      '10-other get capabilities none',
      '20-mine get capabilities none',
      '30-old get capabilities none',
      '10-other pre start none',
      '20-mine pre start none',
      // the script that claimed the device keeps it
      '20-mine post start success',
    ]);
  });

  test('a versioned script is preferred, whatever its exit status, and only it runs the events', () => {
    const env = fakeEnv({ lib: ['10-plain', '20-versioned'] });
    const c = new DeviceCallout(new CalloutContext(env), () => DEV);
    let offer = '';
    const r = drive(
      c.invoke('define', false, function* () {}),
      (s, event, _action, req) => {
        if (event === 'get' && s === '20-versioned') {
          offer = req.stdin ?? '';
          // trailing NULs are dropped, as mdevctl does
          return { status: 1, stdout: `${SUPPORTS(ALL, ['pre', 'post'])}\0\0` };
        }
        return { status: s === '20-versioned' ? 0 : 1 };
      },
    );
    assert.equal(r.error, undefined, String(r.error));
    assert.equal(offer, CAPABILITIES_OFFER);
    assert.deepEqual(r.asked.slice(2), [
      '20-versioned pre define none',
      '20-versioned post define success',
    ]);
  });

  test('a versioned script without the action refuses it, naming the script; --force warns and goes on', () => {
    const env = fakeEnv({ lib: ['v'] });
    const warnings: string[] = [];
    const ctx = new CalloutContext(env, undefined, (m) => warnings.push(m));
    const answer = (_s: string, event: string): Answer =>
      event === 'get' ? { stdout: SUPPORTS(['start'], ['pre', 'post']) } : { status: 0 };
    const refused = drive(
      new DeviceCallout(ctx, () => DEV).invoke('modify', false, function* () {}),
      answer,
    );
    assert.ok(refused.error instanceof MdevError);
    assert.equal(refused.error.code, 'callout-refused');
    assert.match(refused.error.message, /^Script ".*\/v" does not support action 'Modify'$/);
    const forced = drive(
      new DeviceCallout(ctx, () => DEV).invoke('modify', true, function* () {}),
      answer,
    );
    assert.equal(forced.error, undefined);
    assert.match(
      warnings[0]!,
      /^Forcing operation 'modify' despite callout failure\. Error was: Script /,
    );
    assert.deepEqual(forced.asked, [], 'the capabilities answer is remembered for the operation');
  });

  test('a refusing pre stops the operation (no post), notifiers still run with state none', () => {
    const env = fakeEnv({ lib: ['veto'] });
    fs.mkdirSync(env.notifierDirs[0]!);
    fs.writeFileSync(path.join(env.notifierDirs[0]!, 'tell'), '');
    let ran = false;
    const r = drive(
      new DeviceCallout(new CalloutContext(env), () => DEV).invoke('stop', false, function* () {
        ran = true;
      }),
      (s, event) => (event === 'pre' ? { status: 3, stderr: 'no\n' } : { status: 0 }),
    );
    assert.equal(ran, false);
    assert.ok(r.error instanceof MdevError);
    assert.equal(errorRecord(r.error)!.context!.exitStatus, '3');
    assert.match(r.error.message, /^Script '".*\/veto"' failed with status '3'$/);
    assert.deepEqual(r.asked.slice(1), ['veto pre stop none', 'tell notify stop none']);
  });

  test("get attributes: NUL-terminated JSON, '[{}]', nothing, and not JSON", () => {
    const env = fakeEnv({ lib: ['a'] });
    const attrs = (stdout: string) =>
      drive(new DeviceCallout(new CalloutContext(env), () => DEV).getAttributes(), (_s, event) =>
        event === 'get' && stdout !== '<none>' ? { stdout } : { stdout: '' },
      );
    assert.deepEqual(attrs('[{"a":"1"}]\0').value, [{ a: '1' }]);
    assert.deepEqual(attrs('[{}]').value, []);
    assert.equal(attrs('').value, null);
    const bad = attrs('not json').error;
    assert.ok(bad instanceof MdevError && bad.code === 'callout-failed');
    assert.equal(bad.message, 'Invalid JSON received from callout script');
  });

  test('capabilities are read as mdevctl reads them', () => {
    const cap = (s: string) => parseCapabilities(Buffer.from(s));
    assert.deepEqual(cap(SUPPORTS(['start', 'fly'], ['pre', 'later'])), {
      version: 2,
      actions: ['start', 'unknown'],
      events: ['pre', 'unknown'],
    });
    assert.equal(cap('{"supports":null}'), undefined);
    assert.equal(cap('{"supports":{"version":-1,"actions":[],"events":[]}}'), undefined);
    assert.equal(cap('{"supports":{"version":2,"actions":[1],"events":[]}}'), undefined);
    assert.equal(cap('{"supports":{"version":2,"actions":[]}}'), undefined);
    assert.equal(parseCapabilities(Buffer.from([0xff, 0xfe])), undefined, 'not UTF-8: no panic');
  });

  test('a time limit: in pre it fails the operation naming the script; in post it is a warning', () => {
    const env = fakeEnv({ lib: ['slow'] });
    const warnings: string[] = [];
    const ctx = new CalloutContext(env, undefined, (m) => warnings.push(m));
    const inPre = drive(
      new DeviceCallout(ctx, () => DEV).invoke('start', false, function* () {}),
      (_s, e) => (e === 'pre' ? { timedOut: true } : { status: 0 }),
    );
    assert.ok(inPre.error instanceof CalloutTimeoutError);
    assert.equal(inPre.error.code, 'callout-timeout');
    assert.equal(inPre.error.errno, 'ETIMEDOUT');
    assert.match(
      inPre.error.message,
      /^Callout script ".*\/slow" did not finish pre start within 1 s/,
    );
    assert.equal(errorRecord(inPre.error)!.context!.script, path.join(env.calloutDirs[0]!, 'slow'));
    const inPost = drive(
      new DeviceCallout(ctx, () => DEV).invoke('start', false, function* () {
        return 1;
      }),
      (_s, e) => (e === 'post' ? { timedOut: true } : { status: 0 }),
    );
    assert.equal(inPost.value, 1);
    assert.match(warnings[0]!, /did not finish post start/);
  });
});

// ---------------------------------------------------------------- with processes

/** An in-process lab whose callout directory holds `scripts` (shell bodies). */
function labEnv(scripts: Record<string, string>): {
  env: Environment;
  parent: string;
  type: string;
  dir: string;
} {
  const lab = labWith([{ driver: 'mtty' }]);
  const root = tmpDir('mdevkit-callout-');
  const dir = path.join(root, 'callouts');
  fs.mkdirSync(dir, { recursive: true });
  fs.mkdirSync(path.join(root, 'notifiers'));
  fs.mkdirSync(path.join(root, 'etc'));
  for (const [name, body] of Object.entries(scripts)) {
    fs.writeFileSync(path.join(dir, name), `#!/bin/sh\n${body}`, { mode: 0o755 });
  }
  const parent = lab.port.list('/sys/class/mdev_bus')[0]!;
  const type = lab.port.list(`/sys/class/mdev_bus/${parent}/mdev_supported_types`).sort()[0]!;
  const env: Environment = {
    port: lab.port,
    root,
    configDir: path.join(root, 'etc'),
    calloutDirs: [dir],
    notifierDirs: [path.join(root, 'notifiers')],
  };
  return { env, parent, type, dir };
}

describe('the script runners', { timeout: 60_000 }, () => {
  test('a hung pre script: the sync runner kills it at the time limit and the start fails, naming it', () => {
    // The script's child keeps the pipes open: the runner must not wait for it.
    const { env, parent, type, dir } = labEnv({
      'hang.sh': 'case "$*" in *"-e pre"*) sleep 30 & sleep 30 ;; esac\nexit 0\n',
    });
    const hooks: HostHooks = { calloutTimeoutMs: 300 };
    assert.throws(
      () => startDevice(env, { uuid: uuidN(1), parent, type }, hooks),
      (err: unknown) =>
        err instanceof CalloutTimeoutError &&
        err.script === path.join(dir, 'hang.sh') &&
        err.message.includes('did not finish pre start within 300 ms'),
    );
    assert.equal(env.port.kind(`/sys/bus/mdev/devices/${uuidN(1)}`), null, 'nothing was created');
  });

  test('the async runner leaves the event loop free while a script runs, and kills its whole process group at the time limit', async () => {
    const { env, parent, type, dir } = labEnv({
      'slow.sh':
        'case "$*" in *"-e pre"*) sleep 30 & echo $! > "$(dirname "$0")/child.pid"; wait ;; esac\nexit 0\n',
    });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    try {
      await assert.rejects(
        startDeviceAsync(env, { uuid: uuidN(2), parent, type }, { calloutTimeoutMs: 500 }),
        (err: unknown) => err instanceof CalloutTimeoutError && err.code === 'callout-timeout',
      );
    } finally {
      clearInterval(timer);
    }
    assert.ok(ticks > 5, `the event loop ran meanwhile (${ticks} ticks)`);
    const child = Number(fs.readFileSync(path.join(dir, 'child.pid'), 'utf8'));
    // killed with its group: gone, or dead and waiting to be reaped
    const dead = (): boolean => {
      try {
        return /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${child}/stat`, 'utf8'));
      } catch {
        return true;
      }
    };
    let alive = true;
    for (let i = 0; i < 50 && alive; i++) {
      alive = !dead();
      if (alive) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(alive, false, `the script's child ${child} was killed too`);
  });

  test('the sync runner blocks the event loop (what the CLI wants), the async one does not', async () => {
    const { env, parent, type } = labEnv({
      'nap.sh': 'case "$*" in *"-e pre"*) sleep 0.3 ;; esac\nexit 0\n',
    });
    const count = async (run: () => Promise<unknown>): Promise<number> => {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 10);
      await run();
      clearInterval(timer);
      return ticks;
    };
    const sync = await count(async () => startDevice(env, { uuid: uuidN(3), parent, type }));
    const async_ = await count(() => startDeviceAsync(env, { uuid: uuidN(4), parent, type }));
    assert.equal(sync, 0);
    assert.ok(async_ > 5, `${async_} ticks`);
    const running = [...listActiveDevices(env).values()].flat().map((d) => d.uuid);
    assert.deepEqual(running.sort(), [uuidN(3), uuidN(4)]);
    await stopDeviceAsync(env, uuidN(4));
    assert.deepEqual(
      [...(await listActiveDevicesAsync(env)).values()].flat().map((d) => d.uuid),
      [uuidN(3)],
    );
  });

  test('a script that prints without end is killed at the output cap', () => {
    const { env, parent, type } = labEnv({
      'chatty.sh': 'case "$*" in *"-e pre"*) yes ;; esac\nexit 0\n',
    });
    const steps = (async: boolean) =>
      async
        ? runAsync(startStepsWithCap(env, parent, type, uuidN(5)), { maxOutputBytes: 64 * 1024 })
        : runSync(startStepsWithCap(env, parent, type, uuidN(6)), { maxOutputBytes: 64 * 1024 });
    assert.throws(
      () => steps(false),
      (err: unknown) => err instanceof MdevError && err.code === 'callout-failed',
    );
    return assert.rejects(
      steps(true) as Promise<unknown>,
      (err: unknown) => err instanceof MdevError && err.code === 'callout-failed',
    );
  });

  test('scripts that cannot run are passed over; the next one answers', async () => {
    const { env, parent, type, dir } = labEnv({
      '20-ok.sh': `echo "$*" >> "$(dirname "$0")/log"\nexit 0\n`,
    });
    fs.writeFileSync(path.join(dir, '10-not-executable'), '#!/bin/sh\nexit 1\n', { mode: 0o644 });
    fs.symlinkSync('nowhere', path.join(dir, '15-dangling'));
    fs.mkdirSync(path.join(dir, '17-a-directory'));
    const d = await defineDeviceAsync(env, { uuid: uuidN(7), parent, type });
    assert.equal(d.defined, true);
    const log = fs.readFileSync(path.join(dir, 'log'), 'utf8');
    assert.match(log, /-e pre -a define/);
    assert.match(log, /-e post -a define -s success/);
  });
});

/** startDevice's steps, for driving with a runner of the test's choosing. */
function startStepsWithCap(env: Environment, parent: string, type: string, uuid: string) {
  return startDeviceSteps(env, { uuid, parent, type });
}
