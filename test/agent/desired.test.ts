/**
 * The desired-state engine over HTTP, in process (inject) on a lab: plan
 * and apply with the token, progress on the event stream, capacity,
 * desired next to actual, the ownership record, drain, fragmentation
 * metrics, OpenAPI — and the device endpoints refusing to remove a device
 * another owner made unless forced.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDevice } from '../../src/host/devices.js';
import { Lab } from '../../src/sim/lab.js';
import { U1 } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { AUTH, labAgent, type LabAgent } from './support.js';

const YAML = `version: 1
configs:
  default:
    entries:
      - parents: { vendorDevice: "10de:13f2" }
        devices: [{ type: nvidia-16, count: 5 }]
      - parents: mtty
        devices: [{ type: mtty-2, count: 2 }]
`;

describe('desired state over the API', { concurrency: false }, () => {
  const dir = tmpDir('mdevkit-agent-desired-');
  let t: LabAgent;
  before(async () => {
    const lab = Lab.fromProfile('lab');
    t = await labAgent(dir, lab, {
      inUse: (uuid) => ((lab.core.device(uuid)?.openCount ?? 0) > 0 ? 'a test VM' : undefined),
    });
  });
  after(() => t?.agent.close());
  const inject = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object, headers = {}) =>
    t.agent.app.inject({
      method,
      url,
      ...(payload !== undefined && { payload }),
      headers: { ...AUTH, ...headers },
    });

  it('plan needs the token and changes nothing; apply makes it so and says so on the stream', async () => {
    const anon = await t.agent.app.inject({
      method: 'POST',
      url: '/api/v1/desired/plan',
      payload: { yaml: YAML },
    });
    assert.equal(anon.statusCode, 401);
    const plan = await inject('POST', '/api/v1/desired/plan', { yaml: YAML });
    assert.equal(plan.statusCode, 200, plan.body);
    assert.equal(plan.json().counts.create, 7);
    assert.equal(t.lab.core.devices.size, 0);

    const seen: string[] = [];
    const unsubscribe = t.agent.context.hub.subscribe(({ event }) => {
      if (event.kind === 'apply-progress' || event.kind === 'apply-finished') seen.push(event.kind);
    });
    const apply = await inject('POST', '/api/v1/desired/apply', { yaml: YAML });
    unsubscribe();
    assert.equal(apply.statusCode, 200, apply.body);
    assert.equal(apply.json().result.created, 7);
    assert.equal(seen.filter((k) => k === 'apply-progress').length, 7);
    assert.equal(seen.at(-1), 'apply-finished');
    const again = await inject('POST', '/api/v1/desired/apply', { yaml: YAML });
    assert.equal(again.json().result.kept, 7);
    assert.equal(again.json().result.created, 0);
  });

  it('bad configurations answer 400 with the field; nothing changes', async () => {
    const r = await inject('POST', '/api/v1/desired/apply', {
      yaml: YAML.replace('count: 5', 'count: 5, colour: red'),
    });
    assert.equal(r.statusCode, 400);
    const e = r.json().error;
    assert.equal(e.code, 'config-invalid');
    assert.equal(e.errno, 'EINVAL');
    assert.equal(e.context.field, 'configs.default.entries[0].devices[0].colour');
    assert.equal(e.context.line, '6');
    const unknown = await inject('POST', '/api/v1/desired/plan', { yaml: YAML, config: 'nope' });
    assert.equal(unknown.statusCode, 400);
    assert.equal(unknown.json().error.code, 'config-unknown');
    assert.equal(t.lab.core.devices.size, 7);
  });

  it('capacity, desired next to actual, the record, and fragmentation metrics', async () => {
    const cap = await inject('GET', '/api/v1/desired/capacity?type=nvidia-18');
    assert.equal(cap.statusCode, 200, cap.body);
    assert.equal(cap.json().types[0].more, 0);
    assert.match(cap.json().types[0].parents[0].why, /runs nvidia-16/);
    const status = (await inject('GET', '/api/v1/desired/status')).json();
    assert.deepEqual(
      status.rows.map((r: { type: string; wanted: number; actual: number }) => [
        r.type,
        r.wanted,
        r.actual,
      ]),
      [
        ['nvidia-16', 4, 4],
        ['nvidia-16', 1, 1],
        ['mtty-2', 2, 2],
      ],
    );
    const owners = (await inject('GET', '/api/v1/owners')).json().owners;
    assert.equal(owners.length, 7);
    assert.ok(owners.every((o: { owner: string }) => o.owner === 'config:default'));
    const metrics = (await t.agent.app.inject({ method: 'GET', url: '/metrics' })).body;
    assert.match(
      metrics,
      /^mdevkit_parent_fragmentation\{parent="0000:85:00.0",model="nvidia-grid"\} 0$/m,
    );
    assert.match(
      metrics,
      /^mdevkit_parent_used\{parent="0000:86:00.0",counter="framebuffer"\} 2048$/m,
    );
    const spec = (await t.agent.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    for (const p of [
      '/api/v1/desired/plan',
      '/api/v1/desired/apply',
      '/api/v1/desired/capacity',
      '/api/v1/owners',
    ])
      assert.ok(spec.paths[p] !== undefined, p);
  });

  it('the device endpoints remove only what this client made, unless forced', async () => {
    // Made by plain mdevctl: unknown to mdevkit.
    startDevice(t.env, { uuid: U1, parent: 'mdpy', type: 'mdpy-vga' });
    let r = await inject('DELETE', `/api/v1/devices/${U1}`);
    assert.equal(r.statusCode, 403);
    assert.equal(r.json().error.code, 'not-owner');
    assert.equal(r.json().error.errno, 'EPERM');
    assert.match(r.json().error.message, /another tool made it/);
    // A configuration's device.
    const owned = (await inject('GET', '/api/v1/owners')).json().owners[0].uuid;
    r = await inject('POST', `/api/v1/devices/${owned}/stop`);
    assert.equal(r.statusCode, 403);
    assert.match(r.json().error.message, /belongs to config:default/);
    assert.ok(t.lab.core.device(owned) !== undefined);
    // One this client makes through the API is its own.
    const made = await inject(
      'POST',
      '/api/v1/devices',
      { parent: 'mdpy', type: 'mdpy-xga', activate: true, define: true },
      { 'x-mdevkit-client': 'tester' },
    );
    assert.equal(made.statusCode, 201, made.body);
    const uuid = made.json().uuid;
    const byOther = await inject('DELETE', `/api/v1/devices/${uuid}`);
    assert.equal(byOther.statusCode, 403, 'another client may not');
    const mine = await inject('DELETE', `/api/v1/devices/${uuid}`, undefined, {
      'x-mdevkit-client': 'tester',
    });
    assert.equal(mine.statusCode, 204, mine.body);
    assert.ok(
      !(await inject('GET', '/api/v1/owners'))
        .json()
        .owners.some((o: { uuid: string }) => o.uuid === uuid),
    );
    // Forced: explicitly.
    const forced = await inject('DELETE', `/api/v1/devices/${U1}?force=true`);
    assert.equal(forced.statusCode, 204);
    assert.equal(t.lab.core.device(U1), undefined);
  });

  it('drain and an open device', async () => {
    const [u] = [...t.lab.core.devices.values()]
      .filter((d) => d.parent.name === 'mtty')
      .map((d) => d.uuid);
    t.lab.open(u!);
    const r = await inject('POST', '/api/v1/parents/mtty/drain');
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().removed.length, 1);
    assert.deepEqual(r.json().open, [{ uuid: u, why: 'open (a test VM)' }]);
    t.lab.close(u!);
    const plan = (await inject('POST', '/api/v1/desired/plan', { yaml: YAML })).json();
    assert.ok(
      plan.items.some(
        (i: { action: string; reason: string }) =>
          i.action === 'blocked' && /mtty-2: none of 1 fit/.test(i.reason),
      ),
    );
  });
});
