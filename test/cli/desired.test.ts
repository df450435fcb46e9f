/**
 * `mdevkit plan|apply|capacity|drain|list --owner` as a user runs them:
 * bin/mdevkit against a FUSE-served lab (--root DIR), the README's
 * walk-through on examples/host.yaml, and the real mdevctl listing what
 * apply defined.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MDEVKIT_BIN, runMdevkit } from '../support/cli.js';
import { hasMdevctl, requires } from '../support/capabilities.js';
import { tmpDir } from '../support/tmp.js';
import { FUSE_NEEDS, serveLab, type ServedLab } from '../fuse/served-lab.js';

const EXAMPLE = new URL('../../examples/host.yaml', import.meta.url).pathname;
const usable = Object.values(FUSE_NEEDS).every(Boolean);

describe('mdevkit plan and apply on a served lab', { concurrency: false }, () => {
  let lab: ServedLab;
  before(async () => {
    if (usable) lab = await serveLab();
  });
  after(() => lab?.close());
  const mk = (...args: string[]) => runMdevkit([...args, '--root', lab.dir]);

  it('the walk-through: plan, apply, apply again, a second owner, list --owner', (t) => {
    if (!requires(t, FUSE_NEEDS, 'a lab served over FUSE')) return;
    const plan = mk('plan', '-f', EXAMPLE);
    assert.equal(plan.status, 0, plan.stderr);
    assert.match(
      plan.stdout,
      /^Plan for configuration "default" of .*host\.yaml \(owner config:default, policy pack\):$/m,
    );
    assert.match(
      plan.stdout,
      /^ {2}create {2}0000:85:00\.0 +nvidia-16 +4 devices +wanted by configs\.default\.entries\[0\]\.devices\[0\] \(host\.yaml:\d+\)$/m,
    );
    assert.match(plan.stdout, /^Summary: 18 to create\.$/m);
    const entries = (): string[] => fs.readdirSync(lab.configDir).filter((n) => n !== 'scripts.d');
    assert.deepEqual(entries(), [], 'plan changes nothing');

    const apply = mk('apply', '-f', EXAMPLE);
    assert.equal(apply.status, 0, apply.stderr);
    assert.equal(
      apply.stdout,
      'Applied "default": 18 created, 0 removed, 0 modified, 0 started, 0 adopted, 0 kept.\n',
    );
    const again = mk('apply', '-f', EXAMPLE);
    assert.equal(
      again.stdout,
      'Applied "default": 0 created, 0 removed, 0 modified, 0 started, 0 adopted, 18 kept.\n',
    );
    const crypto = mk('apply', '-f', EXAMPLE, '--config', 'crypto');
    assert.equal(crypto.status, 0, crypto.stderr);

    const owners = mk('list', '--owner');
    const lines = owners.stdout.trim().split('\n');
    assert.equal(lines.length, 19);
    assert.equal(lines.filter((l) => l.endsWith(' owner=config:default')).length, 18);
    assert.match(
      owners.stdout,
      /^[0-9a-f-]{36} matrix vfio_ap-passthrough auto \(defined\) owner=config:crypto$/m,
    );
    // mdevctl's list is untouched: no owners there.
    const plain = mk('list');
    assert.equal(plain.status, 0);
    assert.doesNotMatch(plain.stdout, /owner/);
    const json = JSON.parse(mk('list', '--owner', '--json').stdout) as { owner: string | null }[];
    assert.equal(json.length, 19);
  });

  it('the real mdevctl lists the definitions apply wrote', (t) => {
    if (
      !requires(
        t,
        { ...FUSE_NEEDS, mdevctl: hasMdevctl },
        "Debian's mdevctl in the lab's namespace",
      )
    )
      return;
    const r = spawnSync(
      process.execPath,
      [MDEVKIT_BIN, 'lab', 'shell', '--mount', lab.dir, '--', '/usr/bin/mdevctl', 'list', '-d'],
      { encoding: 'utf8', timeout: 30000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const defined = r.stdout.trim().split('\n');
    assert.equal(defined.length, 19);
    assert.equal(
      defined.filter((l) => / 0000:8[56]:00\.0 nvidia-16 auto \(active\)$/.test(l)).length,
      8,
    );
    assert.equal(defined.filter((l) => / mtty mtty-2 manual \(active\)$/.test(l)).length, 3);
  });

  it('an open device is reported blocked, a foreign one left alone, and prune removes the rest', (t) => {
    if (!requires(t, FUSE_NEEDS, 'a lab served over FUSE')) return;
    const owned = mk('list', '--owner')
      .stdout.split('\n')
      .filter((l) => l.includes('mtty-2'));
    // Equal in every other respect, the smaller UUID is the one kept.
    const [kept, open] = owned.map((l) => l.split(' ')[0]!).sort();
    // VMs hold two of the three: the configuration keeps one of them, and
    // the other cannot be removed.
    for (const u of [kept!, open!])
      assert.equal(runMdevkit(['lab', 'open', u, '--lab', lab.dir]).status, 0);
    const foreign = mk('start', '-p', 'mtty', '-t', 'mtty-1');
    assert.equal(foreign.status, 0, foreign.stderr);
    const foreignUuid = foreign.stdout.trim();
    const file = path.join(tmpDir('mdevkit-cli-desired-'), 'host.yaml');
    fs.writeFileSync(
      file,
      'version: 1\nconfigs:\n  default:\n    entries:\n      - parents: mtty\n        devices: [{ type: mtty-2, count: 1, start: manual }]\n',
    );
    const plan = mk('plan', '-f', file, '--prune');
    assert.match(
      plan.stdout,
      new RegExp(
        `blocked +mtty +mtty-2 +${open} +device ${open} is open \\(open by a VM of the lab \\(1\\)\\): not removed`,
      ),
    );
    assert.match(
      plan.stdout,
      new RegExp(`foreign +mtty +mtty-1 +${foreignUuid} +made by another tool`),
    );
    const apply = mk('apply', '-f', file, '--prune', '--json');
    assert.equal(apply.status, 3, 'applied, with something blocked');
    const out = JSON.parse(apply.stdout) as { result: { removed: number; blocked: number } };
    assert.equal(out.result.removed, 16, apply.stdout);
    assert.equal(out.result.blocked, 1);
    const after = mk('list', '--owner').stdout;
    assert.match(
      after,
      new RegExp(`^${open} mtty mtty-2 manual \\(defined\\) owner=config:default$`, 'm'),
    );
    assert.match(after, new RegExp(`^${foreignUuid} mtty mtty-1 manual owner=-$`, 'm'));
    assert.match(
      after,
      new RegExp(`^${kept} mtty mtty-2 manual \\(defined\\) owner=config:default$`, 'm'),
    );
    for (const u of [kept!, open!])
      assert.equal(runMdevkit(['lab', 'close', u, '--lab', lab.dir]).status, 0);
  });

  it('capacity and drain', (t) => {
    if (!requires(t, FUSE_NEEDS, 'a lab served over FUSE')) return;
    const cap = mk('capacity', '--type', 'nvidia-18');
    assert.equal(cap.status, 0, cap.stderr);
    assert.match(cap.stdout, /^nvidia-18 \(GRID M60-8Q, 8192M\): 2 more$/m);
    const json = JSON.parse(mk('capacity', '--json').stdout) as {
      parents: { parent: string; model: string }[];
    };
    assert.equal(json.parents.find((p) => p.parent === '0000:00:02.0')!.model, 'gvt');
    const drain = mk('drain', 'mtty');
    assert.equal(drain.status, 0, drain.stderr);
    assert.match(drain.stdout, /^Drained mtty: no new devices are placed there/m);
    assert.match(drain.stdout, /2 removed, 0 open, 1 foreign, 0 failed\.$/m);
    assert.equal(mk('drain', 'mtty', '--undo').status, 0);
  });

  it('bad input: a clear error naming file, line and field; exit 1; nothing changed', (t) => {
    if (!requires(t, FUSE_NEEDS, 'a lab served over FUSE')) return;
    const before = mk('list', '-d').stdout;
    const dir = tmpDir('mdevkit-cli-bad-');
    const cases: [string, RegExp][] = [
      [
        'version: 1\nconfigs:\n  default:\n    entries:\n      - parents: mtty\n        devices: [{ type: mtty-1, count: 1, extra: 2 }]\n',
        /:6:45: configs\.default\.entries\[0\]\.devices\[0\]\.extra: unknown field "extra"/,
      ],
      [
        'version: 1\nconfigs:\n  default:\n    entries:\n      - parents: mtty\n        devices: [{ type: "../../x", count: 1 }]\n',
        /:6:27: configs\.default\.entries\[0\]\.devices\[0\]\.type: "\.\.\/\.\.\/x" is not a valid type name/,
      ],
      [
        'version: 1\nconfigs:\n  default:\n    entries:\n      - parents: mtty\n        devices: [{ type: mtty-9, count: 1 }]\n',
        /:6:27: configs\.default\.entries\[0\]\.devices\[0\]\.type: no parent this entry selects has type "mtty-9"/,
      ],
    ];
    cases.forEach(([text, message], i) => {
      const file = path.join(dir, `bad${i}.yaml`);
      fs.writeFileSync(file, text);
      const r = mk('apply', '-f', file, '--prune');
      assert.equal(r.status, 1, r.stdout);
      assert.ok(r.stderr.startsWith(`mdevkit: ${file}:`), r.stderr);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    });
    assert.equal(mk('list', '-d').stdout, before);
    const usage = runMdevkit(['apply']);
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /give -f FILE/);
  });
});
