/**
 * vfio-ap figures, each beside a baseline run in the same process:
 *  - assign_domain (+ the unassign that restores the state) through the
 *    sysfs port on a full 256 × 256 AP configuration with 1000 matrix
 *    devices, against the same writes on a lab with one card and one device
 *    (the cost of the path walk and the store itself);
 *  - the same on a "wide" device that holds all 256 adapters, where each
 *    assign_domain creates and checks 256 queues;
 *  - an apmask rewrite that moves 24,448 queues between host and guests with
 *    1000 devices, against the same rewrite with no matrix devices; and one
 *    that the devices' queues make fail with EBUSY.
 * Goal: assign_domain <= 100 µs per operation.
 */
import { Lab } from '../src/sim/lab.js';
import { parseProfile } from '../src/sim/profiles/profile.js';

const TYPE = '/sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough';
const DEVICES = 1000;

function uuid(i: number): string {
  const h = i.toString(16).padStart(12, '0');
  return `${h.slice(0, 8)}-0000-4000-8000-${h}`;
}

function apLab(cards: number, domains: number, aqmask: string): Lab {
  return new Lab(
    parseProfile(
      {
        name: 'bench',
        devices: [
          {
            driver: 'vfio-ap',
            options: {
              apxa: true,
              adapters: Array.from({ length: cards }, (_, id) => ({ id, type: 'CEX8' })),
              domains: Array.from({ length: domains }, (_, d) => d),
              apmask: '0x0',
              aqmask,
            },
          },
        ],
      },
      'bench',
    ),
  );
}

function microsPerOp(n: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(n, 2000); i++) fn(i); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  return Number(process.hrtime.bigint() - t0) / 1e3 / n;
}

function millis(reps: number, fn: (i: number) => void): number {
  fn(0);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) fn(i);
  return Number(process.hrtime.bigint() - t0) / 1e6 / reps;
}

// Domains 64..254 are the host's by aqmask (apmask 0: no host queue yet);
// devices use domains 0..62 and 255, and the measured ops 64..254.
const AQMASK = '-0-255,+64-254';

const t0 = process.hrtime.bigint();
const big = apLab(256, 256, AQMASK);
const setupMs = Number(process.hrtime.bigint() - t0) / 1e6;
const port = big.port;
// 1000 devices: device i holds adapters 16*(i%16) .. +15 on domain floor(i/16):
// disjoint queues, 16 each.
for (let i = 0; i < DEVICES; i++) {
  port.write(`${TYPE}/create`, uuid(i));
  const base = (i % 16) * 16;
  const adapters = Array.from({ length: 16 }, (_, k) => base + k);
  const apm = maskHex(adapters);
  const aqm = maskHex([Math.floor(i / 16)]);
  port.write(`/sys/bus/mdev/devices/${uuid(i)}/ap_config`, `${apm},${aqm},0x0`);
}
// The wide device: every adapter, on domain 255.
const WIDE = uuid(5000);
port.write(`${TYPE}/create`, WIDE);
port.write(`/sys/bus/mdev/devices/${WIDE}/ap_config`, `0x${'f'.repeat(64)},${maskHex([255])},0x0`);

// The measured domains must be free for guests: give 0..254 to vfio_ap via aqmask
// for the assign_domain runs, then restore the bench's aqmask for the rewrite.
port.write('/sys/bus/ap/aqmask', '0x0');

const N = 50_000;
const assignBig = microsPerOp(N, (i) => {
  const dev = `/sys/bus/mdev/devices/${uuid(i % DEVICES)}`;
  const d = String(64 + (i % 191));
  port.write(`${dev}/assign_domain`, d);
  port.write(`${dev}/unassign_domain`, d);
});
const wideDev = `/sys/bus/mdev/devices/${WIDE}`;
const assignWide = microsPerOp(N / 10, (i) => {
  const d = String(64 + (i % 191));
  port.write(`${wideDev}/assign_domain`, d);
  port.write(`${wideDev}/unassign_domain`, d);
});

const small = apLab(1, 1, '0x0');
small.port.write(`${TYPE}/create`, uuid(1));
const smallDev = `/sys/bus/mdev/devices/${uuid(1)}`;
small.port.write(`${smallDev}/assign_adapter`, '0');
const assignSmall = microsPerOp(N, (i) => {
  const d = String(64 + (i % 191));
  small.port.write(`${smallDev}/assign_domain`, d);
  small.port.write(`${smallDev}/unassign_domain`, d);
});

// apmask rewrites: adapters 0..127 to the host and back (128 × 191 queues move).
port.write('/sys/bus/ap/aqmask', AQMASK);
const HALF = `0x${'f'.repeat(32)}${'0'.repeat(32)}`;
const rewrite = (lab: Lab) => (i: number) =>
  lab.port.write('/sys/bus/ap/apmask', i % 2 === 0 ? HALF : '0x0');
const rewriteBig = millis(20, rewrite(big));
const bare = apLab(256, 256, AQMASK);
const rewriteBare = millis(20, rewrite(bare));
// A rewrite the devices refuse: adapters to the host while domain 0 is the host's too.
port.write('/sys/bus/ap/aqmask', '+0');
const refused = millis(20, () => {
  try {
    port.write('/sys/bus/ap/apmask', HALF);
    throw new Error('expected EBUSY');
  } catch (err) {
    if ((err as { code?: string }).code !== 'EBUSY') throw err;
  }
});

function maskHex(ids: number[]): string {
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

const f = (n: number, digits = 2): string => n.toFixed(digits).padStart(10);
console.log(
  `setup: 256 cards x 256 domains (${port.list('/sys/bus/ap/devices').length - 256} queues), ${DEVICES + 1} matrix devices; lab built in ${setupMs.toFixed(0)} ms`,
);
console.log('figure                                               mdevkit     baseline   ratio');
console.log(
  `assign_domain+unassign, µs/pair (1000 devs vs 1 dev) ${f(assignBig)}  ${f(assignSmall)}  ${(assignBig / assignSmall).toFixed(2)}x   goal <= 200 µs/pair (100 µs/op)`,
);
console.log(
  `  same on a device with 256 adapters, µs/pair        ${f(assignWide)}  ${f(assignSmall)}  ${(assignWide / assignSmall).toFixed(2)}x`,
);
console.log(
  `apmask rewrite, ms (1000 devices vs none)           ${f(rewriteBig)}  ${f(rewriteBare)}  ${(rewriteBig / rewriteBare).toFixed(2)}x   24,448 queues move`,
);
console.log(`  refused rewrite (EBUSY, 1000 devices), ms          ${f(refused)}`);
