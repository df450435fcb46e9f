/**
 * The AP bus's 256-bit masks as the kernel reads and writes them
 * (drivers/s390/crypto/ap_bus.c): bit 0 is the leftmost bit of the first hex
 * digit ("inverted" bit order, test_bit_inv), so "0x8" followed by zeros
 * means id 0 and "0x...01" means id 255.
 *
 * A mask is a Uint8Array of 0/1 per id: the emulator's hot paths test single
 * ids far more often than they combine whole masks, and 256 bytes is cheap.
 */

/** AP_DEVICES and AP_DOMAINS: every mask has 256 bits, whatever the machine's maximum id. */
export const AP_MASK_BITS = 256;

export type ApMask = Uint8Array;

export function emptyMask(): ApMask {
  return new Uint8Array(AP_MASK_BITS);
}

export function fullMask(): ApMask {
  return new Uint8Array(AP_MASK_BITS).fill(1);
}

export function maskOf(ids: Iterable<number>): ApMask {
  const m = emptyMask();
  for (const id of ids) m[id] = 1;
  return m;
}

export function masksEqual(a: ApMask, b: ApMask): boolean {
  for (let i = 0; i < AP_MASK_BITS; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** "0x" and 64 hex digits, as `apmask` and `ap_config` show a mask. */
export function formatMask(mask: ApMask): string {
  let out = '0x';
  for (let nibble = 0; nibble < AP_MASK_BITS / 4; nibble++) {
    const i = nibble * 4;
    const v = (mask[i]! << 3) | (mask[i + 1]! << 2) | (mask[i + 2]! << 1) | mask[i + 3]!;
    out += v.toString(16);
  }
  return out;
}

const HEX_DIGIT = /[0-9a-fA-F]/;

/**
 * An absolute mask (hex2bitmap): an optional "0x" (or a lone "x"), then hex
 * digits filling the mask from the left; fewer digits leave the rest zero,
 * more digits than the mask holds are an error, as is anything after the
 * digits but one newline. Undefined where the kernel says EINVAL.
 */
export function parseHexMask(text: string): ApMask | undefined {
  let s = text;
  if (s.startsWith('0x')) s = s.slice(1);
  if (s.startsWith('x')) s = s.slice(1);
  const mask = emptyMask();
  let pos = 0;
  let bit = 0;
  while (pos < s.length && bit < AP_MASK_BITS && HEX_DIGIT.test(s[pos]!)) {
    const v = Number.parseInt(s[pos]!, 16);
    for (let n = 0; n < 4; n++) if (v & (0x8 >> n)) mask[bit + n] = 1;
    bit += 4;
    pos++;
  }
  if (s[pos] === '\n') pos++;
  return pos === s.length ? mask : undefined;
}

/**
 * simple_strtoul(s, &end, 0) at `pos`: "0x" hex, a leading 0 octal, else
 * decimal. Returns the value and where the digits ended; `end === pos` when
 * there were no digits.
 */
function strtoul(s: string, pos: number): { value: number; end: number } {
  let radix = 10;
  let p = pos;
  if (s[p] === '0' && (s[p + 1] === 'x' || s[p + 1] === 'X') && HEX_DIGIT.test(s[p + 2] ?? '')) {
    radix = 16;
    p += 2;
  } else if (s[p] === '0') {
    radix = 8;
  }
  const digit = radix === 16 ? HEX_DIGIT : radix === 8 ? /[0-7]/ : /[0-9]/;
  const start = p;
  while (p < s.length && digit.test(s[p]!)) p++;
  if (p === start) return { value: 0, end: pos };
  return { value: Number.parseInt(s.slice(start, p), radix), end: p };
}

/**
 * A relative change (modify_bitmap): entries "+N" or "-N", or ranges
 * "+N-M", separated by commas (or newlines), applied in order to a copy of
 * `current`. Numbers are decimal, "0x" hex or 0-octal. Undefined where the
 * kernel says EINVAL; `current` is never changed.
 */
export function applyMaskEdits(current: ApMask, text: string): ApMask | undefined {
  const mask = current.slice();
  let pos = 0;
  while (pos < text.length) {
    const sign = text[pos++];
    if (sign !== '+' && sign !== '-') return undefined;
    const first = strtoul(text, pos);
    if (first.end === pos || first.value >= AP_MASK_BITS) return undefined;
    pos = first.end;
    let last = first.value;
    if (text[pos] === '-') {
      pos++;
      const upper = strtoul(text, pos);
      if (upper.end === pos || first.value > upper.value || upper.value >= AP_MASK_BITS) {
        return undefined;
      }
      last = upper.value;
      pos = upper.end;
    }
    for (let i = first.value; i <= last; i++) mask[i] = sign === '+' ? 1 : 0;
    while (text[pos] === ',' || text[pos] === '\n') pos++;
  }
  return mask;
}

/**
 * What a store to `apmask` or `aqmask` (and the ap.apmask= boot parameter)
 * accepts: a relative change when it starts with + or -, else an absolute
 * mask. The result is a new mask; nothing is changed on error.
 */
export function parseMaskStore(current: ApMask, text: string): ApMask | undefined {
  return text.startsWith('+') || text.startsWith('-')
    ? applyMaskEdits(current, text)
    : parseHexMask(text);
}

/** APQN text as the kernel prints it: "05.0047". */
export function apqnText(apid: number, apqi: number): string {
  return `${apid.toString(16).padStart(2, '0')}.${apqi.toString(16).padStart(4, '0')}`;
}
