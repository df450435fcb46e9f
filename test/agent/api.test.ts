import type { InjectOptions } from 'fastify';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { after, before, describe, test } from 'node:test';
import { labWith, U1, U2, U3 } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { AUTH, labAgent, type LabAgent } from './support.js';

const json = (body: string): any => JSON.parse(body); // eslint-disable-line @typescript-eslint/no-explicit-any

describe('agent API, in process', () => {
  const stateDir = tmpDir('mdevkit-agent-');
  let la: LabAgent;
  const inject = (opts: InjectOptions) => la.agent.app.inject(opts);
  const typeOf = async (parent: string, type: string) =>
    json((await inject({ url: `/api/v1/parents/${parent}/types/${type}` })).body);

  before(async () => {
    la = await labAgent(
      stateDir,
      labWith([{ driver: 'mdpy' }, { driver: 'mtty' }, { driver: 'siov' }]),
    );
  });
  after(() => la.agent.close());

  test('healthz and the OpenAPI document', async () => {
    const h = await inject({ url: '/healthz' });
    assert.equal(h.statusCode, 200);
    assert.deepEqual(json(h.body), { status: 'ok', host: 'test lab', mode: 'lab' });
    const doc = json((await inject({ url: '/openapi.json' })).body);
    assert.equal(doc.openapi, '3.1.0');
    for (const p of [
      '/api/v1/parents',
      '/api/v1/devices',
      '/api/v1/devices/{uuid}',
      '/api/v1/devices/{uuid}/start',
      '/api/v1/devices/{uuid}/aggregation',
      '/api/v1/devices/{uuid}/libvirt/hostdev',
      '/api/v1/events',
    ]) {
      assert.ok(doc.paths[p], `OpenAPI lists ${p}`);
    }
    // The zod body schema became JSON Schema: parent and type required.
    const body = doc.paths['/api/v1/devices'].post.requestBody.content['application/json'].schema;
    assert.deepEqual([...body.required].sort(), ['parent', 'type']);
  });

  test('parents and types come from sysfs, with capacity', async () => {
    const { parents } = json((await inject({ url: '/api/v1/parents' })).body);
    assert.deepEqual(
      parents.map((p: { name: string }) => p.name),
      ['0000:6a:01.0', 'mdpy', 'mtty'],
    );
    const hd = await typeOf('mdpy', 'mdpy-hd');
    assert.equal(hd.deviceApi, 'vfio-pci');
    assert.equal(hd.availableInstances, 4);
    assert.equal(hd.activeDevices, 0);
    assert.equal(hd.aggregation, undefined);
    const siov = json((await inject({ url: '/api/v1/parents/0000:6a:01.0' })).body);
    assert.ok(siov.types.every((t: { aggregation?: string }) => t.aggregation !== undefined));
    const missing = await inject({ url: '/api/v1/parents/nope' });
    assert.equal(missing.statusCode, 404);
    assert.equal(json(missing.body).error.errno, 'ENODEV');
  });

  test('writes need the token; reads on loopback do not', async () => {
    const body = { parent: 'mdpy', type: 'mdpy-hd', activate: true };
    const none = await inject({ method: 'POST', url: '/api/v1/devices', payload: body });
    assert.equal(none.statusCode, 401);
    assert.equal(json(none.body).error.errno, 'EACCES');
    const wrong = await inject({
      method: 'POST',
      url: '/api/v1/devices',
      payload: body,
      headers: { authorization: `Bearer ${'b'.repeat(64)}` },
    });
    assert.equal(wrong.statusCode, 401);
    assert.match(json(wrong.body).error.message, /wrong agent token/);
    assert.equal((await typeOf('mdpy', 'mdpy-hd')).activeDevices, 0, 'nothing was created');
  });

  test('a rebinding Host header is refused', async () => {
    const r = await inject({ url: '/api/v1/parents', headers: { host: 'evil.example:8765' } });
    assert.equal(r.statusCode, 403);
    assert.equal(
      (await inject({ url: '/api/v1/parents', headers: { host: 'localhost:8765' } })).statusCode,
      200,
    );
  });

  test("create (define + start): capacity drops, the list merges it, the config file is mdevctl's", async () => {
    const r = await inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: AUTH,
      payload: {
        uuid: U1.toUpperCase(),
        parent: 'mdpy',
        type: 'mdpy-hd',
        activate: true,
        start: 'auto',
      },
    });
    assert.equal(r.statusCode, 201, r.body);
    assert.deepEqual(json(r.body), {
      uuid: U1,
      parent: 'mdpy',
      type: 'mdpy-hd',
      active: true,
      defined: true,
      start: 'auto',
      attrs: [],
    });
    // sysfs agrees: mdpy counts devices across its types.
    assert.equal(la.lab.port.kind(`/sys/bus/mdev/devices/${U1}`), 'link');
    assert.equal((await typeOf('mdpy', 'mdpy-hd')).availableInstances, 3);
    assert.equal((await typeOf('mdpy', 'mdpy-vga')).availableInstances, 3);
    assert.equal((await typeOf('mdpy', 'mdpy-hd')).activeDevices, 1);
    const file = nodePath.join(la.env.configDir, 'mdpy', U1);
    assert.equal(
      fs.readFileSync(file, 'utf8'),
      '{\n  "mdev_type": "mdpy-hd",\n  "start": "auto",\n  "attrs": []\n}',
    );
  });

  test('define only, then start and stop by UUID', async () => {
    const def = await inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: AUTH,
      payload: { uuid: U2, parent: 'mtty', type: 'mtty-2' },
    });
    assert.equal(def.statusCode, 201, def.body);
    assert.equal(json(def.body).active, false);
    const start = await inject({
      method: 'POST',
      url: `/api/v1/devices/${U2}/start`,
      headers: AUTH,
      payload: {},
    });
    assert.equal(start.statusCode, 200, start.body);
    assert.equal(json(start.body).active, true);
    const again = await inject({
      method: 'POST',
      url: `/api/v1/devices/${U2}/start`,
      headers: AUTH,
      payload: {},
    });
    assert.equal(again.statusCode, 409);
    assert.equal(json(again.body).error.errno, 'EEXIST');
    const stop = await inject({ method: 'POST', url: `/api/v1/devices/${U2}/stop`, headers: AUTH });
    assert.equal(stop.statusCode, 204);
    const dev = json((await inject({ url: `/api/v1/devices/${U2}` })).body);
    assert.equal(dev.active, false);
    assert.equal(dev.defined, true);
  });

  test('the device list: merged, filtered, paged, with an ETag', async () => {
    // A transient device (start without define) is listed as active only.
    const t = await inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: AUTH,
      payload: { uuid: U3, parent: 'mdpy', type: 'mdpy-vga', define: false, activate: true },
    });
    assert.equal(t.statusCode, 201, t.body);
    const list = await inject({ url: '/api/v1/devices' });
    const all = json(list.body);
    assert.equal(all.total, 3);
    assert.deepEqual(
      all.devices.map((d: { parent: string; uuid: string; active: boolean; defined: boolean }) => [
        d.parent,
        d.uuid,
        d.active,
        d.defined,
      ]),
      [
        ['mdpy', U1, true, true],
        ['mdpy', U3, true, false],
        ['mtty', U2, false, true],
      ],
    );
    const etag = list.headers.etag as string;
    assert.equal(
      (await inject({ url: '/api/v1/devices', headers: { 'if-none-match': etag } })).statusCode,
      304,
    );
    const defined = json((await inject({ url: '/api/v1/devices?state=defined&parent=mdpy' })).body);
    assert.deepEqual(
      defined.devices.map((d: { uuid: string }) => d.uuid),
      [U1],
    );
    const p1 = json((await inject({ url: '/api/v1/devices?limit=2' })).body);
    assert.equal(p1.devices.length, 2);
    const p2 = json((await inject({ url: `/api/v1/devices?limit=2&cursor=${p1.next}` })).body);
    assert.deepEqual(
      p2.devices.map((d: { uuid: string }) => d.uuid),
      [U2],
    );
    assert.equal(p2.next, undefined);
    // Any change gives a new ETag.
    await inject({ method: 'POST', url: `/api/v1/devices/${U3}/stop`, headers: AUTH });
    assert.equal(
      (await inject({ url: '/api/v1/devices', headers: { 'if-none-match': etag } })).statusCode,
      200,
    );
  });

  test('modify changes the definition only', async () => {
    const r = await inject({
      method: 'PATCH',
      url: `/api/v1/devices/${U2}`,
      headers: AUTH,
      payload: { start: 'auto', attrs: [{ name: 'vendor/x', value: '1' }] },
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(json(r.body).start, 'auto');
    assert.deepEqual(json(r.body).attrs, [{ name: 'vendor/x', value: '1' }]);
    const empty = await inject({
      method: 'PATCH',
      url: `/api/v1/devices/${U2}`,
      headers: AUTH,
      payload: {},
    });
    assert.equal(empty.statusCode, 400);
    const notDefined = await inject({
      method: 'PATCH',
      url: `/api/v1/devices/${U3}`,
      headers: AUTH,
      payload: { start: 'auto' },
    });
    assert.equal(notDefined.statusCode, 404);
    assert.equal(json(notDefined.body).error.errno, 'ENOENT');
  });

  test('bad input: JSON errors with errno and where', async () => {
    const bad = await inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: AUTH,
      payload: { parent: '../../etc', type: 'mdpy-hd' },
    });
    assert.equal(bad.statusCode, 400);
    const e = json(bad.body).error;
    assert.equal(e.errno, 'EINVAL');
    assert.equal(e.errnoNumber, 22);
    assert.match(e.message, /body\.parent/);
    const uuid = await inject({ url: '/api/v1/devices/not-a-uuid' });
    assert.equal(uuid.statusCode, 400);
    const garbage = await inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: { ...AUTH, 'content-type': 'application/json' },
      payload: '{"parent":',
    });
    assert.equal(garbage.statusCode, 400);
    assert.equal(json(garbage.body).error.errno, 'EINVAL');
    const route = await inject({ url: '/api/v1/nothing' });
    assert.equal(route.statusCode, 404);
    assert.equal(json(route.body).error.errno, 'ENOENT');
  });

  test('an attribute may not leave the device directory', async () => {
    const r = await inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: AUTH,
      payload: {
        parent: 'mdpy',
        type: 'mdpy-xga',
        define: false,
        activate: true,
        attrs: [{ name: '../../../../class/mdev_bus/mdpy/x', value: '1' }],
      },
    });
    assert.equal(r.statusCode, 400, r.body);
    assert.equal(json(r.body).error.errno, 'EINVAL');
    const escape = await inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: AUTH,
      payload: {
        parent: 'mdpy',
        type: 'mdpy-xga',
        define: false,
        activate: true,
        attrs: [{ name: 'driver/unbind', value: 'x' }],
      },
    });
    // Refused by name before the device is created: driver/ is the core's.
    assert.equal(escape.statusCode, 400, escape.body);
    assert.equal(json(escape.body).error.code, 'core-attribute');
    assert.match(json(escape.body).error.message, /"driver\/unbind"/);
    assert.equal((await typeOf('mdpy', 'mdpy-xga')).activeDevices, 0, 'the device was unwound');
  });

  test('capacity runs out (no-instances, EUSERS); define+start is unwound', async () => {
    // mdpy has 4 instances: U1 holds one; fill the rest.
    for (let i = 0; i < 3; i++) {
      const r = await inject({
        method: 'POST',
        url: '/api/v1/devices',
        headers: AUTH,
        payload: { parent: 'mdpy', type: 'mdpy-vga', define: false, activate: true },
      });
      assert.equal(r.statusCode, 201, r.body);
    }
    const full = await inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: AUTH,
      payload: { parent: 'mdpy', type: 'mdpy-vga', activate: true },
    });
    assert.equal(full.statusCode, 409, full.body);
    // available_instances reads 0: refused before the kernel is asked, as
    // mdevctl does, with the mdev core's errno for it (mdpy leaves the count
    // to the core, which says EUSERS; the ENOSPC once expected here was made up).
    assert.equal(json(full.body).error.errno, 'EUSERS');
    assert.equal(json(full.body).error.code, 'no-instances');
    assert.match(json(full.body).error.message, /^No available instances of mdpy-vga on mdpy$/);
    const defined = json((await inject({ url: '/api/v1/devices?state=defined&parent=mdpy' })).body);
    assert.equal(defined.total, 1, 'the failed create left no definition');
  });

  test('aggregation through mdev/aggregation/value, stored in the definition', async () => {
    const parent = '0000:6a:01.0';
    const r = await inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: AUTH,
      payload: { parent, type: 'idxd-1wq', activate: true },
    });
    assert.equal(r.statusCode, 201, r.body);
    const uuid = json(r.body).uuid;
    const before = (await typeOf(parent, 'idxd-1wq')).availableInstances;
    const get = json((await inject({ url: `/api/v1/devices/${uuid}/aggregation` })).body);
    assert.equal(get.value, 1);
    assert.ok(get.max >= 4);
    const put = await inject({
      method: 'PUT',
      url: `/api/v1/devices/${uuid}/aggregation`,
      headers: AUTH,
      payload: { value: 4 },
    });
    assert.equal(put.statusCode, 200, put.body);
    assert.equal(json(put.body).value, 4);
    assert.equal(
      la.lab.port.read(`/sys/bus/mdev/devices/${uuid}/mdev/aggregation/value`).trim(),
      '4',
    );
    assert.equal((await typeOf(parent, 'idxd-1wq')).availableInstances, before - 3);
    const dev = json((await inject({ url: `/api/v1/devices/${uuid}` })).body);
    assert.deepEqual(dev.attrs, [{ name: 'mdev/aggregation/value', value: '4' }]);
    // Open by a VM: the driver refuses with EBUSY.
    la.lab.open(uuid);
    const busy = await inject({
      method: 'PUT',
      url: `/api/v1/devices/${uuid}/aggregation`,
      headers: AUTH,
      payload: { value: 2 },
    });
    la.lab.close(uuid);
    assert.equal(busy.statusCode, 409, busy.body);
    assert.equal(json(busy.body).error.errno, 'EBUSY');
    assert.equal(json(busy.body).error.context.uuid, uuid);
    const none = await inject({ url: `/api/v1/devices/${U1}/aggregation` });
    assert.equal(none.statusCode, 404);
  });

  test('removing an open device is refused with EBUSY, then works once closed', async () => {
    la.lab.open(U1);
    const busy = await inject({ method: 'DELETE', url: `/api/v1/devices/${U1}`, headers: AUTH });
    assert.equal(busy.statusCode, 409, busy.body);
    assert.equal(json(busy.body).error.errno, 'EBUSY');
    la.lab.close(U1);
    const ok = await inject({ method: 'DELETE', url: `/api/v1/devices/${U1}`, headers: AUTH });
    assert.equal(ok.statusCode, 204);
    assert.equal(la.lab.port.kind(`/sys/bus/mdev/devices/${U1}`), null);
    assert.equal(fs.existsSync(nodePath.join(la.env.configDir, 'mdpy', U1)), false);
    assert.equal((await inject({ url: `/api/v1/devices/${U1}` })).statusCode, 404);
  });

  test('undefine keeps a running device running', async () => {
    // The attribute the modify test added does not exist on mtty: drop it first.
    const fix = await inject({
      method: 'PATCH',
      url: `/api/v1/devices/${U2}`,
      headers: AUTH,
      payload: { attrs: [] },
    });
    assert.equal(fix.statusCode, 200, fix.body);
    const start = await inject({
      method: 'POST',
      url: `/api/v1/devices/${U2}/start`,
      headers: AUTH,
      payload: {},
    });
    assert.equal(start.statusCode, 200, start.body);
    const r = await inject({
      method: 'DELETE',
      url: `/api/v1/devices/${U2}/definition`,
      headers: AUTH,
    });
    assert.equal(r.statusCode, 204);
    const dev = json((await inject({ url: `/api/v1/devices/${U2}` })).body);
    assert.equal(dev.active, true);
    assert.equal(dev.defined, false);
  });

  test('libvirt XML and QEMU arguments for a device', async () => {
    const xml = await inject({ url: `/api/v1/devices/${U2}/libvirt/hostdev?display=on` });
    assert.equal(xml.statusCode, 200, xml.body);
    assert.match(xml.headers['content-type'] as string, /application\/xml/);
    assert.match(
      xml.body,
      /<hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='on'>/,
    );
    assert.match(xml.body, new RegExp(`<address uuid='${U2}'/>`));
    const q = json((await inject({ url: `/api/v1/devices/${U2}/qemu-args` })).body);
    assert.deepEqual(q.argv, [
      '-device',
      `vfio-pci,id=hostdev0,sysfsdev=/sys/bus/mdev/devices/${U2},display=off`,
    ]);
    const nodedev = await inject({ url: `/api/v1/devices/${U2}/libvirt/nodedev` });
    assert.equal(nodedev.statusCode, 200, nodedev.body);
    assert.match(nodedev.body, /<capability type='mdev'>/);
    const ramfb = await inject({ url: `/api/v1/devices/${U2}/qemu-args?ramfb=on` });
    assert.equal(ramfb.statusCode, 400);
    const gone = await inject({ url: `/api/v1/devices/${U1}/libvirt/hostdev` });
    assert.equal(gone.statusCode, 404);
  });

  test('metrics: capacity per type, operations and errors by errno', async () => {
    const r = await inject({ url: '/metrics' });
    assert.equal(r.statusCode, 200);
    assert.match(r.headers['content-type'] as string, /^text\/plain; version=0\.0\.4/);
    const m = r.body;
    const avail = Number(
      /^mdevkit_type_available_instances\{parent="mdpy",type="mdpy-hd"\} (\d+)$/m.exec(m)?.[1],
    );
    assert.equal(avail, (await typeOf('mdpy', 'mdpy-hd')).availableInstances);
    assert.match(m, /^mdevkit_type_active_devices\{parent="mtty",type="mtty-2"\} 1$/m);
    assert.match(m, /^mdevkit_operations_total\{operation="create",result="ok"\} \d+$/m);
    assert.match(m, /^mdevkit_operation_errors_total\{operation="create",errno="EUSERS"\} 1$/m);
    assert.match(m, /^mdevkit_operation_errors_total\{operation="aggregate",errno="EBUSY"\} 1$/m);
    assert.match(m, /^mdevkit_operation_errors_total\{operation="remove",errno="EBUSY"\} 1$/m);
    assert.match(m, /^mdevkit_events_total\{kind="device-created"\} \d+$/m);
  });

  test('the CLI and the agent see one world (the same config files)', async (t) => {
    const bin = new URL('../../bin/mdevkit', import.meta.url).pathname;
    if (!fs.existsSync(new URL('../../dist/mdevkit.mjs', import.meta.url))) {
      t.skip('needs npm run build');
      return;
    }
    const uuid = '44444444-4444-4444-8444-444444444444';
    const r = spawnSync(
      process.execPath,
      [bin, 'define', '--root', la.stateDir, '-u', uuid, '-p', 'mtty', '-t', 'mtty-1'],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(r.status, 0, r.stderr);
    // The agent did not write it; its config watcher or the next listing sees it.
    const deadline = Date.now() + 5000;
    let dev;
    while (Date.now() < deadline) {
      const res = await inject({ url: `/api/v1/devices/${uuid}` });
      if (res.statusCode === 200) {
        dev = json(res.body);
        break;
      }
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.deepEqual(dev, {
      uuid,
      parent: 'mtty',
      type: 'mtty-1',
      active: false,
      defined: true,
      start: 'manual',
      attrs: [],
    });
    // And what the agent defines, the CLI lists.
    const list = spawnSync(process.execPath, [bin, 'list', '--root', la.stateDir, '-d'], {
      encoding: 'utf8',
    });
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`${uuid} mtty mtty-1 manual`));
  });
});
