import { Lab } from '../../src/sim/lab.js';
import { parseProfile } from '../../src/sim/profiles/profile.js';

/** A lab with just the given device entries (inline profile). */
export function labWith(devices: { driver: string; options?: Record<string, unknown> }[]): Lab {
  return new Lab(parseProfile({ name: 'test', devices }, 'test profile'));
}

export const U1 = '11111111-1111-4111-8111-111111111111';
export const U2 = '22222222-2222-4222-8222-222222222222';
export const U3 = '33333333-3333-4333-8333-333333333333';

/** A fresh deterministic-looking v4 UUID for index i. */
export function uuidN(i: number): string {
  const h = i.toString(16).padStart(12, '0');
  return `${h.slice(0, 8)}-0000-4000-8000-${h}`;
}
