/**
 * Human lists of AP ids, what seed 003 asked for instead of 256-bit masks:
 * "5,0x47,10-12" — decimal or 0x hex numbers and inclusive ranges,
 * separated by commas (spaces around them are fine). The result is sorted
 * and without repeats. Mistakes are reported with the entry at fault.
 */
import { MdevError } from '../errors.js';

/** An id list that cannot be read (code `invalid-id-list`); the message names the entry at fault. */
export class ApListError extends MdevError {
  override readonly name = 'ApListError';
  constructor(message: string, value: string) {
    super('invalid-id-list', message, { context: { value } });
  }
}

export interface IdListRules {
  /** What the ids are, for messages: "adapter", "domain", "control domain". */
  readonly what: string;
  /** Highest id allowed (the machine's ap_max_adapter_id / ap_max_domain_id); 255 when unknown. */
  readonly max?: number;
}

const NUMBER = /^(0[xX][0-9a-fA-F]+|[0-9]+)$/;

function parseNumber(text: string, entry: string, rules: IdListRules): number {
  if (!NUMBER.test(text)) {
    throw new ApListError(
      `${rules.what} list: '${entry}' is not a number (use decimal like 71, hex like 0x47, or a range like 10-12)`,
      entry,
    );
  }
  // A leading zero means decimal here ("05" is 5), unlike the kernel's octal:
  // people copy ids from "05.0047" and mean them as written.
  const n =
    text.startsWith('0x') || text.startsWith('0X')
      ? parseInt(text.slice(2), 16)
      : parseInt(text, 10);
  const max = rules.max ?? 255;
  if (n > max) {
    throw new ApListError(
      `${rules.what} list: ${text} is above the highest ${rules.what} id, ${max} (0x${max.toString(16)})`,
      entry,
    );
  }
  return n;
}

export function parseIdList(text: string, rules: IdListRules): number[] {
  const entries = text.split(',').map((e) => e.trim());
  if (text.trim() === '' || entries.some((e) => e === '')) {
    throw new ApListError(
      `${rules.what} list: '${text}' has an empty entry (write ids like 5,0x47,10-12)`,
      text,
    );
  }
  const ids = new Set<number>();
  for (const entry of entries) {
    const dash = entry.indexOf('-', 1);
    if (dash < 0) {
      ids.add(parseNumber(entry, entry, rules));
      continue;
    }
    const lo = parseNumber(entry.slice(0, dash).trim(), entry, rules);
    const hi = parseNumber(entry.slice(dash + 1).trim(), entry, rules);
    if (hi < lo) {
      throw new ApListError(`${rules.what} list: range '${entry}' runs backwards`, entry);
    }
    for (let i = lo; i <= hi; i++) ids.add(i);
  }
  return [...ids].sort((a, b) => a - b);
}

/** Compact display in the kernel's hex: "05-07,0a" for adapters, "0004,0047" for domains. */
export function formatIdList(ids: readonly number[], width: 2 | 4): string {
  if (ids.length === 0) return 'none';
  const hex = (n: number): string => n.toString(16).padStart(width, '0');
  const parts: string[] = [];
  let start = ids[0]!;
  let prev = start;
  const flush = (): void => {
    parts.push(
      start === prev
        ? hex(start)
        : prev === start + 1
          ? `${hex(start)},${hex(prev)}`
          : `${hex(start)}-${hex(prev)}`,
    );
  };
  for (const id of ids.slice(1)) {
    if (id === prev + 1) {
      prev = id;
      continue;
    }
    flush();
    start = prev = id;
  }
  flush();
  return parts.join(',');
}

/** The same ids as a list this parser reads back, in hex: "0x5,0x47". */
export function idListArgument(ids: readonly number[]): string {
  return ids.map((i) => `0x${i.toString(16)}`).join(',');
}
