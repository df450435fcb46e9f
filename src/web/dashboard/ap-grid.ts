// s390 crypto (vfio-ap): the AP matrix as an adapters × domains grid, each
// queue coloured by who holds it (the host, a matrix device, or nobody),
// and a form that assigns one queue (adapter and domain) to a matrix
// device or takes it back.
import { api, type Matrix } from './api.js';
import { byId, h } from './dom.js';
import { act, state } from './store.js';

const hex = (n: number): string => n.toString(16).padStart(2, '0');
const queueName = (adapter: number, domain: number): string =>
  `${hex(adapter)}.${hex(domain).padStart(4, '0')}`;

/** A stable colour per matrix device, so an owner keeps its colour between renders. */
function ownerColour(uuid: string): string {
  let n = 0;
  for (const c of uuid) n = (n * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${n % 360} 65% 72%)`;
}

/** The form's choices, kept across redraws (any event redraws the grid and the form). */
const choice: { device?: string; adapter?: string; domain?: string } = {};

function select(
  label: 'device' | 'adapter' | 'domain',
  cls: string,
  options: readonly (readonly [value: string, text: string])[],
): { label: HTMLLabelElement; select: HTMLSelectElement } {
  const el = h(
    'select',
    {
      class: cls,
      'aria-label': label,
      onchange: () => (choice[label] = el.value),
    },
    ...options.map(([value, text]) => h('option', { value }, text)),
  );
  const kept = choice[label];
  if (kept !== undefined && options.some(([v]) => v === kept)) el.value = kept;
  return { label: h('label', {}, label, el), select: el };
}

function apForm(m: Matrix): HTMLElement {
  if (m.devices.length === 0) {
    return h(
      'p',
      { class: 'muted' },
      'No matrix device yet: create one with "+ device" on the matrix parent.',
    );
  }
  const dev = select(
    'device',
    'ap-device',
    m.devices.map((d) => [d.uuid, d.uuid.slice(0, 8)] as const),
  );
  const ad = select(
    'adapter',
    'ap-adapter',
    m.adapters.map((a) => [String(a), hex(a)] as const),
  );
  const dom = select(
    'domain',
    'ap-domain',
    m.domains.map((d) => [String(d), hex(d).padStart(4, '0')] as const),
  );
  const run = (op: 'assign' | 'unassign') => () => {
    const device = dev.select.value;
    const adapter = Number(ad.select.value);
    const domain = Number(dom.select.value);
    Object.assign(choice, { device, adapter: String(adapter), domain: String(domain) });
    void act(
      `${op}ed ${queueName(adapter, domain)} ${op === 'assign' ? 'to' : 'from'} ${device.slice(0, 8)}`,
      () => api.apChange(op, device, { adapters: [adapter], domains: [domain] }),
    );
  };
  return h(
    'div',
    { class: 'define ap-form' },
    dev.label,
    ad.label,
    dom.label,
    h('button', { type: 'button', class: 'ap-assign', onclick: run('assign') }, 'Assign queue'),
    h(
      'button',
      { type: 'button', class: 'plain ap-unassign', onclick: run('unassign') },
      'Unassign',
    ),
  );
}

function grid(m: Matrix): HTMLTableElement {
  const cells = new Map<string, Matrix['queues'][number]>();
  for (const q of m.queues) cells.set(`${q.adapter}.${q.domain}`, q);
  return h(
    'table',
    { 'aria-label': 'AP queues: adapters by domains' },
    h(
      'thead',
      {},
      h('tr', {}, h('th', {}, 'adapter \\ domain'), ...m.domains.map((d) => h('th', {}, hex(d)))),
    ),
    h(
      'tbody',
      {},
      ...m.adapters.map((a) =>
        h(
          'tr',
          {},
          h('th', {}, hex(a)),
          ...m.domains.map((d) => {
            const q = cells.get(`${a}.${d}`);
            const owner = q?.owner;
            const side = owner !== undefined ? 'owned' : q?.host === true ? 'host' : 'free';
            return h(
              'td',
              {
                class: side,
                'data-queue': queueName(a, d),
                'data-owner': owner ?? (side === 'host' ? 'host' : 'free'),
                style: owner !== undefined ? `background:${ownerColour(owner)}` : undefined,
                title:
                  owner !== undefined
                    ? `${hex(a)}.${hex(d)} → ${owner}`
                    : `${hex(a)}.${hex(d)} ${side}`,
              },
              owner !== undefined ? owner.slice(0, 2) : '',
            );
          }),
        ),
      ),
    ),
  );
}

export function renderAp(): void {
  const section = byId('ap-section', HTMLElement);
  const m = state.ap;
  if (m === null || m.adapters.length === 0) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  const legend = h(
    'div',
    { class: 'legend' },
    h('span', {}, h('i', { style: 'background:#eceff3' }), 'host'),
    h('span', {}, h('i', { style: 'background:#fff' }), 'free for guests'),
    ...m.devices.map((d) =>
      h('span', {}, h('i', { style: `background:${ownerColour(d.uuid)}` }), d.uuid.slice(0, 8)),
    ),
  );
  byId('ap', HTMLElement).replaceChildren(
    apForm(m),
    legend,
    h('div', { class: 'matrix' }, grid(m)),
  );
}
