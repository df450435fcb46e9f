import { randomUUID } from 'node:crypto';

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** UUID_STRING_LEN in the kernel. */
export const UUID_STRING_LEN = 36;

/** A canonical 36-character UUID in either case. */
export function isUuid(s: string): boolean {
  return s.length === UUID_STRING_LEN && UUID_RE.test(s);
}

export function newUuid(): string {
  return randomUUID();
}
