/**
 * The kernel's kstrtoul/kstrtoint parsing rules, which decide what sysfs
 * stores accept: optional '+' (and '-' for signed), base 0 meaning "0x" hex,
 * leading "0" octal, else decimal; one trailing newline allowed; nothing
 * else. Returns undefined where the kernel returns an error.
 */
export function kstrtoul(buf: string, base: 0 | 10 | 16 = 0): number | undefined {
  let s = buf.endsWith('\n') ? buf.slice(0, -1) : buf;
  if (s.startsWith('+')) s = s.slice(1);
  let radix: number = base;
  if (base === 0 || base === 16) {
    if (/^0[xX]/.test(s)) {
      s = s.slice(2);
      radix = 16;
    } else if (base === 0) {
      radix = s.length > 1 && s.startsWith('0') ? 8 : 10;
    }
  }
  const digits = radix === 16 ? /^[0-9a-fA-F]+$/ : radix === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  if (!digits.test(s)) return undefined;
  const n = parseInt(s, radix);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** kstrtoint: like kstrtoul but signed and limited to 32 bits. */
export function kstrtoint(buf: string, base: 0 | 10 | 16 = 0): number | undefined {
  const s = buf.endsWith('\n') ? buf.slice(0, -1) : buf;
  const neg = s.startsWith('-');
  const n = kstrtoul(neg ? s.slice(1) : s, base);
  if (n === undefined) return undefined;
  const v = neg ? -n : n;
  return v >= -0x80000000 && v <= 0x7fffffff ? v : undefined;
}
