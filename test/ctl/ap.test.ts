import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runAp } from '../../src/cli/ap.js';
import { CommandError, UsageError } from '../../src/cli/command.js';
import type { CommandIo } from '../../src/ctl/io.js';
import { ApListError, formatIdList, parseIdList } from '../../src/host/ap/ids.js';
import { ErrnoError } from '../../src/common/errno.js';
import { MdevError } from '../../src/host/errors.js';
import type { SysfsPort } from '../../src/port/sysfs-port.js';
import type { Lab } from '../../src/sim/lab.js';
import { U1, U2, U3, labWith } from '../support/labs.js';

/**
 * `mdevkit ap` commands run in process against a lab's sysfs port: what
 * they print, what they refuse and why, and what they leave in sysfs.
 */

const TYPE = '/sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough';
const dev = (u: string): string => `/sys/bus/mdev/devices/${u}`;

/** Cards 03 (CEX7 CCA), 05 (CEX8 EP11), 06 (CEX8 CCA); domains 4, 6, 0x47; cards 5 and 6 for guests. */
function apLab(): Lab {
  return labWith([
    { driver: 'mtty' },
    {
      driver: 'vfio-ap',
      options: {
        adapters: [
          { id: 3, type: 'CEX7', mode: 'cca' },
          { id: 5, type: 'CEX8', mode: 'ep11' },
          { id: 6, type: 'CEX8', mode: 'cca' },
        ],
        domains: [4, 6, 0x47],
        apmask: '-5,-6',
      },
    },
  ]);
}

interface Run {
  code: number;
  out: string;
}

function ap(lab: Lab, ...args: string[]): Run {
  let out = '';
  const ctx: CommandIo = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: () => true },
    env: {},
    cwd: '/',
    readStdin: () => '',
  };
  const code = runAp(ctx, lab.port, args);
  return { code, out };
}

/** The library's coded error behind a command's one-line refusal (the CLI prints its message). */
function coded(err: unknown): MdevError | undefined {
  if (!(err instanceof CommandError) || !(err.cause instanceof MdevError)) return undefined;
  assert.equal(err.message, err.cause.message);
  return err.cause;
}

/** The refusal of an ap command. */
function refusedWith(lab: Lab, ...args: string[]): MdevError {
  try {
    ap(lab, ...args);
  } catch (err) {
    const e = coded(err);
    if (e !== undefined) return e;
    throw err;
  }
  assert.fail(`expected 'ap ${args.join(' ')}' to be refused`);
}

const read = (lab: Lab, p: string): string => lab.port.read(p);

describe('ap id lists', () => {
  it('reads decimal, 0x hex and ranges, sorted and without repeats', () => {
    assert.deepEqual(parseIdList('5,0x47,10-12', { what: 'domain' }), [5, 10, 11, 12, 71]);
    assert.deepEqual(parseIdList(' 7 , 05, 0x5,0xA-0xb ', { what: 'adapter' }), [5, 7, 10, 11]);
    assert.deepEqual(parseIdList('255', { what: 'adapter' }), [255]);
  });

  it('names the entry at fault', () => {
    const cases: [string, RegExp][] = [
      ['', /empty entry/],
      ['5,,6', /empty entry/],
      ['5,x', /'x' is not a number/],
      ['12-10', /range '12-10' runs backwards/],
      ['256', /256 is above the highest adapter id, 255/],
      ['1-0x100', /0x100 is above/],
      ['-3', /'-3' is not a number/],
    ];
    for (const [text, msg] of cases) {
      assert.throws(
        () => parseIdList(text, { what: 'adapter' }),
        (err: unknown) => {
          assert.ok(err instanceof ApListError);
          assert.match(err.message, msg, text);
          return true;
        },
      );
    }
    assert.throws(
      () => parseIdList('16', { what: 'domain', max: 15 }),
      /above the highest domain id, 15/,
    );
  });

  it("prints ids compactly in the kernel's hex", () => {
    assert.equal(formatIdList([5, 6, 7, 10, 71], 2), '05-07,0a,47');
    assert.equal(formatIdList([4, 5], 4), '0004,0005');
    assert.equal(formatIdList([], 4), 'none');
  });
});

describe('mdevkit ap show', () => {
  it('draws the split and every matrix device as a grid of who holds each queue', () => {
    const lab = apLab();
    lab.port.write(`${TYPE}/create`, U1);
    lab.port.write(`${TYPE}/create`, U2);
    ap(lab, 'assign', U1, '--adapters', '5', '--domains', '4,6');
    ap(lab, 'reserve', '--adapters', '7'); // not in the configuration, but may be assigned
    ap(lab, 'assign', U2, '--adapters', '6,7', '--domains', '0x47');
    lab.open(U1);
    const { code, out } = ap(lab, 'show');
    assert.equal(code, 0);
    assert.match(out, /3 adapters, 3 domains/);
    assert.match(out, /queues: 3 for the host, 6 for guests; 2 matrix devices/);
    const grid = out.split('\n');
    const row = (label: string): string =>
      grid.find((l) => l.startsWith(label))!.replace(/\s+/g, ' ');
    assert.match(grid.find((l) => /^\s+04 06 47$/.test(l)) ?? '', /04 06 47/);
    assert.equal(row('03 CEX7C'), '03 CEX7C H H H');
    assert.equal(row('05 CEX8P'), '05 CEX8P A A .');
    assert.equal(row('06 CEX8C'), '06 CEX8C . . B');
    // Adapter 7 is assigned but not in the configuration: lower case.
    assert.equal(row('07 (absent)'), '07 (absent) b');
    assert.match(out, new RegExp(`A  ${U1}  \\(in use by a guest\\)`));
    assert.match(
      out,
      new RegExp(
        `B  ${U2}\n\\s+adapters 06,07; domains 0047; control domains none\n\\s+2 queues, 1 visible to the guest`,
      ),
    );
  });

  it("gives stable JSON with every queue's holder", () => {
    const lab = apLab();
    lab.port.write(`${TYPE}/create`, U1);
    ap(lab, 'assign', U1, '--adapters', '5', '--domains', '0x47', '--control-domains', '4');
    const json = JSON.parse(ap(lab, 'show', '--json').out) as {
      apmask: string;
      adapters: { id: number; type: string }[];
      queues: { apqn: string; holder: string; driver: string; status: string | null }[];
      matrixDevices: {
        uuid: string;
        letter: string;
        adapters: number[];
        controlDomains: number[];
        guestQueues: string[];
      }[];
    };
    assert.equal(json.apmask, read(lab, '/sys/bus/ap/apmask').trim());
    assert.deepEqual(
      json.adapters.map((a) => `${a.id}:${a.type}`),
      ['3:CEX7C', '5:CEX8P', '6:CEX8C'],
    );
    const q = (apqn: string) => json.queues.find((x) => x.apqn === apqn);
    assert.deepEqual(q('05.0047'), {
      apqn: '05.0047',
      adapter: 5,
      domain: 71,
      present: true,
      holder: U1,
      driver: 'vfio_ap',
      status: 'assigned',
    });
    assert.equal(q('03.0004')?.holder, 'host');
    assert.equal(q('03.0004')?.driver, 'cex4queue');
    assert.equal(q('06.0004')?.holder, 'free');
    assert.deepEqual(json.matrixDevices, [
      {
        uuid: U1,
        letter: 'A',
        adapters: [5],
        domains: [71],
        controlDomains: [4],
        guestQueues: ['05.0047'],
      },
    ]);
  });
});

describe('mdevkit ap reserve / release', () => {
  it('previews, then moves adapters and domains to guests through apmask/aqmask', () => {
    const lab = apLab();
    const dry = ap(lab, 'reserve', '--adapters', '3', '--dry-run');
    assert.match(dry.out, /apmask: -3/);
    assert.match(dry.out, /queues to guests \(vfio_ap\): 03\.0004 03\.0006 03\.0047/);
    assert.match(dry.out, /Dry run: nothing written/);
    assert.equal(
      lab.port.readlink('/sys/bus/ap/devices/03.0004/driver').endsWith('/cex4queue'),
      true,
    );

    const done = ap(lab, 'reserve', '--domains', '0x47');
    assert.match(done.out, /aqmask: -71/);
    assert.match(done.out, /queues to guests \(vfio_ap\): 03\.0047\n/);
    assert.match(done.out, /Done: 1 queue changed side/);
    assert.ok(lab.port.readlink('/sys/bus/ap/devices/03.0047/driver').endsWith('/vfio_ap'));
    assert.match(ap(lab, 'reserve', '--domains', '71').out, /Nothing to change/);

    const back = ap(lab, 'release', '--domains', '71');
    assert.match(back.out, /queues to the host:\s+03\.0047/);
    assert.ok(lab.port.readlink('/sys/bus/ap/devices/03.0047/driver').endsWith('/cex4queue'));
  });

  it('refuses to release queues a matrix device holds, naming queue and device, and changes nothing', () => {
    const lab = apLab();
    lab.port.write(`${TYPE}/create`, U1);
    ap(lab, 'assign', U1, '--adapters', '5', '--domains', '6');
    const apmask = read(lab, '/sys/bus/ap/apmask');
    const err = refusedWith(lab, 'release', '--adapters', '5,6');
    // What the kernel's apmask store says for it: EBUSY.
    assert.equal(err.code, 'queue-assigned');
    assert.equal(err.errno, 'EBUSY');
    assert.deepEqual(err.context, { queue: '05.0006', owner: U1 });
    const msg = err.message;
    assert.match(msg, new RegExp(`queue 05\\.0006 is assigned to matrix device ${U1}`));
    assert.match(msg, new RegExp(`mdevkit ap unassign ${U1} --adapters 0x5`));
    assert.equal(read(lab, '/sys/bus/ap/apmask'), apmask, 'adapter 6 did not move either');
    ap(lab, 'unassign', U1, '--adapters', '5');
    ap(lab, 'release', '--adapters', '5,6');
    assert.ok(lab.port.readlink('/sys/bus/ap/devices/05.0006/driver').endsWith('/cex4queue'));
  });

  it('undoes the apmask half when the aqmask write fails, so the pair is all or nothing', () => {
    const lab = apLab();
    // A port whose aqmask store fails as if another tool had raced us.
    const racing: SysfsPort = {
      description: 'racing lab',
      read: (p) => lab.port.read(p),
      list: (p) => lab.port.list(p),
      readlink: (p) => lab.port.readlink(p),
      kind: (p) => lab.port.kind(p),
      realpath: (p) => lab.port.realpath(p),
      write: (p, data) => {
        if (p === '/sys/bus/ap/aqmask') throw new ErrnoError('EBUSY', undefined, p);
        lab.port.write(p, data);
      },
    };
    const apmask = read(lab, '/sys/bus/ap/apmask');
    let out = '';
    const ctx: CommandIo = {
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: () => true },
      env: {},
      cwd: '/',
      readStdin: () => '',
    };
    assert.throws(
      () => runAp(ctx, racing, ['reserve', '--adapters', '3', '--domains', '4']),
      (err: unknown) => {
        const e = coded(err);
        return (
          e?.code === 'EBUSY' &&
          /refused the aqmask change: Device or resource busy/.test(e.message)
        );
      },
    );
    assert.match(out, /apmask: -3/);
    assert.equal(read(lab, '/sys/bus/ap/apmask'), apmask, 'apmask restored');
    assert.ok(lab.port.readlink('/sys/bus/ap/devices/03.0006/driver').endsWith('/cex4queue'));
  });

  it('checks its arguments', () => {
    const lab = apLab();
    assert.throws(() => ap(lab, 'reserve'), UsageError);
    assert.throws(
      () => ap(lab, 'reserve', '--adapters', '5,,6'),
      (e: unknown) => e instanceof UsageError && /empty entry/.test(e.message),
    );
    assert.throws(() => ap(lab, 'reserve', '5'), UsageError);
    assert.throws(() => ap(lab, 'frobnicate'), UsageError);
  });
});

describe('mdevkit ap assign / unassign', () => {
  it('applies the change in one ap_config write and shows before and after', () => {
    const lab = apLab();
    lab.port.write(`${TYPE}/create`, U1);
    const r = ap(
      lab,
      'assign',
      U1,
      '--adapters',
      '5,6',
      '--domains',
      '4,0x47',
      '--control-domains',
      '4',
    );
    assert.match(r.out, /now:   adapters none; domains none; control domains none/);
    assert.match(r.out, /after: adapters 05,06; domains 0004,0047; control domains 0004/);
    assert.match(r.out, /queues gained: 05\.0004 05\.0047 06\.0004 06\.0047/);
    assert.equal(read(lab, `${dev(U1)}/matrix`), '05.0004\n05.0047\n06.0004\n06.0047\n');
    assert.equal(read(lab, `${dev(U1)}/control_domains`), '0004\n');
    const u = ap(lab, 'unassign', U1.toUpperCase(), '--adapters', '6', '--control-domains', '4');
    assert.match(u.out, /queues lost:   06\.0004 06\.0047/);
    assert.equal(read(lab, `${dev(U1)}/matrix`), '05.0004\n05.0047\n');
    assert.match(ap(lab, 'assign', U1, '--adapters', '5').out, /Nothing to change/);
    const dry = ap(lab, 'assign', U1, '--domains', '6', '--dry-run');
    assert.match(dry.out, /queues gained: 05\.0006/);
    assert.equal(read(lab, `${dev(U1)}/matrix`), '05.0004\n05.0047\n');
  });

  it('explains host-owned and taken queues before writing anything', () => {
    const lab = apLab();
    lab.port.write(`${TYPE}/create`, U1);
    lab.port.write(`${TYPE}/create`, U2);
    ap(lab, 'assign', U1, '--adapters', '5', '--domains', '4');
    const before = read(lab, `${dev(U2)}/ap_config`);
    const err = refusedWith(lab, 'assign', U2, '--adapters', '3,5', '--domains', '4');
    // Both problems are named; the code is the one vfio_ap checks first.
    assert.equal(err.code, 'queue-host-owned');
    assert.equal(err.errno, 'EADDRNOTAVAIL');
    assert.deepEqual(err.context, { uuid: U2, queue: '03.0004' });
    const taken = refusedWith(lab, 'assign', U2, '--adapters', '5', '--domains', '4');
    assert.equal(taken.code, 'queue-in-use');
    assert.equal(taken.errno, 'EADDRINUSE');
    assert.deepEqual(taken.context, { uuid: U2, queue: '05.0004', owner: U1 });
    const msg = err.message;
    assert.match(msg, new RegExp(`cannot assign on matrix device ${U2}`));
    assert.match(msg, /queue 03\.0004 belongs to the host \(apmask\/aqmask\)/);
    assert.match(msg, /mdevkit ap reserve --adapters 0x3/);
    assert.match(msg, new RegExp(`queue 05\\.0004 is assigned to matrix device ${U1}`));
    assert.equal(read(lab, `${dev(U2)}/ap_config`), before, 'nothing written');
    assert.throws(
      () => ap(lab, 'assign', U2, '--domains', '256'),
      (e: unknown) => e instanceof UsageError && /above the highest domain id, 255/.test(e.message),
    );
    // Without APXA the host's own maxima apply (ap_max_domain_id 15).
    const small = labWith([
      { driver: 'vfio-ap', options: { apxa: false, adapters: [{ id: 1 }], domains: [2] } },
    ]);
    small.port.write(`${TYPE}/create`, U3);
    const high = refusedWith(small, 'assign', U3, '--domains', '16');
    assert.match(high.message, /domain 16 \(0x10\) is above this host's highest domain id, 15/);
    assert.equal(high.code, 'id-out-of-range');
    assert.equal(high.errno, 'ENODEV');
    assert.deepEqual(high.context, { uuid: U3, domain: '16', max: '15' });
  });

  it('works one id at a time on kernels without ap_config, undoing the steps when one fails', () => {
    const lab = apLab();
    lab.port.write(`${TYPE}/create`, U1);
    lab.port.write(`${TYPE}/create`, U2);
    let race: (() => void) | undefined;
    // An older kernel: no ap_config files. `race` runs before U1's assign_domain.
    const hidden = (p: string): boolean => p.endsWith('/ap_config');
    const old: SysfsPort = {
      description: 'older kernel',
      read: (p) => {
        if (hidden(p)) throw new ErrnoError('ENOENT', undefined, p);
        return lab.port.read(p);
      },
      list: (p) => lab.port.list(p).filter((n) => n !== 'ap_config'),
      readlink: (p) => lab.port.readlink(p),
      kind: (p) => (hidden(p) ? null : lab.port.kind(p)),
      realpath: (p) => lab.port.realpath(p),
      write: (p, data) => {
        if (hidden(p)) throw new ErrnoError('ENOENT', undefined, p);
        if (p === `${dev(U1)}/assign_domain`) race?.();
        lab.port.write(p, data);
      },
    };
    const ctx: CommandIo = {
      stdout: { write: () => true },
      stderr: { write: () => true },
      env: {},
      cwd: '/',
      readStdin: () => '',
    };
    runAp(ctx, old, [
      'assign',
      U1,
      '--adapters',
      '6',
      '--domains',
      '0x47',
      '--control-domains',
      '4',
    ]);
    assert.equal(read(lab, `${dev(U1)}/matrix`), '06.0047\n');
    runAp(ctx, old, ['unassign', U1, '--adapters', '6', '--control-domains', '4']);
    assert.equal(read(lab, `${dev(U1)}/matrix`), '.0047\n');
    assert.equal(read(lab, `${dev(U1)}/control_domains`), '');
    // U2 takes 05.0004 between U1's steps: the kernel says EADDRINUSE, U1's
    // earlier step (assign_adapter 5) is undone.
    race = () => {
      race = undefined;
      lab.port.write(`${dev(U2)}/assign_adapter`, '5');
      lab.port.write(`${dev(U2)}/assign_domain`, '4');
    };
    assert.throws(
      () => runAp(ctx, old, ['assign', U1, '--adapters', '5', '--domains', '4']),
      (err: unknown) => {
        const e = coded(err);
        return (
          e?.code === 'EADDRINUSE' &&
          e.context.owner === U2 &&
          /refused assign_domain 4 .*Address already in use \(queue 05\.0004 is assigned to matrix device 2.*the earlier steps were undone/.test(
            e.message,
          )
        );
      },
    );
    assert.equal(read(lab, `${dev(U1)}/matrix`), '.0047\n');
  });

  it('refuses devices that are not vfio_ap matrix devices, or absent', () => {
    const lab = apLab();
    lab.port.write('/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1/create', U3);
    const other = refusedWith(lab, 'assign', U3, '--adapters', '5');
    assert.match(other.message, /of type mtty-1, not a vfio_ap matrix device/);
    assert.equal(other.code, 'not-matrix-device');
    const absent = refusedWith(lab, 'assign', U2, '--adapters', '5');
    assert.match(absent.message, new RegExp(`no mediated device ${U2} is active`));
    assert.equal(absent.code, 'not-active');
    assert.throws(() => ap(lab, 'assign', 'not-a-uuid', '--adapters', '5'), UsageError);
    assert.throws(() => ap(lab, 'assign', U1), UsageError);
  });
});
