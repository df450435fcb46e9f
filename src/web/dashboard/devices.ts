// The device table: one row per parent/UUID (definitions and running
// devices merged, as mdevctl list and list -d together show them), with
// start, stop, remove and, where the type aggregates, the aggregation control.
import { api, type ApiDevice } from './api.js';
import { aggregationControl } from './aggregation.js';
import { byId, h } from './dom.js';
import { ownerBadge, removing } from './desired.js';
import { act, state } from './store.js';

const short = (d: ApiDevice): string => d.uuid.slice(0, 8);

function deviceRow(d: ApiDevice): HTMLElement {
  return h(
    'div',
    { class: 'device', 'data-uuid': d.uuid },
    h('code', {}, d.uuid),
    h(
      'span',
      { class: 'where' },
      d.active ? h('span', { class: 'badge active' }, 'active') : null,
      d.defined
        ? h('span', { class: 'badge defined' }, d.start === 'auto' ? 'defined, auto' : 'defined')
        : null,
      `${d.parent} / ${d.type}`,
      ownerBadge(d),
    ),
    h(
      'span',
      { class: 'actions' },
      aggregationControl(d),
      d.defined && !d.active
        ? h(
            'button',
            { class: 'plain', onclick: () => void act(`started ${short(d)}`, () => api.start(d)) },
            'start',
          )
        : null,
      d.active
        ? h(
            'button',
            {
              class: 'plain',
              onclick: () =>
                void act(`stopped ${short(d)}`, () => removing(d, (force) => api.stop(d, force))),
            },
            'stop',
          )
        : null,
      h(
        'button',
        {
          class: 'danger',
          onclick: () =>
            void act(`removed ${short(d)}`, () => removing(d, (force) => api.remove(d, force))),
        },
        'remove',
      ),
    ),
  );
}

export function renderDevices(): void {
  byId('device-count', HTMLElement).textContent =
    state.total > state.devices.length
      ? `(${state.devices.length} of ${state.total})`
      : `(${state.total})`;
  byId('devices', HTMLElement).replaceChildren(...state.devices.map(deviceRow));
}
