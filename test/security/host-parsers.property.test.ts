/**
 * Property-based tests of the parsers that take what a user, a file or a
 * store hands in (issue 12's suite), with fast-check: UUID spellings, AP id
 * lists, AP masks (both sides: the library reading sysfs, the emulator's
 * stores), the kernel's kstrto* rules and definitions (mdevctl's JSON, and
 * the words of a JSON syntax error). Each property holds for every input,
 * not only the ones someone thought of: no parser throws anything but its
 * own refusal, what it accepts comes out canonical, and what it writes it
 * reads back.
 *
 * The kstrto* reference below restates lib/kstrtox.c's rules independently
 * of the implementation under test.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { kstrtoint, kstrtoul } from '../../src/common/kstrto.js';
import { isUuid } from '../../src/common/uuid.js';
import { ApListError, idListArgument, parseIdList } from '../../src/host/ap/ids.js';
import { formatMaskText, idsOfMask, parseMaskText } from '../../src/host/ap/model.js';
import {
  ConfigError,
  formatConfig,
  parseConfig,
  readConfigValue,
  type MdevConfig,
} from '../../src/host/config-store.js';
import { MdevError } from '../../src/host/errors.js';
import { describeJsonSyntaxError } from '../../src/host/json-syntax.js';
import { parseUuid, uuidParseProblem } from '../../src/host/uuid-forms.js';
import {
  AP_MASK_BITS,
  applyMaskEdits,
  emptyMask,
  formatMask,
  maskOf,
  parseHexMask,
  parseMaskStore,
} from '../../src/sim/drivers/vfio-ap/bitmap.js';

const RUNS = { numRuns: 2000 };
const CANONICAL = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Strings of any code units: lone surrogates, controls and all. */
const anyString = fc.string({ unit: 'binary', maxLength: 80 });

describe('UUID spellings (the uuid crate’s parse_str, as mdevctl takes them)', () => {
  const spelling = fc
    .tuple(fc.uuid(), fc.constantFrom('hyphenated', 'simple', 'braced', 'urn'), fc.boolean())
    .chain(([u, form, upper]) => {
      const body = form === 'simple' ? u.replaceAll('-', '') : u;
      const text = form === 'braced' ? `{${body}}` : form === 'urn' ? `urn:uuid:${body}` : body;
      return fc.tuple(fc.constant(u), upper ? fc.mixedCase(fc.constant(text)) : fc.constant(text));
    });

  it('every spelling of a UUID reads as the canonical lower-case form', () => {
    fc.assert(
      fc.property(spelling, ([u, text]) => {
        // mixedCase may have upper-cased "urn:uuid:", which the crate refuses too.
        if (text.toLowerCase().startsWith('urn:uuid:') && !text.startsWith('urn:uuid:')) return;
        assert.equal(parseUuid(text), u.toLowerCase());
      }),
      RUNS,
    );
  });

  it('anything else is refused, never thrown at, and what is taken is canonical', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          anyString,
          spelling.map(([, t]) => t),
          mutated(spelling.map(([, t]) => t)),
        ),
        (s) => {
          const u = parseUuid(s);
          if (u !== undefined) {
            assert.match(u, CANONICAL);
            assert.ok(isUuid(u));
            assert.equal(parseUuid(u), u);
          } else {
            assert.equal(typeof uuidParseProblem(s), 'string');
          }
        },
      ),
      RUNS,
    );
  });
});

/** A string with one character replaced, inserted or removed. */
function mutated(base: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc
    .tuple(
      base,
      fc.nat(),
      fc.constantFrom('replace', 'insert', 'delete'),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
    )
    .map(([s, at, how, c]) => {
      const i = s.length === 0 ? 0 : at % s.length;
      if (how === 'replace') return s.slice(0, i) + c + s.slice(i + 1);
      if (how === 'insert') return s.slice(0, i) + c + s.slice(i);
      return s.slice(0, i) + s.slice(i + 1);
    });
}

describe('AP id lists ("5,0x47,10-12")', () => {
  const max = fc.constantFrom(15, 63, 255);
  /** A set of ids and one way of writing it: decimal or hex, runs as ranges, spaces around commas. */
  const written = max.chain((m) =>
    fc.uniqueArray(fc.integer({ min: 0, max: m }), { minLength: 1, maxLength: 40 }).chain((ids) => {
      const sorted = [...ids].sort((a, b) => a - b);
      const runs: [number, number][] = [];
      for (const id of sorted) {
        const last = runs[runs.length - 1];
        if (last !== undefined && last[1] === id - 1) last[1] = id;
        else runs.push([id, id]);
      }
      const num = (n: number, hex: boolean): string => (hex ? `0x${n.toString(16)}` : String(n));
      return fc
        .tuple(
          fc.array(fc.tuple(fc.boolean(), fc.boolean(), fc.constantFrom('', ' ', '  ')), {
            minLength: runs.length,
            maxLength: runs.length,
          }),
          fc.shuffledSubarray(runs, { minLength: runs.length, maxLength: runs.length }),
        )
        .map(([styles, order]) => ({
          max: m,
          ids: sorted,
          text: order
            .map(([lo, hi], i) => {
              const [hex, asRange, pad] = styles[i]!;
              if (lo === hi || !asRange) {
                return Array.from({ length: hi - lo + 1 }, (_, k) => num(lo + k, hex)).join(
                  `${pad},${pad}`,
                );
              }
              return `${num(lo, hex)}-${num(hi, !hex)}`;
            })
            .join(`${styles[0]![2]},${styles[0]![2]}`),
        }));
    }),
  );

  it('any way of writing a set of ids reads back as that set, sorted', () => {
    fc.assert(
      fc.property(written, ({ max: m, ids, text }) => {
        assert.deepEqual(parseIdList(text, { what: 'adapter', max: m }), ids, text);
        assert.deepEqual(parseIdList(idListArgument(ids), { what: 'adapter', max: m }), ids);
      }),
      RUNS,
    );
  });

  it('anything else is refused with invalid-id-list, and never yields an id above the maximum', () => {
    const listish = fc.string({
      unit: fc.constantFrom(...'0123456789abcdefxX-, \t+\n'.split('')),
      maxLength: 40,
    });
    fc.assert(
      fc.property(
        fc.oneof(anyString, listish, mutated(written.map((w) => w.text))),
        max,
        (s, m) => {
          let ids: number[];
          try {
            ids = parseIdList(s, { what: 'domain', max: m });
          } catch (err) {
            assert.ok(err instanceof ApListError, String(err));
            assert.equal(err.code, 'invalid-id-list');
            return;
          }
          assert.ok(ids.length >= 1 && ids.length <= m + 1);
          for (const [i, id] of ids.entries()) {
            assert.ok(
              Number.isInteger(id) && id >= 0 && id <= m,
              `${id} from ${JSON.stringify(s)}`,
            );
            if (i > 0) assert.ok(id > ids[i - 1]!);
          }
        },
      ),
      RUNS,
    );
  });
});

describe('AP masks (apmask, aqmask, ap_config)', () => {
  const idSet = fc.uniqueArray(fc.integer({ min: 0, max: 255 }), { maxLength: 64 });

  it('the library reads back what it writes, and the emulator reads the same format', () => {
    fc.assert(
      fc.property(idSet, (ids) => {
        const sorted = [...ids].sort((a, b) => a - b);
        const text = formatMaskText(ids);
        assert.match(text, /^0x[0-9a-f]{64}$/);
        assert.deepEqual(idsOfMask(parseMaskText(`${text}\n`, 'apmask')), sorted);
        const simMask = parseHexMask(text);
        assert.ok(simMask !== undefined);
        assert.equal(formatMask(simMask), text);
        assert.equal(formatMask(maskOf(ids)), text);
      }),
      RUNS,
    );
  });

  it('any text is a mask or a refusal, never an exception', () => {
    const maskish = fc.string({
      unit: fc.constantFrom(...'0123456789abcdefABCDEFxX+-,\n '.split('')),
      maxLength: 80,
    });
    fc.assert(
      fc.property(fc.oneof(anyString, maskish), (s) => {
        try {
          assert.equal(parseMaskText(s, 'apmask').length, 256);
        } catch (err) {
          assert.ok(err instanceof MdevError && err.code === 'sysfs-malformed', String(err));
        }
        const m = parseMaskStore(emptyMask(), s);
        if (m !== undefined) assert.equal(m.length, AP_MASK_BITS);
      }),
      RUNS,
    );
  });

  it("relative edits (+N, -N, +N-M) do what the kernel's modify_bitmap does", () => {
    const num = (n: number): fc.Arbitrary<string> =>
      fc.constantFrom(String(n), `0x${n.toString(16)}`, n === 0 ? '0' : `0${n.toString(8)}`);
    const edit = fc
      .tuple(
        fc.constantFrom('+', '-'),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        fc.boolean(),
      )
      .chain(([sign, a, b, range]) => {
        const lo = Math.min(a, b);
        const hi = Math.max(a, b);
        return range
          ? fc.tuple(num(lo), num(hi)).map(([x, y]) => ({ sign, lo, hi, text: `${sign}${x}-${y}` }))
          : num(lo).map((x) => ({ sign, lo, hi: lo, text: `${sign}${x}` }));
      });
    fc.assert(
      fc.property(
        idSet,
        fc.array(edit, { minLength: 1, maxLength: 8 }),
        fc.constantFrom(',', '\n', ',,'),
        (start, edits, sep) => {
          const want = maskOf(start);
          for (const e of edits)
            for (let i = e.lo; i <= e.hi; i++) want[i] = e.sign === '+' ? 1 : 0;
          const before = maskOf(start);
          const got = applyMaskEdits(before, edits.map((e) => e.text).join(sep));
          assert.ok(got !== undefined);
          assert.equal(formatMask(got), formatMask(want));
          assert.equal(
            formatMask(before),
            formatMask(maskOf(start)),
            'the current mask was changed',
          );
        },
      ),
      RUNS,
    );
  });
});

/**
 * lib/kstrtox.c restated: kstrtoull takes an optional "+", then
 * _kstrtoull: the base (0: "0x" followed by a hex digit is 16, a leading
 * "0" is 8, else 10; 16: an optional "0x"), at least one digit, an
 * optional single "\n" and nothing else; overflow of 64 bits is ERANGE.
 * kstrtoll takes "-" and then _kstrtoull directly (no "+" after "-").
 * Returns a bigint or the errno.
 */
function kernelStrtoull(
  s: string,
  base: 0 | 10 | 16,
  plusAllowed = true,
): bigint | 'EINVAL' | 'ERANGE' {
  let p = plusAllowed && s.startsWith('+') ? s.slice(1) : s;
  let radix: number = base === 0 ? 10 : base;
  const hexDigit = (c: string | undefined): boolean => c !== undefined && /^[0-9a-fA-F]$/.test(c);
  if (base === 0) {
    if (p[0] === '0' && (p[1] === 'x' || p[1] === 'X') && hexDigit(p[2])) radix = 16;
    else if (p[0] === '0') radix = 8;
  }
  if ((radix === 16 || base === 16) && p[0] === '0' && (p[1] === 'x' || p[1] === 'X')) {
    if (base === 16 || hexDigit(p[2])) p = p.slice(2);
  }
  const digit = radix === 16 ? /^[0-9a-fA-F]/ : radix === 8 ? /^[0-7]/ : /^[0-9]/;
  let i = 0;
  let v = 0n;
  let overflow = false;
  while (i < p.length && digit.test(p[i]!)) {
    v = v * BigInt(radix) + BigInt(Number.parseInt(p[i]!, 16));
    if (v > 0xffffffffffffffffn) overflow = true;
    i++;
  }
  if (i === 0) return 'EINVAL';
  if (p[i] === '\n') i++;
  if (i !== p.length) return 'EINVAL';
  return overflow ? 'ERANGE' : v;
}

function kernelStrtoll(s: string, base: 0 | 10 | 16): bigint | 'EINVAL' | 'ERANGE' {
  if (!s.startsWith('-')) return kernelStrtoull(s, base);
  const v = kernelStrtoull(s.slice(1), base, false);
  return typeof v === 'bigint' ? -v : v;
}

describe("kstrtoul and kstrtoint (the kernel's rules for sysfs numbers)", () => {
  const numberish = fc.oneof(
    fc.string({ unit: fc.constantFrom(...'0123456789abcdefxX+-\n '.split('')), maxLength: 24 }),
    fc
      .bigInt({ min: 0n, max: 2n ** 66n })
      .chain((n) =>
        fc.constantFrom(
          n.toString(),
          `0x${n.toString(16)}`,
          `0${n.toString(8)}`,
          `+${n}`,
          `${n}\n`,
          `-${n}`,
          `-+${n}`,
        ),
      ),
    anyString,
  );
  const base = fc.constantFrom<0 | 10 | 16>(0, 10, 16);

  it('kstrtoul takes what the kernel takes, with the same value (to 2^53)', () => {
    fc.assert(
      fc.property(numberish, base, (s, b) => {
        const got = kstrtoul(s, b);
        const want = kernelStrtoull(s, b);
        if (typeof want === 'bigint' && want <= BigInt(Number.MAX_SAFE_INTEGER)) {
          assert.equal(got, Number(want), `${JSON.stringify(s)} base ${b}`);
        } else {
          assert.equal(got, undefined, `${JSON.stringify(s)} base ${b}: kernel ${String(want)}`);
        }
      }),
      RUNS,
    );
  });

  it('kstrtoint takes what the kernel takes, within 32 bits', () => {
    fc.assert(
      fc.property(numberish, base, (s, b) => {
        const got = kstrtoint(s, b);
        const want = kernelStrtoll(s, b);
        if (typeof want === 'bigint' && want >= -(2n ** 31n) && want < 2n ** 31n) {
          assert.equal(got, Number(want), `${JSON.stringify(s)} base ${b}`);
        } else {
          assert.equal(got, undefined, `${JSON.stringify(s)} base ${b}: kernel ${String(want)}`);
        }
      }),
      RUNS,
    );
  });
});

describe('definitions (mdevctl’s JSON)', () => {
  const printable = fc
    .string({ unit: 'grapheme', minLength: 1, maxLength: 20 })
    .filter(
      (s) =>
        !/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/.test(
          s,
        ),
    );
  const plain = { noNullPrototype: true } as const;
  const config: fc.Arbitrary<MdevConfig> = fc.record(
    {
      mdevType: printable,
      start: fc.constantFrom('auto' as const, 'manual' as const),
      attrs: fc.array(
        fc.record({ name: printable, value: fc.oneof(printable, fc.constant('')) }, plain),
        { maxLength: 6 },
      ),
    },
    plain,
  );

  it('what is written reads back the same, byte for byte', () => {
    fc.assert(
      fc.property(config, (c) => {
        const text = formatConfig(c);
        assert.deepEqual(parseConfig(text), c);
        assert.equal(formatConfig(parseConfig(text)), text);
      }),
      RUNS,
    );
  });

  it('any JSON value is a definition or a reason, never an exception, and never a control character', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const p = readConfigValue(v);
        for (const a of p.attrs) {
          assert.equal(typeof a.name, 'string');
          assert.equal(typeof a.value, 'string');
          assert.ok(!/[\u0000-\u001f]/.test(a.name + a.value));
        }
        if (p.error === undefined) assert.equal(typeof p.mdevType, 'string');
      }),
      RUNS,
    );
  });

  /** JSON-ish text: real JSON, cut and mutated, with a marker that must never be quoted. */
  const MARK = 'ZQJ';
  const jsonish = fc.oneof(
    mutated(fc.json().map((j) => j.replace(/"/, `"${MARK}`))),
    fc.json().map((j) => `${MARK}${j}`),
    fc.tuple(fc.json(), fc.nat()).map(([j, n]) => `${j}${MARK}`.slice(0, n % (j.length + 4))),
    fc.string({
      unit: fc.constantFrom(...`{}[]",:0123456789.eE+-tfnrul \n\t\\${MARK}`.split('')),
      maxLength: 60,
    }),
  );

  it('a text that is not JSON is refused with a place, never with its words', () => {
    fc.assert(
      fc.property(jsonish, (s) => {
        try {
          parseConfig(s, '/etc/mdevctl.d/p/u');
        } catch (err) {
          assert.ok(err instanceof ConfigError, String(err));
          assert.ok(!err.message.includes(MARK), err.message);
        }
      }),
      RUNS,
    );
  });

  it('the syntax scanner finds an error wherever JSON.parse does, and says where, as serde_json', () => {
    const depth = (s: string): number => {
      let d = 0;
      let max = 0;
      for (const c of s) {
        if (c === '[' || c === '{') max = Math.max(max, ++d);
        else if (c === ']' || c === '}') d--;
      }
      return max;
    };
    fc.assert(
      fc.property(fc.oneof(jsonish, anyString), (s) => {
        let parses = true;
        try {
          JSON.parse(s);
        } catch {
          parses = false;
        }
        const words = describeJsonSyntaxError(s);
        // serde_json refuses nesting deeper than 128, which JSON.parse takes.
        if (parses && depth(s) < 128) assert.equal(words, 'invalid JSON', JSON.stringify(s));
        if (!parses) {
          assert.match(
            words,
            /^[a-zA-Z `,:\]}()\\0-9-]+ at line \d+ column \d+$/,
            JSON.stringify(s),
          );
          const line = Number(/at line (\d+)/.exec(words)![1]);
          assert.ok(line >= 1 && line <= s.split('\n').length, `${words} for ${JSON.stringify(s)}`);
        }
      }),
      RUNS,
    );
  });
});
