// The aggregation control of a device row: how many instances' worth the
// device holds, from the listing (the agent reads mdev/aggregation/{value,max}
// when it rebuilds the list), and a button that sets it.
import { api, type ApiDevice } from './api.js';
import { h } from './dom.js';
import { act } from './store.js';

/** Values typed but not yet set, by UUID: a redraw (any event) must not throw them away. */
const drafts = new Map<string, string>();

/** The control, or null for a device that does not aggregate (or is not running). */
export function aggregationControl(d: ApiDevice): HTMLElement | null {
  const aggregation = d.aggregation;
  if (aggregation === undefined || !d.active) return null;
  const input = h('input', {
    type: 'number',
    min: 1,
    max: aggregation.max,
    'aria-label': `aggregation of ${d.uuid}`,
    class: 'agg-value',
    oninput: () => drafts.set(d.uuid, input.value),
  });
  input.value = drafts.get(d.uuid) ?? String(aggregation.value);
  return h(
    'span',
    { class: 'aggregation' },
    '×',
    input,
    aggregation.max !== undefined ? h('span', { class: 'muted' }, `/ ${aggregation.max}`) : null,
    h(
      'button',
      {
        class: 'plain',
        onclick: () =>
          void act(`aggregation of ${d.uuid.slice(0, 8)} set to ${input.value}`, async () => {
            await api.setAggregation(d, Number(input.value));
            drafts.delete(d.uuid);
          }),
      },
      'set',
    ),
  );
}
