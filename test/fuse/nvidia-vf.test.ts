import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { errnoCodeOf } from '../../src/common/errno.js';
import { requires } from '../support/capabilities.js';
import { runMdevkit } from '../support/cli.js';
import { FUSE_NEEDS, serveLab, writeProfile, type ServedLab } from './served-lab.js';

/**
 * NVIDIA's VF vGPUs over FUSE, as any tool sees them: every sysfs rule of
 * the L40S model through node:fs with the errno the kernel would give; the
 * machine actions through `mdevkit lab sriov-manage` and `lab open|close`;
 * and N processes racing for the last framebuffer at once.
 */

const errnoOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
};

// A racer: for each line "DEADLINE_MS FILE VALUE", wait for the deadline,
// write VALUE in one write(2), print "ok" or the errno number.
const RACER = `
const fs = require('node:fs');
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const [deadline, file, value] = line.split(' ');
  while (performance.timeOrigin + performance.now() < Number(deadline));
  try { fs.writeFileSync(file, value); console.log('ok'); }
  catch (err) { console.log(typeof err.errno === 'number' ? String(-err.errno) : String(err)); }
});`;

class Racer {
  readonly child: ChildProcess;
  readonly #lines: Interface;
  readonly #waiting: ((line: string) => void)[] = [];
  constructor() {
    this.child = spawn(process.execPath, ['-e', RACER], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#lines = createInterface({ input: this.child.stdout! });
    this.#lines.on('line', (line) => this.#waiting.shift()?.(line));
  }
  race(deadline: number, file: string, value: string): Promise<string> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      this.child.stdin!.write(`${deadline} ${file} ${value}\n`);
    });
  }
  stop(): void {
    this.child.stdin!.end();
  }
}

describe('NVIDIA VF vGPUs over FUSE', () => {
  let lab: ServedLab;
  let racers: Racer[] = [];
  const RACERS = 8;
  const pf = (): string => path.join(lab.sys, 'bus/pci/devices/0000:41:00.0');
  const vf = (i: number): string => {
    const devfn = 4 + i;
    const slot = (devfn >> 3).toString(16).padStart(2, '0');
    return path.join(lab.sys, `bus/pci/devices/0000:41:${slot}.${devfn & 7}`);
  };
  const nv = (i: number, f: string): string => path.join(vf(i), 'nvidia', f);
  const read = (p: string): string => fs.readFileSync(p, 'utf8');
  const write = (p: string, v: string): void => fs.writeFileSync(p, v);
  const lab_ = (...args: string[]) => runMdevkit(['lab', ...args, '--lab', lab.dir]);
  const listed = (i: number): number[] =>
    read(nv(i, 'creatable_vgpu_types'))
      .split('\n')
      .slice(1)
      .filter((l) => l !== '')
      .map((l) => Number(l.slice(0, 5)));

  before(async () => {
    if (!FUSE_NEEDS.root || !FUSE_NEEDS.fuse) return;
    lab = await serveLab([
      '--profile',
      writeProfile([{ driver: 'nvidia-l40s', options: { vfs: 16 } }]),
      '--cache',
      '0',
    ]);
    racers = Array.from({ length: RACERS }, () => new Racer());
  });
  after(async () => {
    for (const r of racers) r.stop();
    await lab?.close();
  });

  it('enables VFs only as a machine action; raw sriov_numvfs writes fail', (t) => {
    if (!requires(t, FUSE_NEEDS, 'serves a lab over FUSE')) return;
    assert.equal(read(path.join(pf(), 'sriov_numvfs')), '0\n');
    assert.equal(
      errnoOf(() => write(path.join(pf(), 'sriov_numvfs'), '16')),
      'ENOENT',
    );
    assert.equal(
      errnoOf(() => write(path.join(pf(), 'sriov_numvfs'), '17')),
      'ERANGE',
    );
    const on = lab_('sriov-manage', '-e', 'ALL');
    assert.equal(on.status, 0, on.stderr);
    assert.equal(on.stdout, 'Enabling VFs on 0000:41:00.0\n');
    const again = lab_('sriov-manage', '-e', '0000:41:00.0');
    assert.equal(again.stdout, 'GPU at 0000:41:00.0 already has VFs enabled.\n');
    assert.equal(read(path.join(pf(), 'sriov_numvfs')), '16\n');
    assert.equal(fs.readlinkSync(path.join(pf(), 'virtfn15')), '../0000:41:02.3');
    assert.equal(
      fs.realpathSync(path.join(vf(15), 'physfn')),
      fs.realpathSync(pf()),
      'physfn leads back',
    );
    assert.equal(fs.statSync(nv(0, 'creatable_vgpu_types')).mode & 0o777, 0o444);
    assert.equal(fs.statSync(nv(0, 'current_vgpu_type')).mode & 0o777, 0o644);
    assert.equal(fs.statSync(path.join(pf(), 'config')).size, 4096);
    assert.deepEqual(fs.readdirSync(path.join(lab.sys, 'class/mdev_bus')), []);
  });

  it('keeps every nvidia/ rule with its errno', (t) => {
    if (!requires(t, FUSE_NEEDS, 'serves a lab over FUSE')) return;
    assert.equal(read(nv(0, 'current_vgpu_type')), '0\n');
    assert.equal(listed(0).length, 23, 'an idle GPU lists every type');
    for (const f of ['vgpu_params', 'gpu_instance_id', 'placement_id']) {
      assert.equal(
        errnoOf(() => read(nv(0, f))),
        'ENXIO',
        f,
      );
    }
    assert.equal(
      errnoOf(() => write(nv(0, 'current_vgpu_type'), 'twelve')),
      'EINVAL',
    );
    assert.equal(
      errnoOf(() => write(nv(0, 'current_vgpu_type'), '0')),
      'EPERM',
    );
    assert.equal(
      errnoOf(() => write(nv(0, 'creatable_vgpu_types'), '1153')),
      'EACCES',
    );
    const opened = lab_('open', '0000:41:00.4');
    assert.equal(opened.status, 1);
    assert.match(opened.stderr, /cannot open 0000:41:00\.4: No such device/);
    write(nv(0, 'current_vgpu_type'), '1153\n');
    assert.equal(read(nv(0, 'current_vgpu_type')), '1153\n');
    assert.equal(read(nv(0, 'placement_id')), '0\n');
    assert.equal(
      errnoOf(() => write(nv(0, 'current_vgpu_type'), '1153')),
      'EPERM',
    );
    assert.deepEqual(listed(1), [1153, 1163]);
    assert.equal(
      errnoOf(() => write(nv(1, 'current_vgpu_type'), '1155')),
      'EIO',
      '24Q beside 12Q',
    );
    write(nv(0, 'vgpu_params'), 'frame_rate_limiter=0');
    assert.equal(read(nv(0, 'vgpu_params')), 'frame_rate_limiter=0\n');
    assert.equal(lab_('open', '0000:41:00.4').status, 0);
    assert.equal(
      errnoOf(() => write(nv(0, 'current_vgpu_type'), '0')),
      'EBUSY',
    );
    assert.equal(
      errnoOf(() => write(nv(0, 'vgpu_params'), 'frame_rate_limiter=1')),
      'EBUSY',
    );
    const off = lab_('sriov-manage', '-d', 'ALL');
    assert.equal(off.status, 1);
    assert.match(off.stderr, /in use by a VM/);
    assert.equal(lab_('close', '0000:41:00.4').status, 0);
    write(nv(0, 'current_vgpu_type'), '0');
    assert.equal(
      errnoOf(() => read(nv(0, 'vgpu_params'))),
      'ENXIO',
    );
  });

  it(`lets exactly the writers that fit have the last framebuffer, ${RACERS} at a time`, async (t) => {
    if (!requires(t, FUSE_NEEDS, 'races processes through a FUSE mount')) return;
    // Trials leave 1, 2 and 3 places of 12 GB free; racers write 12Q (1153)
    // or 12A (1163) to different free VFs at the same instant.
    for (const [trial, free] of [1, 2, 3, 1, 2].entries()) {
      const taken = 4 - free;
      for (let i = 0; i < taken; i++) write(nv(i, 'current_vgpu_type'), '1153');
      const candidates = Array.from({ length: RACERS }, (_, k) => taken + k);
      const deadline = Date.now() + 20;
      const results = (
        await Promise.all(
          racers.map((r, k) =>
            r.race(deadline, nv(candidates[k]!, 'current_vgpu_type'), k % 2 ? '1163' : '1153'),
          ),
        )
      ).map((r) => (r === 'ok' ? r : (errnoCodeOf(Number(r)) ?? r)));
      const winners = candidates.filter((_, k) => results[k] === 'ok');
      assert.equal(winners.length, free, `trial ${trial}: ${free} fit (${results.join(' ')})`);
      assert.deepEqual(
        results.filter((r) => r !== 'ok'),
        Array<string>(RACERS - free).fill('EIO'),
        `trial ${trial}: the rest get EIO`,
      );
      // Afterwards every listing is right: the GPU is full.
      for (let i = 0; i < 16; i++) {
        const cur = Number(read(nv(i, 'current_vgpu_type')));
        const won = i < taken || winners.includes(i);
        assert.equal(cur !== 0, won, `VF ${i} holds a vGPU exactly when it won`);
        assert.equal(
          read(nv(i, 'creatable_vgpu_types')),
          'ID    : vGPU Name\n',
          `VF ${i} lists nothing`,
        );
      }
      for (let i = 0; i < 16; i++) {
        if (read(nv(i, 'current_vgpu_type')) !== '0\n') write(nv(i, 'current_vgpu_type'), '0');
      }
      assert.equal(listed(15).length, 23, 'all given back');
    }
  });
});
