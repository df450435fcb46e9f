/**
 * Hostile inputs of the CLI and FUSE parts of the security suite, by kind:
 * encodings of paths (percent, double, overlong, mixed case, full-width),
 * traversal, control characters, huge values, wrong types and numbers out
 * of range. Each family is plain data; the tests decide where each goes.
 */

export const U = '5ec00000-0000-4000-8000-00000000abcd';

export const TRAVERSAL: readonly string[] = [
  '..',
  '../',
  '../../../../etc/passwd',
  '/etc/shadow',
  '/',
  '//',
  '.',
  './',
  'a/../../b',
  '....//....//etc',
  '..\\..\\windows',
  '%2e%2e%2f',
  '%2E%2E%2F',
  '%2e%2e/',
  '..%2f..%2f',
  '%252e%252e%252f',
  '%c0%ae%c0%ae/',
  '\u00c0\u00ae\u00c0\u00ae/', // the overlong encoding of "." read as Latin-1
  '\uff0e\uff0e\uff0f', // full-width "../"
  '\u2025/',
  'mtty/../mdpy',
  'mtty/',
  '/sys/class/mdev_bus/mtty',
  'scripts.d',
  'scripts.d/callouts',
  '.#x',
  '~root',
  '$(id)',
  '`id`',
  ';id',
  '|id',
  '-rf',
  '--help',
  '-u',
  '--',
  'a b',
  "'",
  '"',
  '*',
  '{a,b}',
];

export const CONTROL: readonly string[] = [
  '\0',
  'a\0b',
  '\n',
  'x\n',
  '\r\n',
  '\t',
  '\u0007',
  '\u001b[31m',
  '\u001b]0;owned\u0007',
  '\u007f',
  '\u0085',
  '\u009b2J',
  '\u202e', // right-to-left override
  '\u200b',
  '\ufeff',
  '\ud800', // a lone surrogate
  '\udfff',
];

export const HUGE: readonly string[] = [
  'a'.repeat(256),
  'a'.repeat(4097),
  'a'.repeat(100_000),
  '../'.repeat(2000),
  '9'.repeat(400),
];

export const NUMBERS: readonly string[] = [
  '-1',
  '0',
  '-0',
  '+1',
  '4294967295',
  '4294967296',
  '18446744073709551616',
  '1e999',
  'NaN',
  'Infinity',
  '0x',
  '0xffffffffffffffffffff',
  '1.5',
  '0b1',
  '07',
  '08',
  '1_000',
  ' 1',
  '1 ',
  '\u0661', // Arabic-Indic one
  '\uff11', // full-width one
];

export const WRONG_TYPES: readonly string[] = [
  '',
  ' ',
  '{}',
  '[]',
  'null',
  'true',
  '{"a":1}',
  '"x"',
];

export const UUID_LIKE: readonly string[] = [
  '00000000-0000-0000-0000-000000000000z',
  `${U}\n`,
  `${U}\0`,
  U.replaceAll('-', '\u2010'),
  U.slice(0, 35),
  `${U}0`,
  `urn:uuid:{${U}}`,
  `{${U}`,
  U.replaceAll('-', ''),
  `${U.replaceAll('-', '')}0`,
  U.replace('5', 'g'),
];

export const AP_LISTS: readonly string[] = [
  '1-',
  '-1',
  '3-1',
  '0-99999999999',
  ',,',
  '0x',
  '0xg',
  '1,,2',
  '256',
  '0-256',
  '1-1000000',
  '0x100',
  ' , ',
  '1-2-3',
  '--1',
  '1--2',
  '5;6',
  '5 6',
];

/** Where a name goes (UUID, parent, type, attribute name). */
export const NAME_VALUES: readonly string[] = [...TRAVERSAL, ...CONTROL, ...HUGE, ...WRONG_TYPES];
/** Where a UUID goes. */
export const UUID_VALUES: readonly string[] = [
  ...NAME_VALUES,
  ...UUID_LIKE,
  ...NUMBERS.slice(0, 8),
];
/** Where a number goes. */
export const NUMBER_VALUES: readonly string[] = [
  ...NUMBERS,
  ...WRONG_TYPES,
  ...CONTROL.slice(0, 10),
  ...HUGE.slice(2),
];
/** Where an attribute value goes: anything without a control character is a value. */
export const VALUE_VALUES: readonly string[] = [...CONTROL, ...HUGE.slice(2)];
/** Where an AP id list goes. */
export const AP_LIST_VALUES: readonly string[] = [
  ...AP_LISTS,
  ...NUMBERS,
  ...CONTROL.slice(0, 10),
  ...HUGE,
];

/** JSON documents for --jsonfile: not JSON, not a definition, hostile definitions. */
export function jsonDocuments(): { name: string; bytes: Buffer }[] {
  const def = (x: object): string => JSON.stringify({ mdev_type: 'mtty-2', start: 'manual', ...x });
  const texts: [string, string][] = [
    ['empty', ''],
    ['space', ' '],
    ['null', 'null'],
    ['array', '[]'],
    ['string', '"s"'],
    ['number', '1'],
    ['object', '{}'],
    ['type-number', '{"mdev_type":1,"start":"auto"}'],
    ['type-null', '{"mdev_type":null,"start":"auto"}'],
    ['type-object', '{"mdev_type":{"a":"b"},"start":"auto"}'],
    ['no-start', '{"mdev_type":"mtty-2"}'],
    ['start-object', '{"mdev_type":"mtty-2","start":{}}'],
    ['attrs-object', def({ attrs: {} })],
    ['attrs-number', def({ attrs: [1] })],
    ['attrs-array', def({ attrs: [[]] })],
    ['attrs-empty-object', def({ attrs: [{}] })],
    ['attrs-two-keys', def({ attrs: [{ a: '1', b: '2' }] })],
    ['attrs-value-number', def({ attrs: [{ a: 1 }] })],
    ['attrs-value-object', def({ attrs: [{ a: { b: 'c' } }] })],
    ['attrs-proto', '{"mdev_type":"mtty-2","start":"manual","attrs":[{"__proto__":"x"}]}'],
    ['attrs-constructor', def({ attrs: [{ constructor: 'x' }] })],
    ['attrs-traversal', def({ attrs: [{ '../../../x': '1' }] })],
    ['attrs-absolute', def({ attrs: [{ '/etc/passwd': '1' }] })],
    ['attrs-core', def({ attrs: [{ remove: '1' }] })],
    ['attrs-uevent', def({ attrs: [{ uevent: 'remove' }] })],
    ['attrs-link', def({ attrs: [{ 'driver/unbind': 'x' }] })],
    ['attrs-escape', def({ attrs: [{ a: '\u001b]0;owned\u0007' }] })],
    ['attrs-nul-name', def({ attrs: [{ 'a\u0000': '1' }] })],
    ['attrs-many', def({ attrs: Array.from({ length: 20_000 }, (_, i) => ({ [`a${i}`]: '1' })) })],
    ['attrs-long-name', def({ attrs: [{ ['a'.repeat(100_000)]: '1' }] })],
    ['type-traversal', '{"mdev_type":"../../x","start":"auto"}'],
    ['type-control', '{"mdev_type":"mtty-2\\u001b","start":"auto"}'],
    ['type-long', JSON.stringify({ mdev_type: 'x'.repeat(200_000), start: 'auto' })],
    ['duplicate-keys', '{"mdev_type":"a","mdev_type":"mtty-2","start":"auto"}'],
    ['trailing', `${def({})} trailing`],
    ['comment', `// x\n${def({})}`],
    ['single-quotes', "{'mdev_type':'mtty-2','start':'auto'}"],
    ['deep', `${'['.repeat(300_000)}${']'.repeat(300_000)}`],
    ['deep-open', '['.repeat(1 << 20)],
    ['bom', `\ufeff${def({})}`],
    ['nul', `${def({}).slice(0, 10)}\0${def({}).slice(10)}`],
    ['too-large', def({}) + ' '.repeat(1 << 20)],
  ];
  const out = texts.map(([name, t]) => ({ name, bytes: Buffer.from(t, 'utf8') }));
  out.push({ name: 'utf16', bytes: Buffer.from(def({}), 'utf16le') });
  out.push({ name: 'invalid-utf8', bytes: Buffer.from([0x7b, 0xff, 0xfe, 0xc0, 0xae, 0x7d]) });
  out.push({
    name: 'random',
    bytes: Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)),
  });
  return out;
}

/** XML documents for nodedev-define, ensure-started and the libvirt hook. */
export function xmlDocuments(secretPath: string): { name: string; text: string }[] {
  const nodedev = (inner: string): string =>
    `<device><parent>mtty</parent><capability type='mdev'>${inner}</capability></device>`;
  return [
    { name: 'empty', text: '' },
    { name: 'text', text: 'not xml at all' },
    { name: 'json', text: '{"mdev_type":"mtty-2"}' },
    { name: 'unclosed', text: '<device><parent>' },
    { name: 'two-roots', text: '<device/><device/>' },
    { name: 'wrong-root', text: '<domain/>' },
    { name: 'empty-device', text: '<device/>' },
    {
      name: 'xxe',
      text: `<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e SYSTEM "file://${secretPath}">]>${nodedev('<type id="&e;"/>')}`,
    },
    {
      name: 'billion-laughs',
      text:
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">' +
        Array.from({ length: 9 }, (_, i) => {
          const prev = i === 0 ? 'a' : `l${i - 1}`;
          return `<!ENTITY l${i} "${`&${prev};`.repeat(10)}">`;
        }).join('') +
        `]>${nodedev('<type id="&l8;"/>')}`,
    },
    { name: 'deep', text: `${'<a>'.repeat(100_000)}${'</a>'.repeat(100_000)}` },
    { name: 'huge-attr', text: nodedev(`<type id='${'x'.repeat(2_000_000)}'/>`) },
    { name: 'type-traversal', text: nodedev("<type id='../../x'/>") },
    {
      name: 'parent-traversal',
      text: "<device><parent>../../etc</parent><capability type='mdev'><type id='mtty-2'/></capability></device>",
    },
    {
      name: 'parent-scripts',
      text: "<device><parent>scripts.d</parent><capability type='mdev'><type id='mtty-2'/></capability></device>",
    },
    { name: 'uuid-bad', text: nodedev("<type id='mtty-2'/><uuid>../../x</uuid>") },
    { name: 'attr-core', text: nodedev("<type id='mtty-2'/><attr name='remove' value='1'/>") },
    {
      name: 'attr-traversal',
      text: nodedev("<type id='mtty-2'/><attr name='../../x' value='1'/>"),
    },
    {
      name: 'attr-control',
      text: nodedev("<type id='mtty-2'/><attr name='a' value='&#27;[31m'/>"),
    },
    { name: 'attr-tab', text: nodedev("<type id='mtty-2'/><attr name='a&#9;b' value='1'/>") },
    {
      name: 'domain-hostile-uuid',
      text: "<domain type='kvm'><name>x</name><devices><hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='../../etc'/></source></hostdev></devices></domain>",
    },
    {
      name: 'domain-control-uuid',
      text: "<domain type='kvm'><name>x</name><devices><hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='&#7;'/></source></hostdev></devices></domain>",
    },
  ];
}
