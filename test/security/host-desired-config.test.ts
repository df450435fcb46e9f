/**
 * The host configuration a user names (`mdevkit plan|apply -f FILE`) is a
 * file like `--jsonfile` (issue 12, items 7, 12 and 16, for the
 * desired-state side): read to at most 1 MiB, never quoted when it is not
 * a configuration (`-f /etc/shadow` run as root must not print the hash),
 * and refused when an attribute value holds a control character, by the
 * host library's rule.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import {
  MAX_CONFIG_BYTES,
  loadConfigFile,
  parseConfigText,
} from '../../src/host/desired/config.js';
import { MdevError } from '../../src/host/errors.js';
import { runMdevkit } from '../support/cli.js';
import { tmpDir } from '../support/tmp.js';
import { SECRET, assertNoSecret, assertNoStack } from './host-support.js';

/** Files that are no configuration and hold the secret, in the ways YAML could echo it. */
const SECRETS: Record<string, string> = {
  shadow: `${SECRET}\n`,
  'shadow, several lines': `daemon:*:19000:0:99999:7:::\n${SECRET}\nbin:*:19000:0:99999:7:::\n`,
  'a mapping of secrets': `version: 1\nconfigs: {}\n${SECRET}: 1\n`,
  alias: `version: 1\nconfigs: *${SECRET.replace(/[:$]/g, '')}\n`,
  tag: `version: 1\nconfigs: !${SECRET.replace(/[:$]/g, '')} x\n`,
  'unclosed flow': `version: 1\nconfigs: [${SECRET}\n`,
  'unclosed quote': `version: 1\nconfigs: "${SECRET}\n`,
  directive: `%${SECRET}\n---\nversion: 1\n`,
  'a nested key': `version: 1\nconfigs:\n  default:\n    entries: []\n    ${SECRET.replace(/:/g, '')}: 1\n`,
};

const refusal = (f: () => unknown): MdevError => {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof MdevError, String(err));
    return err;
  }
  assert.fail('accepted');
};

describe('a host configuration that is no configuration is never quoted', () => {
  it('by the library, in the message and the context', () => {
    for (const [what, text] of Object.entries(SECRETS)) {
      const e = refusal(() => parseConfigText(text, 'host.yaml'));
      assert.equal(e.code, 'config-invalid', what);
      assertNoSecret(`${e.message} ${JSON.stringify(e.context)}`, what);
    }
  });

  it('by mdevkit plan and apply -f FILE, exit 1 and no stack', () => {
    const dir = tmpDir('mdevkit-sec-desired-');
    const root = path.join(dir, 'root');
    assert.equal(runMdevkit(['lab', 'snapshot', root]).status, 0);
    for (const [what, text] of Object.entries(SECRETS)) {
      const file = path.join(dir, 'secret');
      fs.writeFileSync(file, text, { mode: 0o600 });
      for (const cmd of ['plan', 'apply']) {
        const r = runMdevkit([cmd, '-f', file, '--root', root]);
        assert.equal(r.status, 1, `${cmd} ${what}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /secret/, `${cmd} ${what}: the file is named`);
        assertNoSecret(r.stdout + r.stderr, `${cmd} ${what}`);
        assertNoStack(r.stderr, `${cmd} ${what}`);
      }
    }
  });

  it('a field name that is a word is still named, so a typo is found', () => {
    const e = refusal(() =>
      parseConfigText('version: 1\nconfigs:\n  default:\n    polcy: pack\n', 'host.yaml'),
    );
    assert.match(e.message, /host\.yaml:4:5: configs\.default\.polcy: unknown field "polcy"/);
  });
});

describe('a host configuration is read to at most 1 MiB', () => {
  it('/dev/zero and an oversized file are refused at once, a file of 1 MiB is read', () => {
    for (const file of ['/dev/zero']) {
      const e = refusal(() => loadConfigFile(file));
      assert.equal(e.code, 'config-unreadable');
      assert.match(e.message, /larger than 1 MiB/);
    }
    const dir = tmpDir('mdevkit-sec-desired-size-');
    const head = 'version: 1\nconfigs: {}\n#';
    const exact = path.join(dir, 'exact.yaml');
    fs.writeFileSync(exact, head + 'x'.repeat(MAX_CONFIG_BYTES - head.length - 1) + '\n');
    assert.equal(loadConfigFile(exact).configs.size, 0);
    const over = path.join(dir, 'over.yaml');
    fs.writeFileSync(over, head + 'x'.repeat(MAX_CONFIG_BYTES - head.length) + '\n');
    assert.equal(refusal(() => loadConfigFile(over)).code, 'config-unreadable');
    const r = runMdevkit(['plan', '-f', '/dev/zero', '--root', dir]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /larger than 1 MiB/);
  });
});

describe('attribute values of a host configuration', () => {
  it('holding a control character are refused with the place, as the library refuses them', () => {
    for (const c of ['\\u0000', '\\u001b', '\\u009b', '\\u202e', '\\t', '\\n']) {
      const e = refusal(() =>
        parseConfigText(
          `version: 1\nconfigs:\n  default:\n    entries:\n      - parents: all\n        devices:\n          - { type: mtty-1, count: 1, attrs: { a: "x${c}[2J" } }\n`,
          'host.yaml',
        ),
      );
      assert.equal(e.code, 'config-invalid', c);
      assert.match(
        e.message,
        /host\.yaml:7:\d+: .*attrs: an attribute value holds a control character/,
        c,
      );
    }
  });
});
