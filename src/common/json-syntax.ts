/**
 * Why a text is not JSON, said without quoting it.
 *
 * V8's JSON.parse messages quote the document ("Unexpected token 'r',
 * "root:$y$j9T"... is not valid JSON" — the whole of it when it is short),
 * so a definition linked to /etc/shadow, or `--jsonfile /etc/shadow`, would
 * put a secret's first bytes into an error that a less privileged client
 * reads. mdevctl reports serde_json's errors instead, which name a place
 * and never a byte: "expected value at line 1 column 1". This scanner finds
 * the first error the way serde_json does and words it the same way, so the
 * drop-in's messages match the real mdevctl's and carry nothing of the file.
 *
 * Only called once JSON.parse has failed, so it favours clarity over speed.
 * It is iterative (a stack of open containers), since a hostile document may
 * nest a million levels deep.
 */

/** serde_json's words for each error (its ErrorCode's Display). */
const WORDS = {
  eofValue: 'EOF while parsing a value',
  eofList: 'EOF while parsing a list',
  eofObject: 'EOF while parsing an object',
  eofString: 'EOF while parsing a string',
  colon: 'expected `:`',
  listCommaOrEnd: 'expected `,` or `]`',
  objectCommaOrEnd: 'expected `,` or `}`',
  ident: 'expected ident',
  value: 'expected value',
  escape: 'invalid escape',
  number: 'invalid number',
  control: 'control character (\\u0000-\\u001F) found while parsing a string',
  key: 'key must be a string',
  hexEnd: 'unexpected end of hex escape',
  loneSurrogate: 'lone leading surrogate in hex escape',
  trailingComma: 'trailing comma',
  trailing: 'trailing characters',
} as const;

export interface JsonSyntaxError {
  /** serde_json's words for the error. */
  readonly words: string;
  /** 1-based line. */
  readonly line: number;
  /** serde_json's column: bytes (UTF-8) into the line, up to and including the offending one. */
  readonly column: number;
}

class Fail {
  constructor(readonly error: JsonSyntaxError) {}
}

/**
 * The first syntax error of `text` as serde_json reports it, or undefined
 * when the grammar holds (JSON.parse may still refuse what serde accepts or
 * the reverse at the edges: lone surrogates, huge exponents).
 */
export function findJsonSyntaxError(text: string): JsonSyntaxError | undefined {
  let i = 0;
  let line = 1;
  let column = 0; // bytes consumed on the current line

  const peek = (): string | undefined => (i < text.length ? text[i] : undefined);
  const bump = (): void => {
    const cp = text.codePointAt(i)!;
    const units = cp > 0xffff ? 2 : 1;
    if (cp === 0x0a) {
      line++;
      column = 0;
    } else column += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    i += units;
  };
  /** An error about what was just consumed. */
  const here = (words: string): Fail => new Fail({ words, line, column });
  /** An error about the next byte, not consumed yet (serde's peek_error). */
  const ahead = (words: string): Fail => new Fail({ words, line, column: column + 1 });
  const skipSpace = (): void => {
    for (let c = peek(); c === ' ' || c === '\t' || c === '\n' || c === '\r'; c = peek()) bump();
  };
  const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
  const isHex = (c: string | undefined): boolean => c !== undefined && /^[0-9a-fA-F]$/.test(c);

  const hex4 = (): number => {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = peek();
      if (c === undefined) throw here(WORDS.eofString);
      bump();
      if (!isHex(c)) throw here(WORDS.escape);
      v = v * 16 + parseInt(c, 16);
    }
    return v;
  };

  const string = (): void => {
    bump(); // the opening quote
    for (;;) {
      const c = peek();
      if (c === undefined) throw here(WORDS.eofString);
      bump();
      if (c === '"') return;
      if (c < ' ') throw here(WORDS.control);
      if (c !== '\\') continue;
      const e = peek();
      if (e === undefined) throw here(WORDS.eofString);
      bump();
      if ('"\\/bfnrt'.includes(e)) continue;
      if (e !== 'u') throw here(WORDS.escape);
      const unit = hex4();
      if (unit < 0xd800 || unit > 0xdbff) continue;
      // A leading surrogate must be followed by the escape of a trailing one.
      if (peek() !== '\\') throw ahead(WORDS.hexEnd);
      bump();
      if (peek() !== 'u') throw ahead(WORDS.hexEnd);
      bump();
      const next = hex4();
      if (next < 0xdc00 || next > 0xdfff) throw here(WORDS.loneSurrogate);
    }
  };

  const number = (): void => {
    if (peek() === '-') bump();
    const first = peek();
    if (first === undefined) throw here(WORDS.eofValue);
    bump();
    if (first === '0') {
      if (isDigit(peek())) throw ahead(WORDS.number);
    } else if (isDigit(first)) {
      while (isDigit(peek())) bump();
    } else throw here(WORDS.number);
    if (peek() === '.') {
      bump();
      const d = peek();
      if (d === undefined) throw here(WORDS.eofValue);
      if (!isDigit(d)) throw ahead(WORDS.number);
      while (isDigit(peek())) bump();
    }
    if (peek() === 'e' || peek() === 'E') {
      bump();
      if (peek() === '+' || peek() === '-') bump();
      const d = peek();
      if (d === undefined) throw here(WORDS.eofValue);
      if (!isDigit(d)) throw ahead(WORDS.number);
      while (isDigit(peek())) bump();
    }
  };

  const ident = (word: string): void => {
    for (const expected of word) {
      const c = peek();
      if (c === undefined) throw here(WORDS.eofValue);
      bump();
      if (c !== expected) throw here(WORDS.ident);
    }
  };

  /** Open containers, innermost last; `first` until one element was read. */
  const stack: { kind: 'list' | 'object'; first: boolean }[] = [];

  /** A value begins here: scalars are read whole, containers are opened. */
  const value = (): void => {
    skipSpace();
    const c = peek();
    if (c === undefined) throw here(WORDS.eofValue);
    if (c === '"') string();
    else if (c === '{') {
      bump();
      stack.push({ kind: 'object', first: true });
    } else if (c === '[') {
      bump();
      stack.push({ kind: 'list', first: true });
    } else if (c === '-' || isDigit(c)) number();
    else if (c === 't') ident('true');
    else if (c === 'f') ident('false');
    else if (c === 'n') ident('null');
    else throw ahead(WORDS.value);
  };

  /** After `{` or `,` in an object: a key and its colon. */
  const key = (): void => {
    if (peek() !== '"') throw ahead(WORDS.key);
    string();
    skipSpace();
    const c = peek();
    if (c === undefined) throw here(WORDS.eofObject);
    if (c !== ':') throw ahead(WORDS.colon);
    bump();
  };

  try {
    value();
    for (;;) {
      const top = stack[stack.length - 1];
      skipSpace();
      const c = peek();
      if (top === undefined) {
        if (c !== undefined) throw ahead(WORDS.trailing);
        return undefined;
      }
      const close = top.kind === 'list' ? ']' : '}';
      const eof = top.kind === 'list' ? WORDS.eofList : WORDS.eofObject;
      if (c === undefined) throw here(eof);
      if (c === close) {
        bump();
        stack.pop();
        continue;
      }
      if (!top.first) {
        if (c !== ',')
          throw ahead(top.kind === 'list' ? WORDS.listCommaOrEnd : WORDS.objectCommaOrEnd);
        bump();
        skipSpace();
        const after = peek();
        if (after === undefined) throw here(eof);
        if (after === close) throw ahead(WORDS.trailingComma);
      }
      top.first = false;
      if (top.kind === 'object') key();
      value();
    }
  } catch (err) {
    if (err instanceof Fail) return err.error;
    throw err;
  }
}

/**
 * Words for a text JSON.parse refused, naming only a place: serde_json's
 * ("expected value at line 1 column 1"), or "not valid JSON" when the
 * grammar holds and JSON.parse refused something else.
 */
export function describeJsonSyntaxError(text: string): string {
  const e = findJsonSyntaxError(text);
  return e === undefined ? 'not valid JSON' : `${e.words} at line ${e.line} column ${e.column}`;
}
