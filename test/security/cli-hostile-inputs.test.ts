/**
 * Hostile inputs across the command line (issue 12's suite, the CLI part):
 * every option and argument of mdevctl's commands and mdevkit's that takes
 * a name, a UUID, a number, an AP id list, a value or a file gets each
 * hostile input of its kind (test/security/hostile-values.ts), one slot at
 * a time, the other slots valid. Run in process on an emulated host, as
 * `bin/mdevctl` and `bin/mdevkit` run them.
 *
 * Each input must hold:
 * - the command returns 0, 1 or 2 and never throws (a bug);
 * - a refusal (1 or 2) says why on stderr, without a stack trace;
 * - nothing printed carries a raw control character (terminal escapes) or
 *   a byte of the secret file outside;
 * - nothing is written outside the config dir, every definition in it is a
 *   valid one under a valid parent, and a device appears only when the
 *   command succeeded at starting one.
 *
 * Inputs that are harmless by design (a list filter that matches nothing,
 * an attribute value of odd but printable text) may succeed: mdevctl takes
 * them too. The counts are printed as diagnostics;
 * MDEVKIT_SECURITY_TRACE=accepted lists the inputs that succeeded, =all
 * every input as it runs.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import {
  SCRIPTS_DIR,
  checkParentDirName,
  parseConfig,
  readFileLimited,
} from '../../src/host/config-store.js';
import { parseUuid } from '../../src/host/uuid-forms.js';
import { writeConfig } from '../../src/host/config-store.js';
import { uuidN } from '../support/labs.js';
import {
  assertNoSecret,
  assertNoStack,
  hostLab,
  mdevctl,
  mdevkit,
  treeOf,
  type HostLab,
  type Ran,
} from './host-support.js';
import {
  AP_LIST_VALUES,
  NAME_VALUES,
  NUMBER_VALUES,
  UUID_VALUES,
  VALUE_VALUES,
  jsonDocuments,
  xmlDocuments,
} from './hostile-values.js';

const SIOV = '0000:6a:01.0';
const LAB_DEVICES = [
  { driver: 'mdpy' },
  { driver: 'mtty' },
  { driver: 'siov', options: { queues: 8, max_queues_per_device: 4 } },
  {
    driver: 'vfio-ap',
    options: {
      adapters: [
        { id: 3, type: 'CEX7', mode: 'cca' },
        { id: 5, type: 'CEX8', mode: 'cca' },
      ],
      domains: [4, 0x47],
      apmask: '-5',
    },
  },
];

/** Devices of the fixture: running and defined, defined only, aggregating, a matrix device. */
const ACTIVE = uuidN(0xa1);
const DEFINED = uuidN(0xd1);
const AGG = uuidN(0xa6);
const MATRIX = uuidN(0xa9);

interface Fixture extends HostLab {
  /** Hostile JSON documents, by name, as files. */
  readonly jsonFiles: string[];
  readonly xmlFiles: string[];
  readonly secret: string;
}

function fixture(): Fixture {
  const h = hostLab(LAB_DEVICES, true);
  const port = h.lab.port;
  port.write('/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2/create', ACTIVE);
  writeConfig(h.configDir, 'mtty', ACTIVE, { mdevType: 'mtty-2', start: 'manual', attrs: [] });
  writeConfig(h.configDir, 'mtty', DEFINED, {
    mdevType: 'mtty-2',
    start: 'auto',
    attrs: [{ name: 'x', value: '1' }],
  });
  port.write(`/sys/class/mdev_bus/${SIOV}/mdev_supported_types/idxd-1wq/create`, AGG);
  port.write('/sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create', MATRIX);
  const docs = path.join(h.dir, 'docs');
  fs.mkdirSync(docs);
  const jsonFiles = jsonDocuments().map((d) => {
    const p = path.join(docs, `${d.name}.json`);
    fs.writeFileSync(p, d.bytes);
    return p;
  });
  const secret = path.join(h.outside, 'shadow');
  const xmlFiles = xmlDocuments(secret).map((d) => {
    const p = path.join(docs, `${d.name}.xml`);
    fs.writeFileSync(p, d.text);
    return p;
  });
  return { ...h, jsonFiles, xmlFiles, secret };
}

/** Paths a file argument gets besides the hostile documents. */
function hostilePaths(f: Fixture): string[] {
  return [
    '/dev/zero',
    '/dev/null',
    '/dev/urandom',
    f.secret,
    f.dir, // a directory
    path.join(f.dir, 'nothing-here'),
    '',
    '../../../../../../etc/shadow-nothing',
    '/proc/self/environ',
    `${f.secret}\0`,
  ];
}

type Slot = 'uuid' | 'name' | 'number' | 'value' | 'aplist' | 'json' | 'xml';

interface Template {
  readonly prog: 'mdevctl' | 'mdevkit';
  readonly slot: Slot;
  readonly args: (v: string) => string[];
  /** The file standard input comes from, when the command reads it. */
  readonly stdin?: (v: string) => string;
}

const M = (slot: Slot, args: (v: string) => string[]): Template => ({
  prog: 'mdevctl',
  slot,
  args,
});
const K = (slot: Slot, args: (v: string) => string[], stdin?: (v: string) => string): Template =>
  stdin === undefined ? { prog: 'mdevkit', slot, args } : { prog: 'mdevkit', slot, args, stdin };

const N = uuidN(0x77);

const TEMPLATES: readonly Template[] = [
  // mdevctl's commands (bin/mdevctl)
  M('uuid', (v) => ['list', '-u', v]),
  M('name', (v) => ['list', '-p', v]),
  M('uuid', (v) => ['list', '-d', '-u', v, '--dumpjson']),
  M('name', (v) => ['list', '-d', '-p', v]),
  M('name', (v) => ['types', '-p', v]),
  M('uuid', (v) => ['define', '-u', v, '-p', 'mtty', '-t', 'mtty-2']),
  M('name', (v) => ['define', '-u', N, '-p', v, '-t', 'mtty-2']),
  M('name', (v) => ['define', '-u', N, '-p', 'mtty', '-t', v]),
  M('json', (v) => ['define', '-u', N, '-p', 'mtty', '--jsonfile', v]),
  M('uuid', (v) => ['undefine', '-u', v]),
  M('name', (v) => ['undefine', '-u', DEFINED, '-p', v]),
  M('uuid', (v) => ['modify', '-u', v, '--auto']),
  M('name', (v) => ['modify', '-u', DEFINED, '-p', v, '--manual']),
  M('name', (v) => ['modify', '-u', DEFINED, '-t', v]),
  M('name', (v) => ['modify', '-u', DEFINED, '--addattr', v, '--value', '1']),
  M('value', (v) => ['modify', '-u', DEFINED, '--addattr', 'x', '--value', v]),
  M('number', (v) => ['modify', '-u', DEFINED, '--delattr', '--index', v]),
  M('number', (v) => ['modify', '-u', DEFINED, '--addattr', 'y', '--value', '2', '--index', v]),
  M('json', (v) => ['modify', '-u', DEFINED, '-p', 'mtty', '--jsonfile', v]),
  M('json', (v) => ['modify', '-u', ACTIVE, '--live', '--jsonfile', v]),
  M('uuid', (v) => ['start', '-u', v]),
  M('name', (v) => ['start', '-u', N, '-p', v, '-t', 'mtty-2']),
  M('name', (v) => ['start', '-u', N, '-p', 'mtty', '-t', v]),
  M('json', (v) => ['start', '-u', N, '-p', 'mtty', '--jsonfile', v]),
  M('uuid', (v) => ['stop', '-u', v]),
  M('name', (v) => ['start-parent-mdevs', v]),
  M('name', (v) => [v]),
  // mdevkit's own commands
  K('uuid', (v) => ['define', '-u', v, '-p', 'mdpy', '-t', 'mdpy-hd']),
  K('name', (v) => ['list', '--root', '/nonexistent', '-p', v]),
  K('uuid', (v) => ['aggregation', v]),
  K('number', (v) => ['aggregation', AGG, v]),
  K('name', (v) => ['aggregation', AGG, '2', '--parent', v]),
  K('name', (v) => ['nodedev-list', '--cap', v]),
  K('name', (v) => ['nodedev-dumpxml', v]),
  K('name', (v) => ['nodedev-dumpxml', `mdev_${v}`]),
  K('uuid', (v) => ['hostdev-xml', v]),
  K('uuid', (v) => ['qemu-args', v]),
  K('name', (v) => ['qemu-args', ACTIVE, '--syntax', v]),
  K('name', (v) => ['qemu-args', ACTIVE, '--id', v]),
  K('xml', (v) => ['nodedev-define', v]),
  K('xml', (v) => ['ensure-started', v]),
  K(
    'xml',
    () => ['nodedev-define', '-'],
    (v) => v,
  ),
  K(
    'xml',
    () => ['libvirt-hook', 'qemu', 'vm', 'prepare', 'begin', '-'],
    (v) => v,
  ),
  K('name', (v) => ['libvirt-hook', 'qemu', v, 'prepare', 'begin', '-']),
  K('aplist', (v) => ['ap', 'reserve', '--adapters', v, '--dry-run']),
  K('aplist', (v) => ['ap', 'release', '--domains', v, '--dry-run']),
  K('aplist', (v) => ['ap', 'assign', MATRIX, '--domains', v]),
  K('aplist', (v) => ['ap', 'unassign', MATRIX, '--control-domains', v]),
  K('uuid', (v) => ['ap', 'assign', v, '--adapters', '5']),
  K('uuid', (v) => ['lab', 'open', v, '--lab', '/nonexistent-lab']),
  K('name', (v) => ['lab', 'reboot', '--mount', v]),
  K('json', (v) => ['lab', 'summary', '--profile', v]),
  K('name', (v) => ['lab', 'summary', '--profile', v]),
  K('name', (v) => [v]),
];

/**
 * Raw control characters (other than the newlines and tabs of normal
 * output) and invisible formatting characters never reach a terminal.
 */
const RAW_CONTROL =
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/;

function checkConfigDir(f: Fixture, what: string): void {
  for (const parent of fs.readdirSync(f.configDir)) {
    const dir = path.join(f.configDir, parent);
    assert.ok(fs.lstatSync(dir).isDirectory(), `${what}: ${parent} is not a directory`);
    if (parent === SCRIPTS_DIR) {
      assert.deepEqual(fs.readdirSync(dir).sort(), ['callouts', 'notifiers'], what);
      continue;
    }
    assert.doesNotThrow(
      () => checkParentDirName(parent),
      `${what}: parent ${JSON.stringify(parent)}`,
    );
    for (const name of fs.readdirSync(dir)) {
      assert.equal(parseUuid(name), name, `${what}: ${parent}/${JSON.stringify(name)}`);
      const text = fs.readFileSync(path.join(dir, name), 'utf8');
      assert.doesNotThrow(() => parseConfig(text), `${what}: ${parent}/${name} is not valid`);
      assert.ok(!RAW_CONTROL.test(text), `${what}: ${parent}/${name} holds a control character`);
    }
  }
}

describe('hostile inputs on the command line', () => {
  const f = fixture();
  const outsideBefore = treeOf(f.outside);
  const counts = { cases: 0, refused: 0, accepted: 0 };

  it('hold for every command and slot', { timeout: 900_000 }, async (t) => {
    const valuesOf = (slot: Slot): readonly string[] => {
      switch (slot) {
        case 'uuid':
          return UUID_VALUES;
        case 'name':
          return NAME_VALUES;
        case 'number':
          return NUMBER_VALUES;
        case 'value':
          return VALUE_VALUES;
        case 'aplist':
          return AP_LIST_VALUES;
        case 'json':
          return [...f.jsonFiles, ...hostilePaths(f)];
        case 'xml':
          return [...f.xmlFiles, ...hostilePaths(f).filter((p) => p !== '/proc/self/environ')];
      }
    };
    const devicesBefore = new Set(f.lab.port.list('/sys/bus/mdev/devices'));
    for (const tpl of TEMPLATES) {
      for (const v of valuesOf(tpl.slot)) {
        const args = tpl.args(v);
        const what = `${tpl.prog} ${args.map((a) => JSON.stringify(a.length > 60 ? `${a.slice(0, 60)}...` : a)).join(' ')}`;
        if (process.env['MDEVKIT_SECURITY_TRACE'] === 'all') process.stderr.write(`${what}\n`);
        let r: Ran;
        if (tpl.prog === 'mdevctl') r = mdevctl(f, args);
        else {
          // Standard input read as processIo reads it: to the limit asked for.
          const input = tpl.stdin;
          const stdin = (max?: number): string =>
            input === undefined ? '' : readFileLimited(input(v), 'stdin', max);
          r = await mdevkit(f, args, {}, stdin);
        }
        counts.cases++;
        assert.ok([0, 1, 2].includes(r.code), `${what}: exit ${r.code}\n${r.stderr}`);
        if (r.code === 0) {
          counts.accepted++;
          if (process.env['MDEVKIT_SECURITY_TRACE'] === 'accepted')
            process.stderr.write(`ACCEPTED ${what}\n`);
        } else {
          counts.refused++;
          assert.notEqual(r.stderr.trim(), '', `${what}: refused without a word`);
        }
        assertNoStack(r.stderr, what);
        assertNoSecret(r.stdout + r.stderr, what);
        assert.ok(
          !RAW_CONTROL.test(r.stderr),
          `${what}: raw control character on stderr: ${JSON.stringify(r.stderr.slice(0, 300))}`,
        );
        assert.ok(
          !RAW_CONTROL.test(r.stdout),
          `${what}: raw control character on stdout: ${JSON.stringify(r.stdout.slice(0, 300))}`,
        );
        checkConfigDir(f, what);
        // A device appears only when a start said so; put the host back as it was.
        for (const dev of f.lab.port.list('/sys/bus/mdev/devices')) {
          if (devicesBefore.has(dev)) continue;
          assert.equal(r.code, 0, `${what}: device ${dev} appeared, yet the command failed`);
          f.lab.port.write(`/sys/bus/mdev/devices/${dev}/remove`, '1');
        }
        const now = f.lab.port.list('/sys/bus/mdev/devices');
        for (const dev of devicesBefore)
          assert.ok(now.includes(dev), `${what}: ${dev} was removed`);
      }
    }
    assert.deepEqual(treeOf(f.outside), outsideBefore, 'the directory outside changed');
    const top = fs.readdirSync(f.root).sort();
    // etc/mdevctl.d and mdevctl 1.4.0's usr/lib/mdevctl/scripts.d, nothing else.
    assert.deepEqual(top, ['etc', 'usr'], `the root holds ${top.join(', ')}`);
    assert.deepEqual(
      (fs.readdirSync(path.join(f.root, 'usr'), { recursive: true }) as string[]).sort(),
      [
        'lib',
        'lib/mdevctl',
        'lib/mdevctl/scripts.d',
        'lib/mdevctl/scripts.d/callouts',
        'lib/mdevctl/scripts.d/notifiers',
      ],
      'something was written under usr/',
    );
    t.diagnostic(
      `${counts.cases} hostile inputs: ${counts.refused} refused (exit 1/2), ${counts.accepted} accepted as harmless, all held`,
    );
    assert.ok(counts.cases >= 500, `${counts.cases} cases`);
  });
});
