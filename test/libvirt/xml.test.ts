import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { XmlInputError, el, formatXml, parseXml } from '../../src/libvirt/xml.js';

describe('XML writer', () => {
  it('prints libvirt\u2019s shape: two-space indent, single quotes, self-closed empty elements', () => {
    const xml = formatXml(
      el('device', {}, [
        el('name', {}, 'pci_0000_00_02_0'),
        el('capability', { type: 'mdev', skipped: undefined }, [
          el('type', { id: 'i915-GVTg_V5_4' }),
          undefined,
          el('iommuGroup', { number: 3 }),
        ]),
      ]),
    );
    assert.equal(
      xml,
      `<device>
  <name>pci_0000_00_02_0</name>
  <capability type='mdev'>
    <type id='i915-GVTg_V5_4'/>
    <iommuGroup number='3'/>
  </capability>
</device>
`,
    );
  });

  it('escapes every text and attribute value, and refuses what XML cannot carry', () => {
    const xml = formatXml(el('attr', { name: `a'b"c`, value: '<&>' }, []));
    assert.equal(xml, `<attr name='a&apos;b&quot;c' value='&lt;&amp;&gt;'/>\n`);
    assert.deepEqual(parseXml(xml, 't').attrs, { name: `a'b"c`, value: '<&>' });
    assert.throws(() => formatXml(el('name', {}, 'bell\u0007')), /character XML cannot represent/);
    assert.throws(() => formatXml(el('bad name')), /invalid XML element name/);
  });
});

describe('XML parser', () => {
  it('keeps order and strings, decodes entities and character references, skips comments', () => {
    const root = parseXml(
      `<?xml version="1.0"?>
<!-- generated -->
<device><name>x &amp; y &#65;</name><capability type="mdev"><attr name='b' value='0x10'/><attr name='a' value='007'/></capability></device>`,
      't',
    );
    assert.equal(root.name, 'device');
    assert.equal(root.children[0]!.text, 'x & y A');
    assert.deepEqual(
      root.children[1]!.children.map((c) => c.attrs),
      [
        { name: 'b', value: '0x10' },
        { name: 'a', value: '007' },
      ],
    );
  });

  it('refuses malformed input and document type declarations, naming the input', () => {
    assert.throws(
      () => parseXml('<device><name>x</device>', 'dev.xml'),
      (err: unknown) => {
        assert.ok(err instanceof XmlInputError);
        // The kind of error and where, never the document's words (it may be any file).
        assert.match(
          err.message,
          /^dev\.xml is not well-formed XML \(\w+ at line 1, column \d+\)$/,
        );
        return true;
      },
    );
    assert.throws(
      () => parseXml('<!DOCTYPE d [<!ENTITY a "aaaa">]><device>&a;</device>', 'dev.xml'),
      /dev\.xml has a document type declaration/,
    );
    assert.throws(() => parseXml('', 'dev.xml'), XmlInputError);
  });
});
