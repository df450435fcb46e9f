/**
 * Hostile inputs through the FUSE lab (issue 12's suite, the FUSE part):
 * what a program on a host does to sysfs, done to a served lab
 * (`mdevkit lab serve`, in its own process) through the mount with node:fs
 * — hostile values written to every kind of writable attribute (create,
 * remove, uevent, aggregation, vgpu_params, the vfio_ap matrix, apmask and
 * aqmask), lookups of hostile names, and every file operation sysfs does
 * not have (create, mkdir, unlink, rename, link, symlink, chmod, chown,
 * truncate, utimes) in every kind of directory.
 *
 * Each must fail with the errno the kernel would give (EINVAL, E2BIG,
 * ENOENT, EACCES, EPERM, ...), never EIO or a dead mount (ENOTCONN: the
 * server crashed), or succeed where a kernel would (a UUID in capitals is a
 * UUID), and the lab is put back; at the end the server still serves, and
 * the devices and free instances are as before.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FUSE_NEEDS, serveLab, type ServedLab } from '../fuse/served-lab.js';
import { requires } from '../support/capabilities.js';
import { uuidN } from '../support/labs.js';
import {
  AP_LIST_VALUES,
  CONTROL,
  HUGE,
  NAME_VALUES,
  NUMBER_VALUES,
  UUID_VALUES,
  WRONG_TYPES,
} from './hostile-values.js';

/** Errnos that mean "the server failed", which no input may cause. */
const BROKEN = new Set(['EIO', 'ENOTCONN', 'ECONNABORTED', 'ENXIO']);

const errnoOf = (f: () => unknown): string | undefined => {
  try {
    f();
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    assert.ok(typeof code === 'string', `not an errno: ${String(err)}`);
    return code;
  }
};

const MTTY = 'devices/virtual/mtty/mtty/mdev_supported_types/mtty-2';
const SIOV_TYPE = 'devices/pci0000:6a/0000:6a:01.0/mdev_supported_types/idxd-1wq';
const NVIDIA_TYPE = 'devices/pci0000:85/0000:85:00.0/mdev_supported_types/nvidia-11';
const MATRIX_TYPE = 'devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough';

const AGG = uuidN(0xa61);
const GPU = uuidN(0xa62);
const MATRIX = uuidN(0xa63);
const VICTIM = uuidN(0xa64);

/** What a lab looks like from outside: its devices and every type's free instances. */
function stateOf(sys: string): string {
  const devices = fs.readdirSync(path.join(sys, 'bus/mdev/devices')).sort();
  const free: string[] = [];
  for (const parent of fs.readdirSync(path.join(sys, 'class/mdev_bus')).sort()) {
    const types = path.join(sys, 'class/mdev_bus', parent, 'mdev_supported_types');
    for (const t of fs.readdirSync(types).sort()) {
      free.push(
        `${parent}/${t}=${fs.readFileSync(path.join(types, t, 'available_instances'), 'utf8').trim()}`,
      );
    }
  }
  const masks = ['apmask', 'aqmask'].map((m) =>
    fs.readFileSync(path.join(sys, 'bus/ap', m), 'utf8').trim(),
  );
  return JSON.stringify({ devices, free, masks }, null, 1);
}

describe('hostile file operations through the FUSE lab', () => {
  let lab: ServedLab | undefined;
  let sys = '';
  const counts = { cases: 0, refused: 0, accepted: 0 };
  const errnos = new Map<string, number>();

  before(async () => {
    if (!FUSE_NEEDS.root || !FUSE_NEEDS.fuse) return;
    lab = await serveLab();
    sys = lab.sys;
    fs.writeFileSync(path.join(sys, SIOV_TYPE, 'create'), AGG);
    fs.writeFileSync(path.join(sys, NVIDIA_TYPE, 'create'), GPU);
    fs.writeFileSync(path.join(sys, MATRIX_TYPE, 'create'), MATRIX);
  });
  after(async () => {
    await lab?.close();
  });

  /** One hostile operation: it fails with a sane errno, or succeeds and `undo` puts the lab back. */
  function attempt(what: string, op: () => unknown, undo?: () => void): void {
    counts.cases++;
    const code = errnoOf(op);
    if (process.env['MDEVKIT_SECURITY_TRACE'] !== undefined) {
      process.stderr.write(`${code ?? 'ACCEPTED'} ${what}\n`);
    }
    if (code === undefined) {
      counts.accepted++;
      undo?.();
      return;
    }
    counts.refused++;
    errnos.set(code, (errnos.get(code) ?? 0) + 1);
    assert.ok(!BROKEN.has(code), `${what}: ${code}`);
  }

  const write = (file: string, value: string) => () =>
    fs.writeFileSync(path.join(sys, file), value);
  const dev = (u: string, file: string): string => `bus/mdev/devices/${u}/${file}`;
  const show = (v: string): string => JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);

  it('hostile values written to every kind of attribute fail with the kernel errno, or act as the kernel would', (t) => {
    if (!requires(t, FUSE_NEEDS, 'serves a lab over FUSE') || lab === undefined) return;
    const before = stateOf(sys);
    const devices = (): string[] => fs.readdirSync(path.join(sys, 'bus/mdev/devices'));
    const known = new Set(devices());
    const removeNew = (): void => {
      for (const d of devices())
        if (!known.has(d)) fs.writeFileSync(path.join(sys, dev(d, 'remove')), '1');
    };

    // create: every UUID-ish and hostile value, and values around the page size.
    for (const v of [...UUID_VALUES, 'x'.repeat(4096), 'x'.repeat(4097)]) {
      attempt(`create ${show(v)}`, write(`${MTTY}/create`, v), removeNew);
    }
    // remove of a device of its own: 1 removes it (then it comes back), 0 does nothing.
    fs.writeFileSync(path.join(sys, MTTY, 'create'), VICTIM);
    known.add(VICTIM);
    for (const v of [...NUMBER_VALUES, ...CONTROL, 'x'.repeat(4097)]) {
      attempt(`remove ${show(v)}`, write(dev(VICTIM, 'remove'), v), () => {
        if (!devices().includes(VICTIM)) fs.writeFileSync(path.join(sys, MTTY, 'create'), VICTIM);
      });
    }
    // uevent: actions the kernel does not know.
    for (const v of [
      ...NAME_VALUES.filter((x) => !['add', 'remove', 'change'].includes(x)),
      'bind\0',
      'addd',
    ]) {
      attempt(`uevent ${show(v)}`, write(dev(VICTIM, 'uevent'), v));
    }
    fs.writeFileSync(path.join(sys, dev(VICTIM, 'remove')), '1');
    known.delete(VICTIM);
    // the aggregation of a SIOV device, the vGPU parameters of an NVIDIA one.
    for (const v of [...NUMBER_VALUES, ...CONTROL]) {
      attempt(`aggregation ${show(v)}`, write(dev(AGG, 'mdev/aggregation/value'), v), () =>
        fs.writeFileSync(path.join(sys, dev(AGG, 'mdev/aggregation/value')), '1'),
      );
    }
    for (const v of [...CONTROL, ...HUGE, ...WRONG_TYPES, 'a=b,c', '=', ',,', 'a==b']) {
      attempt(`vgpu_params ${show(v)}`, write(dev(GPU, 'nvidia/vgpu_params'), v), () =>
        fs.writeFileSync(path.join(sys, dev(GPU, 'nvidia/vgpu_params')), '\n'),
      );
    }
    // the vfio_ap matrix device: ids out of range, not numbers, lists where one id goes.
    for (const file of [
      'assign_adapter',
      'assign_domain',
      'assign_control_domain',
      'unassign_adapter',
      'unassign_domain',
    ]) {
      for (const v of [...NUMBER_VALUES, ...AP_LIST_VALUES.slice(0, 18), ...CONTROL.slice(0, 6)]) {
        attempt(`${file} ${show(v)}`, write(dev(MATRIX, file), v), () => {
          // Give back whatever an accepted write took (a valid id such as 0 or 07).
          const n = Number.parseInt(
            v.trim(),
            v.trim().startsWith('0x') ? 16 : v.trim().startsWith('0') ? 8 : 10,
          );
          if (!Number.isNaN(n) && file.startsWith('assign')) {
            try {
              fs.writeFileSync(path.join(sys, dev(MATRIX, `un${file}`)), String(n));
            } catch {
              // not assigned after all
            }
          }
        });
      }
    }
    // apmask and aqmask: masks too long, relative edits out of range, garbage.
    const masks = Object.fromEntries(
      ['apmask', 'aqmask'].map((m) => [
        m,
        fs.readFileSync(path.join(sys, 'bus/ap', m), 'utf8').trim(),
      ]),
    );
    for (const m of ['apmask', 'aqmask']) {
      for (const v of [
        `0x${'f'.repeat(65)}`,
        '+256',
        '-256',
        '+1-0',
        '+0-300',
        '+',
        '-',
        '+,',
        '0xg',
        'x',
        '0x 1',
        '+1,,+2',
        '+99999999999999999999',
        ...CONTROL.slice(0, 8),
        ...HUGE.slice(0, 3),
      ]) {
        attempt(`${m} ${show(v)}`, write(`bus/ap/${m}`, v), () =>
          fs.writeFileSync(path.join(sys, 'bus/ap', m), masks[m]!),
        );
      }
    }
    // Names looked up: never found, never a broken mount.
    for (const v of NAME_VALUES.filter(
      (x) => !x.includes('\0') && !x.includes('/') && x !== '' && x !== '.' && x !== '..',
    )) {
      attempt(`lookup ${show(v)}`, () => fs.statSync(path.join(sys, 'bus/mdev/devices', v)));
      attempt(`lookup type ${show(v)}`, () => fs.statSync(path.join(sys, MTTY, '..', v, 'create')));
    }
    assert.equal(stateOf(sys), before, 'the lab is not as it was');
  });

  it('file operations sysfs does not have are refused everywhere', (t) => {
    if (!requires(t, FUSE_NEEDS, 'serves a lab over FUSE') || lab === undefined) return;
    const before = stateOf(sys);
    const dirs = [
      '.',
      'bus/mdev/devices',
      `bus/mdev/devices/${AGG}`,
      `bus/mdev/devices/${AGG}/mdev`,
      MTTY,
      'class/mdev_bus',
      'devices/vfio_ap/matrix',
    ];
    const files = [
      `${MTTY}/available_instances`,
      `${MTTY}/create`,
      dev(AGG, 'remove'),
      dev(AGG, 'uevent'),
      'bus/ap/apmask',
    ];
    const links = [dev(AGG, 'mdev_type'), `bus/mdev/devices/${AGG}`, 'class/mdev_bus/mtty'];
    const p = (x: string): string => path.join(sys, x);
    for (const d of dirs) {
      attempt(`create in ${d}`, () => fs.writeFileSync(p(`${d}/new-file`), 'x'));
      attempt(`mkdir in ${d}`, () => fs.mkdirSync(p(`${d}/new-dir`)));
      attempt(`symlink in ${d}`, () => fs.symlinkSync('/etc/passwd', p(`${d}/new-link`)));
      attempt(`link in ${d}`, () => fs.linkSync(p(files[0]!), p(`${d}/new-hard`)));
      attempt(`rmdir ${d}`, () => fs.rmdirSync(p(d)));
      attempt(`chmod ${d}`, () => fs.chmodSync(p(d), 0o777));
      attempt(`chown ${d}`, () => fs.chownSync(p(d), 65534, 65534));
      attempt(`utimes ${d}`, () => fs.utimesSync(p(d), 0, 0));
      attempt(`rename ${d}`, () => fs.renameSync(p(`${d}/uevent`), p(`${d}/moved`)));
    }
    for (const f of [...files, ...links]) {
      attempt(`unlink ${f}`, () => fs.unlinkSync(p(f)));
      attempt(`rename ${f}`, () => fs.renameSync(p(f), p(`${f}.moved`)));
      attempt(`rename onto ${f}`, () => fs.renameSync(p(files[0]!), p(f)));
      attempt(`chmod ${f}`, () => fs.chmodSync(p(f), 0o777));
      attempt(`chown ${f}`, () => fs.chownSync(p(f), 65534, 65534));
      attempt(`utimes ${f}`, () => fs.utimesSync(p(f), 0, 0));
      attempt(`truncate ${f}`, () => fs.truncateSync(p(f), 1 << 20));
      attempt(`link to ${f}`, () =>
        fs.linkSync(p(f), p(`bus/mdev/devices/hard-${path.basename(f)}`)),
      );
    }
    // Reading what is write-only, at offsets far away.
    attempt('read create', () => fs.readFileSync(p(`${MTTY}/create`)));
    const fd = fs.openSync(p(`${MTTY}/available_instances`), 'r');
    try {
      attempt('read far', () => fs.readSync(fd, Buffer.alloc(16), 0, 16, 2 ** 40));
    } finally {
      fs.closeSync(fd);
    }
    assert.equal(stateOf(sys), before);
    // Nothing new appeared anywhere.
    for (const d of dirs) {
      for (const n of ['new-file', 'new-dir', 'new-link', 'new-hard', 'moved']) {
        assert.equal(fs.existsSync(p(`${d}/${n}`)), false, `${d}/${n}`);
      }
    }
  });

  it('the server still serves, and says how many held', (t) => {
    if (!requires(t, FUSE_NEEDS, 'serves a lab over FUSE') || lab === undefined) return;
    assert.equal(lab.child.exitCode, null, lab.errors());
    assert.ok(fs.readdirSync(path.join(sys, 'class/mdev_bus')).includes('mtty'));
    assert.doesNotMatch(lab.errors(), /^\s+at /m, 'the server logged a stack trace');
    t.diagnostic(
      `${counts.cases} hostile FUSE operations: ${counts.refused} refused with ${[...errnos].map(([c, n]) => `${c} ${n}`).join(', ')}; ${counts.accepted} acted as a kernel would; none broke the mount`,
    );
    assert.ok(counts.cases >= 400, `${counts.cases} cases`);
  });
});
