import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { MdevError } from '../host/errors.js';

/**
 * XML in libvirt's shape. Output goes through a tiny element model and one
 * writer that formats it as libvirt's virBuffer code does: two-space
 * indentation, attributes in single quotes, childless elements
 * self-closed (`<type id='mtty-1'/>`), text elements on one line. Every
 * attribute value and text node is escaped here, in one place, so no caller
 * concatenates markup. Input is parsed with fast-xml-parser (see
 * `parseXml`), never with regular expressions.
 */

/** An element: name, attributes in output order, then either text or children. */
export interface XmlElement {
  readonly name: string;
  readonly attrs?: readonly (readonly [string, string])[];
  readonly text?: string;
  readonly children?: readonly XmlElement[];
}

/** Build an element; `undefined` attributes and children are dropped, which keeps optional parts tidy. */
export function el(
  name: string,
  attrs: Record<string, string | number | undefined> = {},
  content?: string | readonly (XmlElement | undefined)[],
): XmlElement {
  const attrList = Object.entries(attrs)
    .filter((e): e is [string, string | number] => e[1] !== undefined)
    .map(([k, v]) => [k, String(v)] as const);
  if (typeof content === 'string') return { name, attrs: attrList, text: content };
  const children = (content ?? []).filter((c): c is XmlElement => c !== undefined);
  return { name, attrs: attrList, children };
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;

/** Characters XML 1.0 cannot carry at all, even escaped. */
const FORBIDDEN_CHARS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;

function checkText(s: string, where: string): string {
  if (FORBIDDEN_CHARS.test(s)) {
    throw new Error(`${where} holds a character XML cannot represent: ${JSON.stringify(s)}`);
  }
  return s;
}

/** Escape for text content (as virBufferEscapeString: & < > ' "). */
export function escapeXml(s: string): string {
  return checkText(s, 'XML text')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/'/g, '&apos;')
    .replace(/"/g, '&quot;');
}

function writeElement(e: XmlElement, indent: string, out: string[]): void {
  if (!NAME_RE.test(e.name)) throw new Error(`invalid XML element name ${JSON.stringify(e.name)}`);
  let open = `${indent}<${e.name}`;
  for (const [k, v] of e.attrs ?? []) {
    if (!NAME_RE.test(k)) throw new Error(`invalid XML attribute name ${JSON.stringify(k)}`);
    open += ` ${k}='${escapeXml(v)}'`;
  }
  const children = e.children ?? [];
  if (e.text !== undefined && e.text !== '') {
    out.push(`${open}>${escapeXml(e.text)}</${e.name}>`);
  } else if (children.length === 0) {
    out.push(`${open}/>`);
  } else {
    out.push(`${open}>`);
    for (const c of children) writeElement(c, `${indent}  `, out);
    out.push(`${indent}</${e.name}>`);
  }
}

/** The element as libvirt would print it, ending in a newline. */
export function formatXml(root: XmlElement, indent = ''): string {
  const out: string[] = [];
  writeElement(root, indent, out);
  return out.join('\n') + '\n';
}

// ---- parsing ---------------------------------------------------------------

/** A parsed element: attributes by name, text, and child elements in document order. */
export interface ParsedElement {
  readonly name: string;
  readonly attrs: Readonly<Record<string, string>>;
  /** Concatenated text directly inside the element, trimmed. */
  readonly text: string;
  readonly children: readonly ParsedElement[];
}

/** The input is not well-formed XML, or not the document expected (code `invalid-xml`). */
export class XmlInputError extends MdevError {
  override readonly name = 'XmlInputError';
  constructor(message: string) {
    super('invalid-xml', message);
  }
}

const ATTR_PREFIX = '@_';

type OrderedNode = Record<string, unknown>;

function toParsed(node: OrderedNode): ParsedElement | undefined {
  const name = Object.keys(node).find((k) => k !== ':@');
  if (name === undefined || name === '#text' || name.startsWith('?') || name === '#comment') {
    return undefined;
  }
  const rawAttrs = (node[':@'] ?? {}) as Record<string, unknown>;
  const attrs: Record<string, string> = {};
  for (const [k, v] of Object.entries(rawAttrs)) {
    if (k.startsWith(ATTR_PREFIX)) attrs[k.slice(ATTR_PREFIX.length)] = String(v);
  }
  const body = (node[name] ?? []) as OrderedNode[];
  let text = '';
  const children: ParsedElement[] = [];
  for (const child of body) {
    if ('#text' in child) text += String(child['#text']);
    else {
      const p = toParsed(child);
      if (p !== undefined) children.push(p);
    }
  }
  return { name, attrs, text: text.trim(), children };
}

/**
 * Parse a document and return its root element. A document type
 * declaration is refused (its entities could expand without bound, and
 * libvirt's XML never has one); the predefined entities and character
 * references are decoded. Values stay strings (no number guessing, so
 * "0x10de" and "0000:00:02.0" survive as written).
 */
export function parseXml(text: string, what: string): ParsedElement {
  if (/<!DOCTYPE/i.test(text)) {
    throw new XmlInputError(`${what} has a document type declaration, which is not accepted`);
  }
  // The validator's words quote the document (a tag name, a character);
  // the input may be any file, so only the kind of error and where it is.
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    throw new XmlInputError(
      `${what} is not well-formed XML (${valid.err.code} at line ${valid.err.line}, column ${valid.err.col})`,
    );
  }
  const parser = new XMLParser({
    preserveOrder: true,
    ignoreAttributes: false,
    attributeNamePrefix: ATTR_PREFIX,
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: false,
    processEntities: true,
    htmlEntities: true,
    commentPropName: '#comment',
  });
  let doc: OrderedNode[];
  try {
    doc = parser.parse(text) as OrderedNode[];
  } catch (err) {
    // Well-formed but beyond the parser's limits (nesting thousands deep).
    throw new XmlInputError(`${what} cannot be read: ${(err as Error).message}`);
  }
  const roots = doc.map(toParsed).filter((p): p is ParsedElement => p !== undefined);
  if (roots.length !== 1) throw new XmlInputError(`${what} has no single root element`);
  return roots[0]!;
}

/** First child element with this name. */
export function child(e: ParsedElement, name: string): ParsedElement | undefined {
  return e.children.find((c) => c.name === name);
}

/** Every child element with this name, in document order. */
export function childrenNamed(e: ParsedElement, name: string): ParsedElement[] {
  return e.children.filter((c) => c.name === name);
}
