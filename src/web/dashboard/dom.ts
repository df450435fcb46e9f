// Building the page: one element helper and the toast. Text from the host
// is always set as text (a Text node or textContent), never parsed as HTML.

/** A value of an attribute: left out when undefined, null or false; `true` is an empty attribute. */
export type AttrValue = string | number | boolean | undefined | null;

/** Attributes of `h`: `on<event>` keys take listeners, `class` sets className. */
export type Attrs = Record<string, AttrValue | ((ev: Event) => void)>;

export type Child = Node | string | number | false | null | undefined;

/** h('div', { class: 'x', onclick }, child, 'text') */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | readonly Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === 'function') {
      if (!key.startsWith('on'))
        throw new TypeError(`h: a listener needs an on<event> key, not ${key}`);
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') el.className = String(value);
    // Through the CSSOM: the page's CSP refuses style attributes.
    else if (key === 'style') el.style.cssText = String(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** The element with this id, of the expected class; a missing one is a bug in index.html. */
export function byId<T extends HTMLElement>(id: string, type: new () => T): T {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`index.html has no ${type.name} #${id}`);
  return el;
}

let toastTimer: ReturnType<typeof setTimeout> | undefined;

/** Say what happened for a few seconds (longer for an error). */
export function toast(message: string, isError = false): void {
  const t = byId('toast', HTMLElement);
  t.textContent = message;
  t.className = isError ? 'error' : '';
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), isError ? 6000 : 2500);
}
