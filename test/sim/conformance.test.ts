import { assertAllDriversCovered, runConformance, type ConformanceCase } from './conformance.js';

/**
 * One case per driver model. A new driver adds its case here; the last test
 * fails until it does.
 */
const CASES: ConformanceCase[] = [
  { driver: 'mtty', exhaustedErrno: () => 'ENOSPC' },
  { driver: 'mdpy', exhaustedErrno: () => 'EUSERS' },
  { driver: 'mbochs', exhaustedErrno: () => 'ENOSPC' },
];

for (const c of CASES) runConformance(c);
assertAllDriversCovered(CASES.map((c) => c.driver));
