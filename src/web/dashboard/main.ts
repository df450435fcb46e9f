// The mdevkit dashboard: DOM code over the agent's API, no framework.
// Everything shown comes from /api/v1; every change arrives on the event
// stream and triggers a (coalesced) reload. scripts/build.mjs bundles this
// entry and its imports into dist/web/app.js, which the agent serves.
import { api } from './api.js';
import { renderAp } from './ap-grid.js';
import { chosenType, renderParents } from './capacity.js';
import { renderDevices } from './devices.js';
import { byId, toast } from './dom.js';
import { connectEvents } from './event-stream.js';
import { renderDesired } from './desired.js';
import {
  act,
  loadAp,
  loadDesired,
  loadDevices,
  loadParents,
  loadVgpus,
  onReloaded,
} from './store.js';
import { saveToken, takeTokenFromFragment, token } from './token.js';
import { renderVgpus, wireVgpuForm } from './vgpus.js';

function render(): void {
  renderParents();
  renderDevices();
  renderVgpus();
  renderAp();
  renderDesired();
}

function wireForms(): void {
  const tokenInput = byId('token', HTMLInputElement);
  tokenInput.value = token();
  byId('signin', HTMLFormElement).addEventListener('submit', (ev) => {
    ev.preventDefault();
    saveToken(tokenInput.value);
    toast('token saved in this browser');
  });
  byId('define', HTMLFormElement).addEventListener('submit', (ev) => {
    ev.preventDefault();
    const { parent, type } = chosenType(byId('define-type', HTMLSelectElement).value);
    const uuid = byId('define-uuid', HTMLInputElement).value.trim();
    void act(`defined a ${type} device`, () =>
      api.create({
        parent,
        type,
        define: true,
        activate: byId('define-start', HTMLInputElement).checked,
        start: byId('define-auto', HTMLInputElement).checked ? 'auto' : 'manual',
        ...(uuid === '' ? {} : { uuid }),
      }),
    );
  });
}

async function start(): Promise<void> {
  takeTokenFromFragment();
  wireForms();
  wireVgpuForm();
  try {
    byId('host', HTMLElement).textContent = (await api.health()).host;
  } catch {
    // the header keeps "connecting…"; the loads below say what failed
  }
  await Promise.all([loadParents(), loadDevices(), loadVgpus(), loadAp(), loadDesired()]);
  onReloaded(render);
  render();
  connectEvents();
}

start().catch((err: unknown) =>
  toast(`could not load: ${err instanceof Error ? err.message : String(err)}`, true),
);
