/**
 * JSON syntax errors worded as mdevctl words them (serde_json's message and
 * position), whatever JavaScript engine runs mdevkit. Each expected message
 * is what mdevctl 1.4.0 printed for the same `--jsonfile` content ("Error:
 * <message>"); 1.2.0 agrees except for a bad \u escape, where its older
 * serde_json counts one column less.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JsonSyntaxError, describeJsonSyntaxError, parseJson } from '../../src/host/json-syntax.js';

const CASES: readonly [string, string][] = [
  ['', 'EOF while parsing a value at line 1 column 0'],
  ['  ', 'EOF while parsing a value at line 1 column 2'],
  ['x', 'expected value at line 1 column 1'],
  ['nul', 'EOF while parsing a value at line 1 column 3'],
  ['{\n\n  "a": tru }', 'expected ident at line 3 column 11'],
  ['{"mdev_type": 3', 'EOF while parsing an object at line 1 column 15'],
  ['{"a":1,}', 'trailing comma at line 1 column 8'],
  ['{"a":[1,]}', 'trailing comma at line 1 column 9'],
  ['{"a":1 "b"}', 'expected `,` or `}` at line 1 column 8'],
  ['{"a" 1}', 'expected `:` at line 1 column 6'],
  ['{,}', 'key must be a string at line 1 column 2'],
  ['{"a":1,', 'EOF while parsing a value at line 1 column 7'],
  ['[1 2]', 'expected `,` or `]` at line 1 column 4'],
  ['[1,', 'EOF while parsing a value at line 1 column 3'],
  ['{"mdev_type":"x"} x', 'trailing characters at line 1 column 19'],
  ['"abc', 'EOF while parsing a string at line 1 column 4'],
  ['{"a":"\\q"}', 'invalid escape at line 1 column 8'],
  ['{"a":"\\u12"}', 'invalid escape at line 1 column 12'],
  ['{"a":"\\u1', 'EOF while parsing a string at line 1 column 9'],
  [
    '{"a":\n  "b\tc"}',
    'control character (\\u0000-\\u001F) found while parsing a string at line 2 column 5',
  ],
  ['[01]', 'invalid number at line 1 column 3'],
  ['[1.]', 'invalid number at line 1 column 4'],
  ['[1.x]', 'invalid number at line 1 column 4'],
  ['[1e]', 'invalid number at line 1 column 4'],
  ['[1e+x]', 'invalid number at line 1 column 5'],
  ['[-]', 'invalid number at line 1 column 3'],
];

test("syntax errors are described with serde_json's message and position", () => {
  for (const [text, message] of CASES) {
    assert.equal(describeJsonSyntaxError(text), message, JSON.stringify(text));
    assert.throws(() => parseJson(text), { name: JsonSyntaxError.name, message });
  }
});

test('columns count bytes, as serde_json does', () => {
  // "é" is two bytes in UTF-8: the 1 where a comma belongs is the 11th
  // byte, and serde_json reports the one after what it looked at.
  assert.equal(describeJsonSyntaxError('["é", "b" 1]'), 'expected `,` or `]` at line 1 column 12');
});

test('serde_json stops at 128 levels of nesting', () => {
  const deep = '['.repeat(130);
  assert.equal(describeJsonSyntaxError(deep), 'recursion limit exceeded at line 1 column 128');
});

test('valid JSON parses as JSON.parse parses it', () => {
  const text = '{"mdev_type": "mtty-1", "start": "auto", "attrs": [{"a": "1"}], "n": -1.5e3}';
  assert.deepEqual(parseJson(text), JSON.parse(text));
});
