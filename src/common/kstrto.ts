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

/**
 * kstrtoint: like kstrtoul but signed and limited to 32 bits. After a "-"
 * no "+" may follow (kstrtoll parses the rest with _kstrtoull, which takes
 * no sign): "-+5" is EINVAL, as in the kernel.
 */
export function kstrtoint(buf: string, base: 0 | 10 | 16 = 0): number | undefined {
  // kstrtoul takes the one trailing newline; stripping one here too let "0\n\n" through.
  const neg = buf.startsWith('-');
  if (neg && buf.startsWith('+', 1)) return undefined;
  const n = kstrtoul(neg ? buf.slice(1) : buf, base);
  if (n === undefined) return undefined;
  const v = neg ? 0 - n : n; // "-0" is 0, not -0
  return v >= -0x80000000 && v <= 0x7fffffff ? v : undefined;
}
