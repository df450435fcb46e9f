import { assertAllDriversCovered, runConformance, type ConformanceCase } from './conformance.js';

/**
 * One case per driver model. A new driver adds its case here; the last test
 * fails until it does.
 */
const CASES: ConformanceCase[] = [
  { driver: 'mtty', exhaustedErrno: () => 'ENOSPC' },
  { driver: 'mdpy', exhaustedErrno: () => 'EUSERS' },
  { driver: 'mbochs', exhaustedErrno: () => 'ENOSPC' },
  // vfio-ap: matrix devices start empty; the core counts them (EUSERS). The
  // kernel allows 65536, so the case asks for a modest pool to fill.
  { driver: 'vfio-ap', options: { maxMatrixDevices: 16 }, exhaustedErrno: () => 'EUSERS' },
];

for (const c of CASES) runConformance(c);
assertAllDriversCovered(CASES.map((c) => c.driver));
