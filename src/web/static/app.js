// The mdevkit dashboard: plain DOM code over the agent's API. Everything
// shown comes from /api/v1; every change arrives on the event stream and
// triggers a (coalesced) reload of what it affects. Text from the host is
// always set with textContent, never parsed as HTML.

const API = '/api/v1';
const TOKEN_KEY = 'mdevkit.token';
const SHOWN_DEVICES = 500;

/** @type {{ parents: any[], devices: any[], total: number, ap: any | null }} */
const state = { parents: [], devices: [], total: 0, ap: null };

// ---- token: from the printed URL's #token=..., kept in localStorage ----------

function takeTokenFromFragment() {
  const m = /(?:^#|&)token=([0-9a-f]{16,})/.exec(location.hash);
  if (m) {
    localStorage.setItem(TOKEN_KEY, m[1]);
    history.replaceState(null, '', location.pathname + location.search);
  }
}
const token = () => localStorage.getItem(TOKEN_KEY) ?? '';

// ---- helpers -----------------------------------------------------------------

/** h('div', {class: 'x', onclick}, child, 'text') */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    // Through the CSSOM: the page's CSP refuses style attributes.
    else if (k === 'style') el.style.cssText = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let toastTimer = 0;
function toast(message, isError = false) {
  const t = document.getElementById('toast');
  t.textContent = message;
  t.className = isError ? 'error' : '';
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), isError ? 6000 : 2500);
}

async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token() !== '') headers.authorization = `Bearer ${token()}`;
  const res = await fetch(API + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = data.error ?? {};
    const err = new Error(e.errno ? `${e.errno}: ${e.message}` : `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

/** Run a write; say what happened; ask for the token when it is missing. */
async function act(what, fn) {
  try {
    await fn();
    toast(what);
    scheduleReload(true); // at once, rather than when the event arrives
  } catch (err) {
    if (err.status === 401) document.getElementById('token').focus();
    toast(`${what} failed — ${err.message}`, true);
  }
}

// ---- loading -----------------------------------------------------------------

async function loadParents() {
  state.parents = (await api('GET', '/parents')).parents;
}
async function loadDevices() {
  const data = await api('GET', `/devices?limit=${SHOWN_DEVICES}`);
  state.devices = data.devices;
  state.total = data.total;
}
async function loadAp() {
  try {
    state.ap = await api('GET', '/ap/matrix');
  } catch (err) {
    state.ap = null; // no AP bus on this host, or an agent without the endpoint
  }
}

let reloadTimer = 0;
let reloadAp = false;
/** Coalesce a burst of events into one reload. */
function scheduleReload(withAp) {
  reloadAp ||= withAp;
  if (reloadTimer) return;
  reloadTimer = setTimeout(async () => {
    reloadTimer = 0;
    const ap = reloadAp;
    reloadAp = false;
    await Promise.all([loadParents(), loadDevices(), ap ? loadAp() : null]);
    render();
  }, 200); // a burst of creates costs one reload per 200 ms, not one per event
}

// ---- rendering -----------------------------------------------------------------

function typeLabel(p, t) {
  return `${p.name} / ${t.name && t.name !== t.id ? `${t.name} (${t.id})` : t.id}`;
}

function renderParents() {
  const box = document.getElementById('parents');
  box.replaceChildren(
    ...state.parents.map((p) =>
      h(
        'article',
        { class: 'card', 'data-parent': p.name },
        h('h3', {}, p.name),
        ...p.types.map((t) => {
          const total = t.activeDevices + t.availableInstances;
          const pct = total === 0 ? 100 : Math.round((100 * t.activeDevices) / total);
          return h(
            'div',
            { class: 'type', 'data-type': t.id },
            h('span', { class: 'name' }, t.name ?? t.id),
            h(
              'button',
              {
                class: 'plain',
                title: `define and start a ${t.id} device on ${p.name}`,
                disabled: t.availableInstances === 0,
                onclick: () =>
                  act(`created a ${t.id} device`, () =>
                    api('POST', '/devices', { parent: p.name, type: t.id, activate: true }),
                  ),
              },
              '+ device',
            ),
            h(
              'span',
              { class: 'desc' },
              `${t.id} · ${t.deviceApi}`,
              t.aggregation !== undefined ? ` · aggregates up to ${t.aggregation}` : '',
              t.description ? ` · ${t.description}` : '',
            ),
            h(
              'div',
              { class: 'capacity' },
              h(
                'span',
                {
                  class: `meter${t.availableInstances === 0 ? ' full' : ''}`,
                  role: 'meter',
                  'aria-valuemin': 0,
                  'aria-valuemax': total,
                  'aria-valuenow': t.activeDevices,
                  'aria-label': `${t.id} in use`,
                },
                h('span', { style: `width:${pct}%` }),
              ),
              h(
                'span',
                {
                  class: 'counts',
                  'data-available': t.availableInstances,
                  'data-used': t.activeDevices,
                },
                `${t.activeDevices} used · ${t.availableInstances} free`,
              ),
            ),
          );
        }),
      ),
    ),
  );
  // The define form's choice of types follows the parents.
  const select = document.getElementById('define-type');
  const chosen = select.value;
  select.replaceChildren(
    ...state.parents.flatMap((p) =>
      p.types.map((t) => h('option', { value: `${p.name}\u0000${t.id}` }, typeLabel(p, t))),
    ),
  );
  if (chosen) select.value = chosen;
}

/** Values typed but not yet set, by UUID: a redraw (any event) must not throw them away. */
const aggregationDrafts = new Map();

function aggregationControl(d) {
  const type = state.parents.find((p) => p.name === d.parent)?.types.find((t) => t.id === d.type);
  if (type?.aggregation === undefined || !d.active) return null;
  const input = h('input', {
    type: 'number',
    min: 1,
    'aria-label': `aggregation of ${d.uuid}`,
    class: 'agg-value',
    oninput: () => aggregationDrafts.set(d.uuid, input.value),
  });
  if (aggregationDrafts.has(d.uuid)) input.value = aggregationDrafts.get(d.uuid);
  const max = h('span', { class: 'muted' });
  api('GET', `/devices/${d.uuid}/aggregation`)
    .then((a) => {
      if (!aggregationDrafts.has(d.uuid)) input.value = String(a.value);
      if (a.max !== undefined) {
        input.max = String(a.max);
        max.textContent = `/ ${a.max}`;
      }
    })
    .catch(() => {});
  return h(
    'span',
    { class: 'aggregation' },
    '×',
    input,
    max,
    h(
      'button',
      {
        class: 'plain',
        onclick: () =>
          act(`aggregation of ${d.uuid.slice(0, 8)} set to ${input.value}`, async () => {
            await api(
              'PUT',
              `/devices/${d.uuid}/aggregation?parent=${encodeURIComponent(d.parent)}`,
              {
                value: Number(input.value),
              },
            );
            aggregationDrafts.delete(d.uuid);
          }),
      },
      'set',
    ),
  );
}

function renderDevices() {
  document.getElementById('device-count').textContent =
    state.total > state.devices.length
      ? `(${state.devices.length} of ${state.total})`
      : `(${state.total})`;
  const q = (d) => `?parent=${encodeURIComponent(d.parent)}`;
  document.getElementById('devices').replaceChildren(
    ...state.devices.map((d) =>
      h(
        'div',
        { class: 'device', 'data-uuid': d.uuid },
        h('code', {}, d.uuid),
        h(
          'span',
          { class: 'where' },
          d.active ? h('span', { class: 'badge active' }, 'active') : null,
          d.defined
            ? h(
                'span',
                { class: 'badge defined' },
                d.start === 'auto' ? 'defined, auto' : 'defined',
              )
            : null,
          `${d.parent} / ${d.type}`,
        ),
        h(
          'span',
          { class: 'actions' },
          aggregationControl(d),
          d.defined && !d.active
            ? h(
                'button',
                {
                  class: 'plain',
                  onclick: () =>
                    act(`started ${d.uuid.slice(0, 8)}`, () =>
                      api('POST', `/devices/${d.uuid}/start`, { parent: d.parent }),
                    ),
                },
                'start',
              )
            : null,
          d.active
            ? h(
                'button',
                {
                  class: 'plain',
                  onclick: () =>
                    act(`stopped ${d.uuid.slice(0, 8)}`, () =>
                      api('POST', `/devices/${d.uuid}/stop`),
                    ),
                },
                'stop',
              )
            : null,
          h(
            'button',
            {
              class: 'danger',
              onclick: () =>
                act(`removed ${d.uuid.slice(0, 8)}`, () =>
                  api('DELETE', `/devices/${d.uuid}${q(d)}`),
                ),
            },
            'remove',
          ),
        ),
      ),
    ),
  );
}

/** A stable colour per matrix device, so an owner keeps its colour between renders. */
function ownerColour(uuid) {
  let n = 0;
  for (const c of uuid) n = (n * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${n % 360} 65% 72%)`;
}

/** Assign or unassign one adapter and one domain (a queue) to a matrix device. */
function apForm(m, hex) {
  const prev = apForm.last ?? {};
  // Choices survive a redraw (any event redraws the grid and this form).
  const remember = (key) => (ev) =>
    (apForm.last = { ...(apForm.last ?? {}), [key]: ev.target.value });
  const select = (label, cls, options, value) => {
    const el = h(
      'select',
      { class: cls, 'aria-label': label, onchange: remember(label) },
      ...options.map(([v, text]) => h('option', { value: v }, text)),
    );
    if (value !== undefined && options.some(([v]) => v === value)) el.value = value;
    return h('label', {}, label, el);
  };
  const devices = (m.devices ?? []).map((d) => [d.uuid, d.uuid.slice(0, 8)]);
  if (devices.length === 0) {
    return h(
      'p',
      { class: 'muted' },
      'No matrix device yet: create one with "+ device" on the matrix parent.',
    );
  }
  const dev = select('device', 'ap-device', devices, prev.device);
  const ad = select(
    'adapter',
    'ap-adapter',
    m.adapters.map((a) => [String(a), hex(a)]),
    prev.adapter,
  );
  const dom = select(
    'domain',
    'ap-domain',
    m.domains.map((d) => [String(d), hex(d).padStart(4, '0')]),
    prev.domain,
  );
  const run = (op) => () => {
    const device = dev.querySelector('select').value;
    const adapter = Number(ad.querySelector('select').value);
    const domain = Number(dom.querySelector('select').value);
    apForm.last = { device, adapter: String(adapter), domain: String(domain) };
    act(
      `${op}ed ${hex(adapter)}.${hex(domain).padStart(4, '0')} ${op === 'assign' ? 'to' : 'from'} ${device.slice(0, 8)}`,
      () => api('POST', `/ap/devices/${device}/${op}`, { adapters: [adapter], domains: [domain] }),
    );
  };
  return h(
    'div',
    { class: 'define ap-form' },
    dev,
    ad,
    dom,
    h('button', { type: 'button', class: 'ap-assign', onclick: run('assign') }, 'Assign queue'),
    h(
      'button',
      { type: 'button', class: 'plain ap-unassign', onclick: run('unassign') },
      'Unassign',
    ),
  );
}

function renderAp() {
  const section = document.getElementById('ap-section');
  const m = state.ap;
  if (!m || !Array.isArray(m.adapters) || m.adapters.length === 0) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  const owners = new Map();
  for (const q of m.queues ?? []) owners.set(`${q.adapter}.${q.domain}`, q);
  const legend = h(
    'div',
    { class: 'legend' },
    h('span', {}, h('i', { style: 'background:#eceff3' }), 'host'),
    h('span', {}, h('i', { style: 'background:#fff' }), 'free for guests'),
    ...(m.devices ?? []).map((d) =>
      h('span', {}, h('i', { style: `background:${ownerColour(d.uuid)}` }), d.uuid.slice(0, 8)),
    ),
  );
  const hex = (n) => n.toString(16).padStart(2, '0');
  const table = h(
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
          ...m.domains.map((dom) => {
            const q = owners.get(`${a}.${dom}`);
            const owner = q?.owner;
            const cls = owner ? 'owned' : q?.host ? 'host' : 'free';
            return h(
              'td',
              {
                class: cls,
                'data-queue': `${hex(a)}.${hex(dom).padStart(4, '0')}`,
                'data-owner': owner ?? (q?.host ? 'host' : 'free'),
                style: owner ? `background:${ownerColour(owner)}` : undefined,
                title: owner ? `${hex(a)}.${hex(dom)} → ${owner}` : `${hex(a)}.${hex(dom)} ${cls}`,
              },
              owner ? owner.slice(0, 2) : '',
            );
          }),
        ),
      ),
    ),
  );
  document
    .getElementById('ap')
    .replaceChildren(apForm(m, hex), legend, h('div', { class: 'matrix' }, table));
}

function render() {
  renderParents();
  renderDevices();
  renderAp();
}

// ---- events --------------------------------------------------------------------

function connectEvents() {
  const live = document.getElementById('live');
  const log = document.getElementById('events');
  // Beyond loopback the agent wants the token for reads too, and EventSource
  // cannot send headers: only then does the token go into the stream's URL.
  const loopback = /^(localhost|127\.[0-9.]+|\[::1\])$/.test(location.hostname);
  const query = !loopback && token() !== '' ? `?access_token=${encodeURIComponent(token())}` : '';
  const es = new EventSource(`${API}/events${query}`);
  es.onopen = () => {
    live.textContent = 'live';
    live.className = 'pill on';
  };
  es.onerror = () => {
    live.textContent = 'reconnecting';
    live.className = 'pill off';
  };
  const kinds = [
    'device-created',
    'device-removed',
    'device-defined',
    'device-undefined',
    'device-modified',
    'parent-registered',
    'parent-unregistered',
    'matrix-changed',
    'reset',
  ];
  for (const kind of kinds) {
    es.addEventListener(kind, (msg) => {
      let e = {};
      try {
        e = JSON.parse(msg.data);
      } catch {}
      const what = [e.parent, e.type, e.uuid].filter(Boolean).join(' ');
      log.prepend(h('li', {}, `${(e.time ?? '').slice(11, 19)} ${kind} ${what}`));
      while (log.childElementCount > 50) log.lastElementChild.remove();
      scheduleReload(true);
    });
  }
}

// ---- start -------------------------------------------------------------------------

async function start() {
  takeTokenFromFragment();
  const tokenInput = document.getElementById('token');
  tokenInput.value = token();
  document.getElementById('signin').addEventListener('submit', (ev) => {
    ev.preventDefault();
    localStorage.setItem(TOKEN_KEY, tokenInput.value.trim());
    toast('token saved in this browser');
  });
  document.getElementById('define').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const [parent, type] = document.getElementById('define-type').value.split('\u0000');
    const uuid = document.getElementById('define-uuid').value.trim();
    const body = {
      parent,
      type,
      define: true,
      activate: document.getElementById('define-start').checked,
      start: document.getElementById('define-auto').checked ? 'auto' : 'manual',
    };
    if (uuid !== '') body.uuid = uuid;
    act(`defined a ${type} device`, () => api('POST', '/devices', body));
  });
  try {
    const health = await fetch('/healthz').then((r) => r.json());
    document.getElementById('host').textContent = health.host;
  } catch {}
  await Promise.all([loadParents(), loadDevices(), loadAp()]);
  render();
  connectEvents();
}

start().catch((err) => toast(`could not load: ${err.message}`, true));
