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

/** Why `input` is not a UUID, in the words of the uuid crate (for usage errors). */
export function uuidParseProblem(input: string): string {
  const s = input.startsWith('urn:uuid:') ? input.slice(9) : input;
  const bad = /[^0-9a-fA-F-{}]/.exec(s);
  if (bad !== null) {
    return `invalid character: expected an optional prefix of \`urn:uuid:\` followed by [0-9a-fA-F-], found \`${bad[0]}\` at ${bad.index + 1}`;
  }
  return `invalid length: expected length 32 for simple format, found ${s.length}`;
}
