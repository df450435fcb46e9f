import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Lab } from '../../src/sim/lab.js';
import { ProfileError, builtInProfileNames, loadProfile } from '../../src/sim/profiles/profile.js';
import { tmpDir } from '../support/tmp.js';

describe('host profiles', () => {
  it('loads every built-in profile into a working lab', () => {
    for (const name of builtInProfileNames()) {
      const lab = Lab.fromProfile(name);
      assert.ok(lab.parentNames.length > 0, `${name} registers parents`);
    }
  });

  it('names the file and the field of a bad option', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'bad.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        name: 'x',
        devices: [{ driver: 'mtty' }, { driver: 'mdpy', options: { count: 'four' } }],
      }),
    );
    assert.throws(
      () => loadProfile(file),
      (err: unknown) => {
        assert.ok(err instanceof ProfileError);
        assert.match(
          err.message,
          new RegExp(`^${file.replace(/[.]/g, '\\.')}: devices\\[1\\]\\.options\\.count: `),
        );
        return true;
      },
    );
  });

  it('names unknown drivers, unknown keys, bad JSON and unknown profiles', () => {
    const dir = tmpDir();
    const write = (name: string, text: string): string => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, text);
      return f;
    };
    const unknownDriver = write(
      'u.json',
      JSON.stringify({ name: 'x', devices: [{ driver: 'nope' }] }),
    );
    assert.throws(() => loadProfile(unknownDriver), /devices\[0\]\.driver: unknown driver 'nope'/);
    const extraKey = write('e.json', JSON.stringify({ name: 'x', devices: [], colour: 'red' }));
    assert.throws(() => loadProfile(extraKey), /e\.json: .*colour/);
    const badJson = write('j.json', '{ "name": ');
    assert.throws(() => loadProfile(badJson), /j\.json: not valid JSON/);
    assert.throws(() => loadProfile('no-such-profile'), /unknown profile 'no-such-profile'/);
    assert.throws(
      () => loadProfile(path.join(dir, 'missing.json')),
      /missing\.json: cannot read profile/,
    );
  });
});
