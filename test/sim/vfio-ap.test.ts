import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrnoError } from '../../src/common/errno.js';
import type { SysfsPort } from '../../src/port/sysfs-port.js';
import type { Lab } from '../../src/sim/lab.js';
import { U1, U2, U3, labWith } from '../support/labs.js';

/**
 * The emulated AP bus and vfio_ap matrix devices, driven through sysfs files
 * only, with the errno each rule gives (Documentation/arch/s390/vfio-ap.rst,
 * drivers/s390/crypto/vfio_ap_ops.c, ap_bus.c).
 */

const TYPE = '/sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough';
const dev = (u: string): string => `/sys/bus/mdev/devices/${u}`;
const ZERO = `0x${'0'.repeat(64)}`;
const ONES = `0x${'f'.repeat(64)}`;

/** Cards 03 (CEX7 CCA), 05 (CEX8 EP11), 06 (CEX8 accel); domains 4, 0x47, 0xff; all host-owned at boot. */
function apLab(options: Record<string, unknown> = {}): Lab {
  return labWith([
    {
      driver: 'vfio-ap',
      options: {
        adapters: [
          { id: 3, type: 'CEX7', mode: 'cca' },
          { id: 5, type: 'CEX8', mode: 'ep11' },
          { id: 6, type: 'CEX8', mode: 'accel' },
        ],
        domains: [4, 0x47, 0xff],
        ...options,
      },
    },
  ]);
}

function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (err instanceof ErrnoError) return err.code;
    throw err;
  }
}

function errorOf(fn: () => unknown): ErrnoError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ErrnoError) return err;
    throw err;
  }
  assert.fail('expected an ErrnoError');
}

/** A mask with exactly these ids set, as the kernel prints it. */
function maskText(ids: number[]): string {
  const bits = new Array<number>(256).fill(0);
  for (const i of ids) bits[i] = 1;
  let out = '0x';
  for (let n = 0; n < 64; n++) {
    out += (
      (bits[4 * n]! << 3) |
      (bits[4 * n + 1]! << 2) |
      (bits[4 * n + 2]! << 1) |
      bits[4 * n + 3]!
    ).toString(16);
  }
  return out;
}

const driverOf = (port: SysfsPort, apqn: string): string =>
  port.readlink(`/sys/bus/ap/devices/${apqn}/driver`).split('/').at(-1)!;

function create(port: SysfsPort, u: string): string {
  port.write(`${TYPE}/create`, u);
  return dev(u);
}

/** Give adapters 5 and 6 and domain 0x47 to guests: queues 05.*, 06.*, 03.0047. */
function splitForGuests(port: SysfsPort): void {
  port.write('/sys/bus/ap/apmask', '-5,-6');
  port.write('/sys/bus/ap/aqmask', '-0x47');
}

describe('vfio-ap: the AP bus', () => {
  it('shows the configuration: max ids, cards with type and mode, queues per adapter.domain', () => {
    const port = apLab().port;
    assert.equal(port.read('/sys/bus/ap/ap_max_adapter_id'), '255\n');
    assert.equal(port.read('/sys/bus/ap/ap_max_domain_id'), '255\n');
    assert.equal(port.read('/sys/devices/ap/card05/type'), 'CEX8P\n');
    assert.equal(port.read('/sys/devices/ap/card03/type'), 'CEX7C\n');
    assert.equal(port.read('/sys/devices/ap/card06/type'), 'CEX8A\n');
    assert.equal(port.read('/sys/devices/ap/card05/hwtype'), '14\n');
    assert.deepEqual(
      port.list('/sys/bus/ap/devices').sort(),
      [
        'card03',
        'card05',
        'card06',
        ...['03', '05', '06'].flatMap((a) => ['0004', '0047', '00ff'].map((d) => `${a}.${d}`)),
      ].sort(),
    );
    assert.equal(port.realpath('/sys/bus/ap/devices/05.0047'), '/sys/devices/ap/card05/05.0047');
    assert.equal(port.read('/sys/bus/ap/ap_adapter_mask'), `${maskText([3, 5, 6])}\n`);
    assert.equal(port.read('/sys/bus/ap/ap_usage_domain_mask'), `${maskText([4, 0x47, 0xff])}\n`);
  });

  it('without APXA addresses 64 adapters and 16 domains', () => {
    const port = labWith([
      { driver: 'vfio-ap', options: { apxa: false, adapters: [{ id: 1 }], domains: [2] } },
    ]).port;
    assert.equal(port.read('/sys/bus/ap/ap_max_adapter_id'), '63\n');
    assert.equal(port.read('/sys/bus/ap/ap_max_domain_id'), '15\n');
    port.write('/sys/bus/ap/apmask', '0x0');
    const d = create(port, U1);
    assert.equal(
      errnoOf(() => port.write(`${d}/assign_adapter`, '64')),
      'ENODEV',
    );
    assert.equal(
      errnoOf(() => port.write(`${d}/assign_domain`, '16')),
      'ENODEV',
    );
    port.write(`${d}/assign_adapter`, '63');
    port.write(`${d}/assign_domain`, '15');
    // ap_config: every mask is 256 bits, but ids above the maximum are refused whole.
    const before = port.read(`${d}/ap_config`);
    for (const [apm, aqm, adm] of [
      [maskText([64]), ZERO, ZERO],
      [ZERO, maskText([16]), ZERO],
      [ZERO, ZERO, maskText([16])],
    ]) {
      assert.equal(
        errnoOf(() => port.write(`${d}/ap_config`, `${apm},${aqm},${adm}`)),
        'ENODEV',
      );
    }
    assert.equal(port.read(`${d}/ap_config`), before);
  });

  it('reads apmask and aqmask as 0x and 64 hex digits, bit 0 leftmost; all host at boot', () => {
    const port = apLab().port;
    assert.equal(port.read('/sys/bus/ap/apmask'), `${ONES}\n`);
    assert.equal(port.read('/sys/bus/ap/aqmask'), `${ONES}\n`);
    for (const q of ['03.0004', '05.0047', '06.00ff']) assert.equal(driverOf(port, q), 'cex4queue');
    assert.equal(
      port.kind('/sys/bus/ap/devices/05.0047/status'),
      null,
      'no status while the host holds it',
    );
  });

  it('takes an absolute mask, padded on the right; too long or malformed is EINVAL and changes nothing', () => {
    const port = apLab().port;
    port.write('/sys/bus/ap/apmask', '0x8\n'); // adapter 0 only
    assert.equal(port.read('/sys/bus/ap/apmask'), `${maskText([0])}\n`);
    port.write('/sys/bus/ap/apmask', '0x0500'); // adapters 5 and 7
    assert.equal(port.read('/sys/bus/ap/apmask'), `${maskText([5, 7])}\n`);
    assert.equal(driverOf(port, '05.0004'), 'cex4queue');
    assert.equal(driverOf(port, '03.0004'), 'vfio_ap');
    port.write('/sys/bus/ap/apmask', `0x${'0'.repeat(63)}1`); // exactly 64 digits: adapter 255
    assert.equal(port.read('/sys/bus/ap/apmask'), `${maskText([255])}\n`);
    const before = port.read('/sys/bus/ap/apmask');
    for (const bad of [`0x${'0'.repeat(65)}`, '0xg', 'hello', '0x1 ', '0x1,0x2', '0x1\n\n']) {
      assert.equal(
        errnoOf(() => port.write('/sys/bus/ap/apmask', bad)),
        'EINVAL',
        JSON.stringify(bad),
      );
    }
    assert.equal(port.read('/sys/bus/ap/apmask'), before);
    port.write('/sys/bus/ap/aqmask', '0');
    assert.equal(port.read('/sys/bus/ap/aqmask'), `${ZERO}\n`);
  });

  it('takes relative +N/-N lists in decimal or hex, with ranges; a bad entry changes nothing', () => {
    const port = apLab().port;
    port.write('/sys/bus/ap/apmask', '0');
    port.write('/sys/bus/ap/apmask', '+5,+0x6,+10-12\n');
    assert.equal(port.read('/sys/bus/ap/apmask'), `${maskText([5, 6, 10, 11, 12])}\n`);
    port.write('/sys/bus/ap/apmask', '-11,-0xc');
    assert.equal(port.read('/sys/bus/ap/apmask'), `${maskText([5, 6, 10])}\n`);
    const before = port.read('/sys/bus/ap/apmask');
    for (const bad of ['+256', '+5,6', '+', '+12-10', '+1,*2', '-0x100']) {
      assert.equal(
        errnoOf(() => port.write('/sys/bus/ap/apmask', bad)),
        'EINVAL',
        bad,
      );
    }
    // '+1,+999': the first entry is fine, the second is not: nothing applies.
    assert.equal(
      errnoOf(() => port.write('/sys/bus/ap/apmask', '+1,+999')),
      'EINVAL',
    );
    assert.equal(port.read('/sys/bus/ap/apmask'), before);
  });

  it('binds each queue to the host driver or vfio_ap by the masks; vfio_ap queues show a status', () => {
    const port = apLab().port;
    splitForGuests(port);
    assert.equal(driverOf(port, '05.0004'), 'vfio_ap');
    assert.equal(driverOf(port, '06.00ff'), 'vfio_ap');
    assert.equal(driverOf(port, '03.0047'), 'vfio_ap');
    assert.equal(driverOf(port, '03.0004'), 'cex4queue');
    assert.ok(port.list('/sys/bus/ap/drivers/vfio_ap').includes('05.0004'));
    assert.ok(port.list('/sys/bus/ap/drivers/cex4queue').includes('03.0004'));
    assert.equal(port.read('/sys/bus/ap/devices/05.0004/status'), 'unassigned\n');
    assert.equal(port.kind('/sys/bus/ap/devices/03.0004/status'), null);
    // Links as sysfs stores them: relative, both ways.
    assert.equal(
      port.readlink('/sys/devices/ap/card05/05.0004/driver'),
      '../../../../bus/ap/drivers/vfio_ap',
    );
    assert.equal(
      port.readlink('/sys/bus/ap/drivers/vfio_ap/05.0004'),
      '../../../../devices/ap/card05/05.0004',
    );
    assert.equal(
      port.readlink('/sys/devices/ap/card05/driver'),
      '../../../bus/ap/drivers/cex4card',
    );
    // And back: the host takes queues nobody holds.
    port.write('/sys/bus/ap/apmask', '+5');
    assert.equal(driverOf(port, '05.0004'), 'cex4queue');
    assert.equal(port.kind('/sys/bus/ap/devices/05.0004/status'), null);
  });

  it('refuses with EBUSY a mask change that takes queues from a matrix device, changing nothing', () => {
    const lab = apLab();
    const port = lab.port;
    splitForGuests(port);
    const d = create(port, U1);
    port.write(`${d}/assign_adapter`, '5');
    port.write(`${d}/assign_domain`, '0xff');
    const ap = port.read('/sys/bus/ap/apmask');
    const aq = port.read('/sys/bus/ap/aqmask');
    const e = errorOf(() => port.write('/sys/bus/ap/apmask', '+5,+6'));
    assert.equal(e.code, 'EBUSY');
    // As from a kernel: the writer gets the errno, dmesg says which queue.
    assert.equal(e.detail, undefined);
    assert.match(
      lab.kernel
        .dmesg()
        .map((l) => l.message)
        .join('\n'),
      /05\.00ff.*cannot go back/,
    );
    // Atomic: adapter 6 (free) did not go to the host either.
    assert.equal(port.read('/sys/bus/ap/apmask'), ap);
    assert.equal(driverOf(port, '06.0004'), 'vfio_ap');
    assert.equal(
      errnoOf(() => port.write('/sys/bus/ap/apmask', ONES)),
      'EBUSY',
    );
    // aqmask: domain 0xff is host-usable on adapter 3 only when apmask allows; 5 is not
    // in apmask, so +0xff takes nothing from the device and succeeds.
    port.write('/sys/bus/ap/aqmask', '+0xff');
    assert.equal(driverOf(port, '05.00ff'), 'vfio_ap');
    assert.equal(driverOf(port, '03.00ff'), 'cex4queue');
    port.write('/sys/bus/ap/aqmask', aq);
    // A change that does not touch the device's queues goes through.
    port.write('/sys/bus/ap/apmask', '+6');
    assert.equal(driverOf(port, '06.0004'), 'cex4queue');
    // Once the device lets go, the host may have them.
    port.write(`${d}/unassign_domain`, '0xff');
    port.write('/sys/bus/ap/apmask', '+5');
    assert.equal(driverOf(port, '05.00ff'), 'cex4queue');
  });
});

describe('vfio-ap: the matrix parent and its devices', () => {
  it('registers /sys/devices/vfio_ap/matrix with one type and the features attribute', () => {
    const port = apLab().port;
    assert.equal(port.realpath('/sys/class/mdev_bus/matrix'), '/sys/devices/vfio_ap/matrix');
    assert.deepEqual(port.list('/sys/devices/vfio_ap/matrix/mdev_supported_types'), [
      'vfio_ap-passthrough',
    ]);
    assert.equal(port.read(`${TYPE}/name`), 'VFIO AP Passthrough Device\n');
    assert.equal(port.read(`${TYPE}/device_api`), 'vfio-ap\n');
    assert.equal(
      port.read('/sys/devices/vfio_ap/matrix/features'),
      'guest_matrix hotplug ap_config\n',
    );
    assert.equal(port.read(`${TYPE}/available_instances`), '65536\n');
  });

  it('creates empty devices with the attributes and no activate', () => {
    const port = apLab().port;
    const d = create(port, U1);
    for (const f of [
      'assign_adapter',
      'unassign_adapter',
      'assign_domain',
      'unassign_domain',
      'assign_control_domain',
      'unassign_control_domain',
      'matrix',
      'guest_matrix',
      'control_domains',
      'ap_config',
    ]) {
      assert.equal(port.kind(`${d}/${f}`), 'file', f);
    }
    assert.equal(port.kind(`${d}/activate`), null);
    assert.equal(port.read(`${d}/matrix`), '');
    assert.equal(port.read(`${d}/ap_config`), `${ZERO},${ZERO},${ZERO}\n`);
    assert.equal(
      errnoOf(() => port.read(`${d}/assign_adapter`)),
      'EACCES',
    );
  });

  it('assigns in decimal or 0x hex; repeating an assignment or unassigning the absent changes nothing', () => {
    const port = apLab().port;
    splitForGuests(port);
    const d = create(port, U1);
    port.write(`${d}/assign_adapter`, '5');
    assert.equal(port.read(`${d}/matrix`), '05.\n');
    port.write(`${d}/assign_adapter`, '0x6\n');
    assert.equal(port.read(`${d}/matrix`), '05.\n06.\n');
    port.write(`${d}/assign_adapter`, '5');
    assert.equal(port.read(`${d}/matrix`), '05.\n06.\n');
    port.write(`${d}/unassign_adapter`, '6');
    port.write(`${d}/unassign_adapter`, '6');
    port.write(`${d}/unassign_adapter`, '200'); // never assigned
    port.write(`${d}/assign_domain`, '71');
    port.write(`${d}/assign_domain`, '0x47');
    assert.equal(port.read(`${d}/matrix`), '05.0047\n');
    port.write(`${d}/unassign_adapter`, '5');
    assert.equal(port.read(`${d}/matrix`), '.0047\n');
    // ('' is no store at all: sysfs_kf_write returns 0 for an empty write.)
    for (const bad of ['five', '5 ', '-1', '0x']) {
      assert.equal(
        errnoOf(() => port.write(`${d}/assign_adapter`, bad)),
        'EINVAL',
        JSON.stringify(bad),
      );
    }
  });

  it('gives ENODEV for an id above the maximum, for every attribute', () => {
    const port = apLab().port;
    port.write('/sys/bus/ap/apmask', '0');
    const d = create(port, U1);
    for (const f of [
      'assign_adapter',
      'unassign_adapter',
      'assign_domain',
      'unassign_domain',
      'assign_control_domain',
      'unassign_control_domain',
    ]) {
      assert.equal(
        errnoOf(() => port.write(`${d}/${f}`, '256')),
        'ENODEV',
        f,
      );
    }
    port.write(`${d}/assign_adapter`, '255');
    port.write(`${d}/assign_domain`, '255');
    assert.equal(port.read(`${d}/matrix`), 'ff.00ff\n');
  });

  it('refuses queues the masks keep for the host with EADDRNOTAVAIL', () => {
    const lab = apLab();
    const port = lab.port;
    splitForGuests(port); // host keeps 03.0004 and 03.00ff
    const d = create(port, U1);
    port.write(`${d}/assign_domain`, '4');
    const e = errorOf(() => port.write(`${d}/assign_adapter`, '3'));
    assert.equal(e.code, 'EADDRNOTAVAIL');
    assert.equal(e.detail, undefined);
    assert.match(
      lab.kernel.dmesg().at(-1)?.message ?? '',
      /queue 03\.0004 is reserved for the host/,
    );
    assert.equal(port.read(`${d}/matrix`), '.0004\n', 'nothing changed');
    port.write(`${d}/unassign_domain`, '4');
    port.write(`${d}/assign_adapter`, '3'); // no domain: no queue yet
    assert.equal(
      errnoOf(() => port.write(`${d}/assign_domain`, '0xff')),
      'EADDRNOTAVAIL',
    );
    port.write(`${d}/assign_domain`, '0x47'); // 03.0047 is free for guests
    assert.equal(port.read(`${d}/matrix`), '03.0047\n');
    // Queues not in the configuration count too: 09.00ff is the host's by the masks.
    const other = create(port, U2);
    port.write(`${other}/assign_domain`, '0xff');
    assert.equal(
      errnoOf(() => port.write(`${other}/assign_adapter`, '9')),
      'EADDRNOTAVAIL',
    );
  });

  it('refuses a queue another matrix device holds with EADDRINUSE and logs the queue and its owner', () => {
    const lab = apLab();
    const port = lab.port;
    splitForGuests(port);
    const a = create(port, U1);
    const b = create(port, U2);
    port.write(`${a}/assign_adapter`, '5');
    port.write(`${a}/assign_domain`, '4');
    port.write(`${b}/assign_domain`, '4');
    const e = errorOf(() => port.write(`${b}/assign_adapter`, '5'));
    assert.equal(e.code, 'EADDRINUSE');
    assert.equal(e.detail, undefined);
    const log = lab.kernel.dmesg().map((l) => l.message);
    assert.ok(
      log.some((m) => m.includes(U2) && m.includes('05.0004') && m.includes(U1)),
      log.join('\n'),
    );
    assert.equal(port.read(`${b}/matrix`), '.0004\n');
    // Same adapter, another domain: a different queue, allowed.
    port.write(`${b}/unassign_domain`, '4');
    port.write(`${b}/assign_adapter`, '5');
    port.write(`${b}/assign_domain`, '0xff');
    assert.equal(port.read(`${b}/matrix`), '05.00ff\n');
    assert.equal(
      errnoOf(() => port.write(`${a}/assign_domain`, '0xff')),
      'EADDRINUSE',
    );
    // Removing the owner frees its queues.
    port.write(`${a}/remove`, '1');
    port.write(`${b}/assign_domain`, '4');
    assert.equal(port.read(`${b}/matrix`), '05.0004\n05.00ff\n');
  });

  it('does not check control domains against the masks, and lists them', () => {
    const port = apLab().port;
    const d = create(port, U1); // everything is the host's
    port.write(`${d}/assign_control_domain`, '4');
    port.write(`${d}/assign_control_domain`, '0xab');
    port.write(`${d}/assign_control_domain`, '4');
    assert.equal(port.read(`${d}/control_domains`), '0004\n00ab\n');
    const e = create(port, U2); // and two devices may share a control domain
    port.write(`${e}/assign_control_domain`, '4');
    port.write(`${d}/unassign_control_domain`, '0xab');
    port.write(`${d}/unassign_control_domain`, '0x10');
    assert.equal(port.read(`${d}/control_domains`), '0004\n');
  });

  it('guest_matrix shows only queues present and bound to vfio_ap', () => {
    const port = apLab().port;
    splitForGuests(port);
    port.write('/sys/bus/ap/apmask', '-7');
    const d = create(port, U1);
    port.write(`${d}/assign_adapter`, '5');
    port.write(`${d}/assign_adapter`, '7'); // not in the configuration
    port.write(`${d}/assign_domain`, '0x47');
    port.write(`${d}/assign_domain`, '0x30'); // not in the configuration
    assert.equal(port.read(`${d}/matrix`), '05.0030\n05.0047\n07.0030\n07.0047\n');
    assert.equal(port.read(`${d}/guest_matrix`), '05.0047\n');
  });

  it('ap_config reads three masks and a write replaces them at once or not at all', () => {
    const port = apLab().port;
    splitForGuests(port);
    const a = create(port, U1);
    const b = create(port, U2);
    port.write(`${b}/ap_config`, `${maskText([6])},${maskText([0xff])},${maskText([])}`);
    assert.equal(port.read(`${b}/matrix`), '06.00ff\n');

    port.write(`${a}/ap_config`, `${maskText([5])},${maskText([4, 0x47])},${maskText([4])}\n`);
    assert.equal(port.read(`${a}/matrix`), '05.0004\n05.0047\n');
    assert.equal(port.read(`${a}/control_domains`), '0004\n');
    assert.equal(
      port.read(`${a}/ap_config`),
      `${maskText([5])},${maskText([4, 0x47])},${maskText([4])}\n`,
    );
    const before = port.read(`${a}/ap_config`);
    const attempts: [string, string][] = [
      [`${maskText([5, 6])},${maskText([0xff])},${ZERO}`, 'EADDRINUSE'], // 06.00ff is b's
      [`${maskText([3, 5])},${maskText([4])},${ZERO}`, 'EADDRNOTAVAIL'], // 03.0004 is the host's
      [`${maskText([5])},${maskText([4])}`, 'EINVAL'], // two masks
      [`${maskText([5])},0xzz,${ZERO}`, 'EINVAL'],
      [`${maskText([5])},0x${'0'.repeat(65)},${ZERO}`, 'EINVAL'],
    ];
    for (const [text, code] of attempts) {
      assert.equal(
        errnoOf(() => port.write(`${a}/ap_config`, text)),
        code,
        text,
      );
      assert.equal(port.read(`${a}/ap_config`), before, `${text}: nothing changed`);
    }
    // Shorter masks are padded on the right; a move off old queues frees them.
    port.write(`${a}/ap_config`, '0x02,0x08,0x0');
    assert.equal(port.read(`${a}/matrix`), '06.0004\n');
    port.write(`${b}/assign_adapter`, '5');
    assert.equal(port.read(`${b}/matrix`), '05.00ff\n06.00ff\n');
  });

  it('shows queue status and hot-plugs assignment changes into an open device', () => {
    const lab = apLab();
    const port = lab.port;
    splitForGuests(port);
    const d = create(port, U1);
    port.write(`${d}/assign_adapter`, '5');
    port.write(`${d}/assign_domain`, '4');
    assert.equal(port.read('/sys/bus/ap/devices/05.0004/status'), 'assigned\n');
    assert.equal(port.read('/sys/bus/ap/devices/06.0004/status'), 'unassigned\n');
    lab.open(U1);
    assert.equal(port.read('/sys/bus/ap/devices/05.0004/status'), 'in use\n');
    const seq = lab.kernel.dmesg().at(-1)?.seq ?? 0;
    port.write(`${d}/assign_adapter`, '6');
    assert.equal(port.read(`${d}/guest_matrix`), '05.0004\n06.0004\n');
    assert.equal(port.read('/sys/bus/ap/devices/06.0004/status'), 'in use\n');
    port.write(`${d}/unassign_adapter`, '5');
    assert.equal(port.read(`${d}/guest_matrix`), '06.0004\n');
    assert.equal(port.read('/sys/bus/ap/devices/05.0004/status'), 'unassigned\n');
    const log = lab.kernel
      .dmesg(seq)
      .map((l) => l.message)
      .join('\n');
    assert.match(log, /hot plug: plugged 06\.0004/);
    assert.match(log, /hot plug: unplugged 05\.0004/);
    // An open device cannot be removed; closed, it can, and its queues are free.
    assert.equal(
      errnoOf(() => port.write(`${d}/remove`, '1')),
      'EBUSY',
    );
    lab.close(U1);
    assert.equal(port.read('/sys/bus/ap/devices/06.0004/status'), 'assigned\n');
    port.write(`${d}/remove`, '1');
    assert.equal(port.read('/sys/bus/ap/devices/06.0004/status'), 'unassigned\n');
  });

  it('counts matrix devices against the driver maximum with EUSERS', () => {
    const port = apLab({ maxMatrixDevices: 2 }).port;
    create(port, U1);
    create(port, U2);
    assert.equal(port.read(`${TYPE}/available_instances`), '0\n');
    assert.equal(
      errnoOf(() => port.write(`${TYPE}/create`, U3)),
      'EUSERS',
    );
  });

  it("takes the boot masks from the profile in the files' syntax and rejects bad profiles", () => {
    const port = apLab({ apmask: '-5', aqmask: '0x' + 'f'.repeat(17) + 'e' }).port;
    assert.equal(driverOf(port, '05.0004'), 'vfio_ap');
    assert.equal(driverOf(port, '03.0047'), 'vfio_ap');
    assert.equal(driverOf(port, '03.0004'), 'cex4queue');
    assert.throws(() => apLab({ adapters: [{ id: 300 }] }), /adapters\[0\]\.id/);
    assert.throws(() => apLab({ apxa: false, domains: [16] }), /domains\[0\].*maximum 15/);
    assert.throws(() => apLab({ apmask: '+999' }), /options\.apmask/);
  });
});
