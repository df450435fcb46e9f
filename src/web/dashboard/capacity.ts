// Parents and their types: one card per parent, one row per type with a
// capacity meter (used of used + free) and a button that makes a device.
import { api, type MdevType, type Parent } from './api.js';
import { byId, h } from './dom.js';
import { act, state } from './store.js';

/** The define form's value for a type: parent and type id, NUL-separated (neither contains NUL). */
const typeChoice = (parent: string, type: string): string => `${parent}\u0000${type}`;

/** The parent and type the define form's value names. */
export function chosenType(value: string): { parent: string; type: string } {
  const [parent = '', type = ''] = value.split('\u0000');
  return { parent, type };
}

function typeLabel(p: Parent, t: MdevType): string {
  return `${p.name} / ${t.name !== undefined && t.name !== t.id ? `${t.name} (${t.id})` : t.id}`;
}

function typeRow(p: Parent, t: MdevType): HTMLElement {
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
          void act(`created a ${t.id} device`, () =>
            api.create({ parent: p.name, type: t.id, activate: true }),
          ),
      },
      '+ device',
    ),
    h(
      'span',
      { class: 'desc' },
      `${t.id} · ${t.deviceApi}`,
      t.aggregation !== undefined ? ` · aggregates up to ${t.aggregation}` : '',
      t.description !== undefined && t.description !== '' ? ` · ${t.description}` : '',
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
        { class: 'counts', 'data-available': t.availableInstances, 'data-used': t.activeDevices },
        `${t.activeDevices} used · ${t.availableInstances} free`,
      ),
    ),
  );
}

export function renderParents(): void {
  byId('parents', HTMLElement).replaceChildren(
    ...state.parents.map((p) =>
      h(
        'article',
        { class: 'card', 'data-parent': p.name },
        h('h3', {}, p.name),
        ...p.types.map((t) => typeRow(p, t)),
      ),
    ),
  );
  // The define form's choice of types follows the parents; the choice made stays.
  const select = byId('define-type', HTMLSelectElement);
  const chosen = select.value;
  select.replaceChildren(
    ...state.parents.flatMap((p) =>
      p.types.map((t) => h('option', { value: typeChoice(p.name, t.id) }, typeLabel(p, t))),
    ),
  );
  if (chosen !== '') select.value = chosen;
}
