import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ConfigDirWatcher,
  SysfsPoller,
  ueventSource,
  type HostEvent,
} from '../../src/agent/events.js';
import { writeConfig } from '../../src/host/config-store.js';
import type { Uevent } from '../../src/sim/core/kernel.js';
import { removeDevice, createDevice } from '../../src/host/sysfs-model.js';
import { labWith, U1, U2, U3 } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { AUTH, labAgent, openEventStream, type LabAgent } from './support.js';

describe('uevents become host events', () => {
  test('mdev add/remove and parent change, as udev sees them; the type from sysfs', () => {
    const lab = labWith([{ driver: 'mdpy' }, { driver: 'mtty' }]);
    createDevice(lab.port, 'mtty', 'mtty-2', U2); // older than the listener
    const uevents: Uevent[] = [];
    lab.kernel.onUevent((u) => uevents.push(u));
    const seen: HostEvent[] = [];
    ueventSource((l) => lab.kernel.onUevent(l), lab.port).subscribe((e) => seen.push(e));
    createDevice(lab.port, 'mdpy', 'mdpy-hd', U1);
    removeDevice(lab.port, U1);
    removeDevice(lab.port, U2);
    lab.unplugAll();
    lab.plugAll();
    assert.deepEqual(seen, [
      { kind: 'device-created', uuid: U1, parent: 'mdpy', type: 'mdpy-hd' },
      { kind: 'device-removed', uuid: U1, parent: 'mdpy', type: 'mdpy-hd' },
      { kind: 'device-removed', uuid: U2, parent: 'mtty', type: 'mtty-2' },
      // Unplugged in the reverse order of plugging, as modules unload.
      { kind: 'parent-unregistered', parent: 'mtty' },
      { kind: 'parent-unregistered', parent: 'mdpy' },
      { kind: 'parent-registered', parent: 'mdpy' },
      { kind: 'parent-registered', parent: 'mtty' },
    ]);
    // As from a kernel: the type is in sysfs, no uevent names it.
    const mdevEvents = uevents.filter((u) => u.subsystem === 'mdev');
    assert.equal(mdevEvents.length, 6, 'add, bind, unbind, remove; unbind, remove');
    for (const u of mdevEvents) {
      assert.deepEqual(u.env, {}, `${u.action} ${u.devpath}`);
      assert.ok(!u.properties.some(([k]) => k === 'MDEV_TYPE'), `${u.action} ${u.devpath}`);
    }
  });
});

describe('the sysfs poller (a real host, where sysfs cannot be watched)', () => {
  test('reports what changed between two looks, through the port only', () => {
    const lab = labWith([{ driver: 'mdpy' }, { driver: 'mtty' }]);
    createDevice(lab.port, 'mdpy', 'mdpy-hd', U1);
    const poller = new SysfsPoller(lab.port, 0);
    const seen: HostEvent[] = [];
    poller.subscribe((e) => seen.push(e));
    poller.poll();
    assert.deepEqual(seen, [], 'nothing changed since it was made');
    createDevice(lab.port, 'mtty', 'mtty-1', U2);
    removeDevice(lab.port, U1);
    poller.poll();
    assert.deepEqual(seen, [
      { kind: 'device-removed', uuid: U1, parent: 'mdpy', type: 'mdpy-hd' },
      { kind: 'device-created', uuid: U2, parent: 'mtty', type: 'mtty-1' },
    ]);
    seen.length = 0;
    lab.unplugAll(); // the module goes: its devices with it, then the parents
    poller.poll();
    assert.deepEqual(seen, [
      { kind: 'device-removed', uuid: U2, parent: 'mtty', type: 'mtty-1' },
      { kind: 'parent-unregistered', parent: 'mdpy' },
      { kind: 'parent-unregistered', parent: 'mtty' },
    ]);
    poller.close();
  });
});

describe('the config dir watcher', () => {
  const dir = tmpDir('mdevkit-watch-');
  test('defined, modified, undefined — from files written by anyone', async () => {
    // fs.watch wakes it at once; the 1 s rescan is the fallback where inotify is missing.
    const watcher = new ConfigDirWatcher(dir, 1000);
    const seen: HostEvent[] = [];
    watcher.subscribe((e) => seen.push(e));
    const waitFor = async (n: number): Promise<void> => {
      const deadline = Date.now() + 5000;
      while (seen.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    };
    writeConfig(dir, 'mdpy', U1, { mdevType: 'mdpy-hd', start: 'manual', attrs: [] });
    await waitFor(1);
    assert.deepEqual(seen, [{ kind: 'device-defined', parent: 'mdpy', uuid: U1 }]);
    writeConfig(dir, 'mdpy', U1, { mdevType: 'mdpy-hd', start: 'auto', attrs: [] });
    await waitFor(2);
    assert.deepEqual(seen[1], { kind: 'device-modified', parent: 'mdpy', uuid: U1 });
    fs.unlinkSync(nodePath.join(dir, 'mdpy', U1));
    await waitFor(3);
    assert.deepEqual(seen[2], { kind: 'device-undefined', parent: 'mdpy', uuid: U1 });
    // A crash's temp file is not a definition.
    fs.writeFileSync(nodePath.join(dir, 'mdpy', `.#${U2}.1.0`), '{');
    watcher.rescan();
    assert.equal(seen.length, 3);
    watcher.close();
  });
});

describe('the event stream (SSE) of a listening agent', () => {
  const stateDir = tmpDir('mdevkit-agent-');
  let la: LabAgent;
  let base: string;
  before(async () => {
    la = await labAgent(stateDir);
    await la.agent.app.listen({ host: '127.0.0.1', port: 0 });
    const addr = la.agent.app.server.address() as { port: number };
    base = `http://127.0.0.1:${addr.port}`;
  });
  after(() => la.agent.close());

  const post = (path: string, body: unknown) =>
    fetch(`${base}${path}`, {
      method: 'POST',
      headers: { ...AUTH, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  test('created, defined, modified, removed, undefined, parent changes — in order', async (t) => {
    const es = openEventStream(`${base}/api/v1/events`);
    t.after(() => es.close());
    assert.equal(await es.ready, 200);
    const r = await post('/api/v1/devices', {
      uuid: U1,
      parent: 'mdpy',
      type: 'mdpy-hd',
      activate: true,
    });
    assert.equal(r.status, 201);
    const kinds = async (n: number): Promise<string[]> => {
      const out: string[] = [];
      for (let i = 0; i < n; i++) out.push((await es.next()).event);
      return out;
    };
    // The uevent arrives as the device is made; the definition when the watcher sees the file.
    assert.deepEqual((await kinds(2)).sort(), ['device-created', 'device-defined']);
    const patch = await fetch(`${base}/api/v1/devices/${U1}`, {
      method: 'PATCH',
      headers: { ...AUTH, 'content-type': 'application/json' },
      body: JSON.stringify({ start: 'auto' }),
    });
    assert.equal(patch.status, 200);
    const modified = await es.next();
    assert.equal(modified.event, 'device-modified');
    assert.deepEqual(
      (({ kind, uuid, parent }) => ({ kind, uuid, parent }))(JSON.parse(modified.data)),
      { kind: 'device-modified', uuid: U1, parent: 'mdpy' },
    );
    const del = await fetch(`${base}/api/v1/devices/${U1}`, { method: 'DELETE', headers: AUTH });
    assert.equal(del.status, 204);
    assert.deepEqual((await kinds(2)).sort(), ['device-removed', 'device-undefined']);
    la.lab.unplugAll();
    la.lab.plugAll();
    const parents = async (kind: string): Promise<string[]> => {
      const a = await es.next((e) => e.event === kind);
      const b = await es.next((e) => e.event === kind);
      return [JSON.parse(a.data).parent, JSON.parse(b.data).parent].sort();
    };
    assert.deepEqual(await parents('parent-unregistered'), ['mdpy', 'mtty']);
    assert.deepEqual(await parents('parent-registered'), ['mdpy', 'mtty']);
    // Ids count up, so a client can resume.
    const ids = es.frames.map((f) => Number(f.id));
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => a - b),
    );
    es.close();
  });

  test('Last-Event-ID replays what a client missed', async () => {
    const first = openEventStream(`${base}/api/v1/events`);
    await first.ready;
    await post('/api/v1/devices', {
      uuid: U2,
      parent: 'mtty',
      type: 'mtty-1',
      define: false,
      activate: true,
    });
    const created = await first.next((e) => e.event === 'device-created');
    first.close();
    await post('/api/v1/devices', {
      uuid: U3,
      parent: 'mtty',
      type: 'mtty-1',
      define: false,
      activate: true,
    });
    const again = openEventStream(`${base}/api/v1/events`, { 'last-event-id': created.id! });
    const missed = await again.next();
    assert.equal(missed.event, 'device-created');
    assert.equal(JSON.parse(missed.data).uuid, U3);
    assert.equal(Number(missed.id), Number(created.id) + 1);
    again.close();
    // Too old to replay: the client is told to reload.
    la.agent.context.hub.publish({ kind: 'parent-registered', parent: 'x' });
    const reset = openEventStream(`${base}/api/v1/events?since=0`);
    // id 0 is before everything; all are still in the ring, so they replay.
    assert.equal((await reset.next()).id, '1');
    reset.close();
  });

  test('the stream counts in the metrics while open', async () => {
    const es = openEventStream(`${base}/api/v1/events`);
    await es.ready;
    const m = await (await fetch(`${base}/metrics`)).text();
    assert.match(m, /^mdevkit_event_stream_clients [1-9]\d*$/m);
    es.close();
  });
});
