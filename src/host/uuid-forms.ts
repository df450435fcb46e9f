/**
 * The UUID spellings mdevctl accepts on its command line and in config file
 * names (the Rust uuid crate's parse_str): hyphenated, simple (32 hex
 * digits), braced "{...}" and "urn:uuid:..." — any case. Returns the
 * canonical lower-case hyphenated form, or undefined.
 */
const HEX32 = /^[0-9a-fA-F]{32}$/;
const HYPHENATED = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

const CANONICAL = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function parseUuid(input: string): string | undefined {
  if (input.length === 36 && CANONICAL.test(input)) return input; // the usual spelling
  let s = input;
  if (s.length === 45 && s.startsWith('urn:uuid:')) s = s.slice(9);
  else if (s.length === 38 && s.startsWith('{') && s.endsWith('}')) s = s.slice(1, -1);
  let hex: string;
  if (s.length === 36 && HYPHENATED.test(s)) hex = s.replaceAll('-', '');
  else if (s.length === 32 && HEX32.test(s)) hex = s;
  else return undefined;
  hex = hex.toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Why `input` is not a UUID, as the uuid crate (1.x) explains it in
 * mdevctl's usage errors: the first character that is neither a hex digit
 * nor "-" (after an optional "{...}" or "urn:uuid:"), else the length of a
 * simple UUID, else the number of groups, else the first group of the
 * wrong length. Positions count from 1, in bytes.
 */
export function uuidParseProblem(raw: string): string {
  // A braced or urn: UUID of the right length fails inside, and the crate
  // explains the inside alone (positions counted from its start).
  const exact =
    (Buffer.byteLength(raw) === 38 && raw.startsWith('{') && raw.endsWith('}')) ||
    (Buffer.byteLength(raw) === 45 && raw.startsWith('urn:uuid:'));
  const input = exact ? (raw.startsWith('{') ? raw.slice(1, -1) : raw.slice(9)) : raw;
  let body = input;
  let offset = 0;
  let simple = true;
  if (input.length >= 2 && input.startsWith('{') && input.endsWith('}')) {
    body = input.slice(1, -1);
    offset = 1;
    simple = false;
  } else if (input.startsWith('urn:uuid:')) {
    body = input.slice(9);
    offset = 9;
    simple = false;
  }
  const hyphens: number[] = [];
  let at = 0; // byte position in body
  for (const ch of body) {
    if (ch.codePointAt(0)! > 0x7f || !/[0-9a-fA-F-]/.test(ch)) {
      return `invalid character: expected an optional prefix of \`urn:uuid:\` followed by [0-9a-fA-F-], found \`${ch}\` at ${at + offset + 1}`;
    }
    if (ch === '-') hyphens.push(at);
    at += 1;
  }
  const bytes = Buffer.byteLength(input);
  if (hyphens.length === 0 && simple) {
    return `invalid length: expected length 32 for simple format, found ${bytes}`;
  }
  if (hyphens.length !== 4) return `invalid group count: expected 5, found ${hyphens.length + 1}`;
  const starts = [0, 9, 14, 19, 24];
  const expected = [8, 4, 4, 4, 12];
  for (let i = 0; i < 4; i++) {
    if (hyphens[i] !== starts[i + 1]! - 1) {
      return `invalid group length in group ${i}: expected ${expected[i]}, found ${hyphens[i]! - starts[i]!}`;
    }
  }
  return `invalid group length in group 4: expected 12, found ${bytes - starts[4]!}`;
}
