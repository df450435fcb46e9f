// The desired-state view (src/host/desired through /api/v1/desired/*):
// desired next to actual per configuration, parent and type; capacity per
// type by the vendors' rules, with why none fits where none does; each
// device's owner; and removals that ask before touching another owner's
// device (the agent refuses them with EPERM unless forced).
import { ApiRequestError, type ApiDevice } from './api.js';
import { byId, h } from './dom.js';
import { state } from './store.js';

/** The device's owner as a badge, when mdevkit made it. */
export function ownerBadge(d: ApiDevice): HTMLElement | null {
  const owner = state.owners.get(d.uuid);
  return owner === undefined
    ? null
    : h('span', { class: 'badge owner', 'data-owner': owner, title: 'made by' }, owner);
}

/**
 * Stop or remove: when the agent says the device is not ours (EPERM), say
 * whose it is and go ahead only when the user says so.
 */
export async function removing(
  d: ApiDevice,
  op: (force: boolean) => Promise<unknown>,
): Promise<unknown> {
  try {
    return await op(false);
  } catch (err) {
    if (!(err instanceof ApiRequestError) || err.error?.errno !== 'EPERM') throw err;
    if (!window.confirm(`${err.error.message}\n\nRemove ${d.uuid} anyway?`)) throw err;
    return op(true);
  }
}

export function renderDesired(): void {
  const section = byId('desired-section', HTMLElement);
  const status = state.desired;
  const capacity = state.capacity;
  section.hidden = status === null || capacity === null;
  if (status === null || capacity === null) return;
  const head = (...cells: string[]): HTMLElement =>
    h('tr', {}, ...cells.map((c) => h('th', { scope: 'col' }, c)));
  byId('desired', HTMLTableElement).replaceChildren(
    h('caption', { class: 'sr-only' }, 'desired next to actual'),
    head('configuration', 'parent', 'type', 'wanted', 'running'),
    ...(status.rows.length === 0
      ? [h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'no configuration applied yet'))]
      : status.rows.map((r) =>
          h(
            'tr',
            { class: r.actual === r.wanted ? 'match' : 'differs', 'data-config': r.config },
            h('td', {}, r.config),
            h('td', {}, r.parent),
            h('td', {}, r.type),
            h('td', { class: 'num' }, r.wanted),
            h('td', { class: 'num' }, r.actual),
          ),
        )),
  );
  byId('desired-blocked', HTMLElement).replaceChildren(
    ...status.configs.flatMap((c) => c.blocked.map((b) => h('li', {}, `${c.config}: ${b}`))),
  );
  byId('capacity', HTMLTableElement).replaceChildren(
    h('caption', { class: 'sr-only' }, 'capacity per type'),
    head('type', 'more', 'where'),
    ...capacity.types.map((t) =>
      h(
        'tr',
        { 'data-type': t.type },
        h('td', {}, t.name !== undefined && t.name !== t.type ? `${t.type} (${t.name})` : t.type),
        h('td', { class: 'num' }, t.more),
        h(
          'td',
          {},
          ...t.parents.map((c) =>
            h(
              'div',
              { class: c.more === 0 ? 'muted' : '' },
              `${c.parent}: ${c.more}${c.why === undefined ? '' : ` — ${c.why}`}`,
            ),
          ),
        ),
      ),
    ),
  );
}
