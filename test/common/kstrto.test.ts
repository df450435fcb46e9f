import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kstrtoint, kstrtoul } from '../../src/common/kstrto.js';

describe('kstrtoul (base 0), as sysfs stores parse numbers', () => {
  const cases: [string, number | undefined][] = [
    ['1', 1],
    ['1\n', 1],
    ['+7', 7],
    ['0x1f', 31],
    ['0X1F\n', 31],
    ['017', 15],
    ['0', 0],
    ['', undefined],
    ['\n', undefined],
    ['1\n\n', undefined],
    [' 1', undefined],
    ['-1', undefined],
    ['0x', undefined],
    ['08', undefined],
    ['1a', undefined],
    ['yes', undefined],
  ];
  for (const [input, want] of cases) {
    it(`${JSON.stringify(input)} -> ${String(want)}`, () => assert.equal(kstrtoul(input), want));
  }
  it('base 10 does not take hex', () => assert.equal(kstrtoul('0x10', 10), undefined));
  it('kstrtoint takes a sign and stays in 32 bits', () => {
    assert.equal(kstrtoint('-5'), -5);
    assert.equal(kstrtoint('2147483648'), undefined);
  });
});
