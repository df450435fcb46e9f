import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it } from 'node:test';
import { API_ERROR_CODES, HTTP_STATUS, errnoOfApiCode } from '../../src/agent/errors.js';
import { isErrnoCode } from '../../src/common/errno.js';
import { LIBRARY_ERRORS } from '../../src/host/errors.js';

/**
 * docs/errors.md is the table clients read; it must say what the code does:
 * every library and agent code with its errno and HTTP status, and no code
 * that does not exist.
 */

const DOC = fs.readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

/** Rows "| `code` | ERRNO | STATUS | ..." of the doc's code tables. */
function documented(): Map<string, { errno: string; status: number }> {
  const rows = new Map<string, { errno: string; status: number }>();
  for (const m of DOC.matchAll(/^\| `([a-z][a-z-]*)` \| ([A-Z0-9]+) \| (\d{3}) \|/gm)) {
    assert.ok(!rows.has(m[1]!), `${m[1]} is documented twice`);
    rows.set(m[1]!, { errno: m[2]!, status: Number(m[3]) });
  }
  return rows;
}

describe('docs/errors.md', () => {
  it('documents every code the library and the agent have, with its errno and HTTP status', () => {
    const rows = documented();
    const codes = API_ERROR_CODES.filter((c) => !isErrnoCode(c));
    assert.ok(codes.length > 30, 'the codes were found');
    for (const code of codes) {
      const row = rows.get(code);
      assert.ok(row !== undefined, `${code} has no row in docs/errors.md`);
      assert.deepEqual(row, { errno: errnoOfApiCode(code), status: HTTP_STATUS[code] }, code);
    }
    for (const code of rows.keys()) {
      assert.ok(
        (codes as string[]).includes(code),
        `docs/errors.md documents unknown code ${code}`,
      );
    }
    for (const code of Object.keys(LIBRARY_ERRORS)) assert.ok(rows.has(code), code);
  });
});
