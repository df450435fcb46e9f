/**
 * JSON that does not parse, described as mdevctl describes it: serde_json's
 * message for the first syntax error and where it is ("expected `,` or `}`
 * at line 3 column 5"). JSON.parse's own messages are the JavaScript
 * engine's (V8 and JavaScriptCore word them differently), so they never
 * reach a user: the same input gives the same message under Node and under
 * Bun, and the one mdevctl gives.
 *
 * The walk follows serde_json's parser (a `serde_json::Value` read from a
 * string): which error each state raises, and whether it is placed at the
 * byte just consumed or at the one looked at (Error::syntax with `position`
 * or `peek_position`). Lines count from 1, columns are bytes into the line.
 */

export class JsonSyntaxError extends Error {
  override readonly name = 'JsonSyntaxError';
}

/** JSON.parse, failing with serde_json's description of the error. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new JsonSyntaxError(describeJsonSyntaxError(text));
  }
}

const RECURSION_LIMIT = 128;

class Found {
  constructor(
    readonly message: string,
    readonly index: number,
  ) {}
}

/** serde_json's message for the first error in `text`; text JSON.parse rejects. */
export function describeJsonSyntaxError(text: string): string {
  const b = Buffer.from(text, 'utf8');
  let i = 0;
  let depth = RECURSION_LIMIT;
  // serde's `error` (at the bytes consumed) and `peek_error` (one further).
  const error = (message: string): never => {
    throw new Found(message, i);
  };
  const peekError = (message: string): never => {
    throw new Found(message, Math.min(i + 1, b.length));
  };
  const peek = (): number => (i < b.length ? b[i]! : -1);
  const whitespace = (): number => {
    while (i < b.length && (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x09 || b[i] === 0x0d)) i++;
    return peek();
  };
  const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
  const isHex = (c: number): boolean =>
    isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

  const ident = (rest: string): void => {
    for (let k = 0; k < rest.length; k++) {
      if (i >= b.length) error('EOF while parsing a value');
      if (b[i++] !== rest.charCodeAt(k)) error('expected ident');
    }
  };

  const digits = (): boolean => {
    const start = i;
    while (isDigit(peek())) i++;
    return i > start;
  };

  const exponent = (): void => {
    i++; // e or E
    if (peek() === 0x2b || peek() === 0x2d) i++;
    if (i >= b.length) error('EOF while parsing a value');
    if (!isDigit(b[i++]!)) error('invalid number');
    digits();
  };

  const number = (): void => {
    if (i >= b.length) error('EOF while parsing a value');
    const first = b[i++]!;
    if (first === 0x30) {
      if (isDigit(peek())) peekError('invalid number');
    } else if (isDigit(first)) {
      digits();
    } else {
      error('invalid number');
    }
    if (peek() === 0x2e) {
      i++;
      if (!digits()) peekError(i < b.length ? 'invalid number' : 'EOF while parsing a value');
    }
    if (peek() === 0x65 || peek() === 0x45) exponent();
  };

  const string = (): void => {
    for (;;) {
      while (i < b.length && b[i] !== 0x22 && b[i] !== 0x5c && b[i]! >= 0x20) i++;
      if (i === b.length) error('EOF while parsing a string');
      const c = b[i++]!;
      if (c === 0x22) return;
      if (c !== 0x5c) error('control character (\\u0000-\\u001F) found while parsing a string');
      if (i >= b.length) error('EOF while parsing a string');
      const e = b[i++]!;
      if (e === 0x75) {
        if (i + 4 > b.length) {
          i = b.length;
          error('EOF while parsing a string');
        }
        const hex = [b[i]!, b[i + 1]!, b[i + 2]!, b[i + 3]!];
        i += 4;
        if (!hex.every(isHex)) error('invalid escape');
      } else if (!'"\\/bfnrt'.includes(String.fromCharCode(e))) {
        error('invalid escape');
      }
    }
  };

  const nested = (): void => {
    if (--depth === 0) peekError('recursion limit exceeded');
    i++;
  };

  const list = (): void => {
    nested();
    let first = true;
    for (;;) {
      let c = whitespace();
      if (c === -1) peekError('EOF while parsing a list');
      if (c === 0x5d) break;
      if (!first) {
        if (c !== 0x2c) peekError('expected `,` or `]`');
        i++;
        c = whitespace();
        if (c === 0x5d) peekError('trailing comma');
        if (c === -1) peekError('EOF while parsing a value');
      }
      first = false;
      value();
    }
    i++;
    depth++;
  };

  const object = (): void => {
    nested();
    let first = true;
    for (;;) {
      let c = whitespace();
      if (c === -1) peekError('EOF while parsing an object');
      if (c === 0x7d) break;
      if (!first) {
        if (c !== 0x2c) peekError('expected `,` or `}`');
        i++;
        c = whitespace();
        if (c === 0x7d) peekError('trailing comma');
        if (c === -1) peekError('EOF while parsing a value');
      }
      if (c !== 0x22) peekError('key must be a string');
      first = false;
      i++;
      string();
      c = whitespace();
      if (c === -1) peekError('EOF while parsing an object');
      if (c !== 0x3a) peekError('expected `:`');
      i++;
      value();
    }
    i++;
    depth++;
  };

  function value(): void {
    const c = whitespace();
    if (c === -1) peekError('EOF while parsing a value');
    if (c === 0x6e) {
      i++;
      ident('ull');
    } else if (c === 0x74) {
      i++;
      ident('rue');
    } else if (c === 0x66) {
      i++;
      ident('alse');
    } else if (c === 0x2d) {
      i++;
      number();
    } else if (isDigit(c)) {
      number();
    } else if (c === 0x22) {
      i++;
      string();
    } else if (c === 0x5b) {
      list();
    } else if (c === 0x7b) {
      object();
    } else {
      peekError('expected value');
    }
  }

  try {
    value();
    if (whitespace() !== -1) peekError('trailing characters');
  } catch (found) {
    if (!(found instanceof Found)) throw found;
    let line = 1;
    let lineStart = 0;
    for (let k = 0; k < found.index; k++) {
      if (b[k] === 0x0a) {
        line++;
        lineStart = k + 1;
      }
    }
    return `${found.message} at line ${line} column ${found.index - lineStart}`;
  }
  // Valid as far as this walk sees (JSON.parse and serde disagree only on
  // what this walk does not model, such as numbers too large for a double).
  return 'invalid JSON';
}
