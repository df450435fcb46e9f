// NVIDIA's SR-IOV VF vGPUs: one card per GPU with its framebuffer and VFs
// in use, the create form (GPU and type, optional VF and vgpu_params), and
// one row per vGPU with its VF, type, state and owner, a remove button
// (another owner's asks first) and its hostdev XML and QEMU arguments on
// demand. Everything comes from the one /vf-vgpus listing.
import { api, ApiRequestError, type VfGpu, type VfVgpu } from './api.js';
import { byId, h } from './dom.js';
import { act, state } from './store.js';

/** The create form's value for a type: GPU and type id, NUL-separated. */
const typeChoice = (gpu: string, id: number): string => `${gpu}\u0000${id}`;

function gpuCard(g: VfGpu): HTMLElement {
  const head = h('h3', {}, `${g.gpu}${g.board === null ? '' : ` · ${g.board}`}`);
  if (g.vfs.enabled === 0) {
    return h(
      'article',
      { class: 'card', 'data-gpu': g.gpu },
      head,
      h(
        'p',
        { class: 'desc' },
        `VFs are not enabled on ${g.gpu}: run sriov-manage -e (${g.vfs.total} possible)`,
      ),
    );
  }
  const total = g.framebufferGb ?? 0;
  const pct = total === 0 ? 0 : Math.round((100 * g.usedGb) / total);
  const mode =
    g.mode === 'equal-size' && g.runningSizeGb !== null
      ? `runs ${g.runningSizeGb} GB types`
      : g.mode === 'mixed-size'
        ? 'mixed sizes'
        : 'idle: any size';
  const fits = g.types.filter((t) => t.headroom > 0);
  return h(
    'article',
    { class: 'card', 'data-gpu': g.gpu },
    head,
    h(
      'div',
      { class: 'capacity' },
      h(
        'span',
        {
          class: `meter${g.usedGb >= total ? ' full' : ''}`,
          role: 'meter',
          'aria-valuemin': 0,
          'aria-valuemax': total,
          'aria-valuenow': g.usedGb,
          'aria-label': `${g.gpu} framebuffer in use`,
        },
        h('span', { style: `width:${pct}%` }),
      ),
      h(
        'span',
        { class: 'counts', 'data-used-gb': g.usedGb, 'data-vgpus': g.vgpus },
        `${g.usedGb} of ${total} GB · ${g.vgpus} vGPUs on ${g.vfs.enabled} VFs`,
      ),
    ),
    h(
      'p',
      { class: 'desc' },
      `${mode} · fits now: ${fits.length === 0 ? 'nothing' : fits.map((t) => `${t.headroom}× ${t.shortName ?? t.key}`).join(', ')}`,
    ),
  );
}

const label = (v: VfVgpu): string =>
  v.uuid === null ? `VF ${v.vfAddress ?? v.vf}` : v.uuid.slice(0, 8);

async function remove(v: VfVgpu): Promise<void> {
  try {
    await api.vfRemove(v);
  } catch (err) {
    // Another owner's vGPU, or one mdevkit did not make: ask before forcing.
    if (err instanceof ApiRequestError && err.error?.code === 'foreign-vgpu') {
      if (!window.confirm(`${err.error.message}\n\nRemove it anyway?`)) throw err;
      await api.vfRemove(v, true);
      return;
    }
    throw err;
  }
}

function vgpuRow(v: VfVgpu): HTMLElement {
  const detail = h('pre', { class: 'hostdev', hidden: true });
  const showHostdev = async (): Promise<void> => {
    if (!detail.hidden) {
      detail.hidden = true;
      return;
    }
    try {
      const r = await api.vfHostdev(v.uuid ?? '');
      detail.textContent = `${r.xml}\n${r.qemu.join(' ')}`;
    } catch (err) {
      detail.textContent = err instanceof Error ? err.message : String(err);
    }
    detail.hidden = false;
  };
  return h(
    'div',
    { class: 'device vgpu', 'data-vf': v.vfAddress ?? '', 'data-uuid': v.uuid ?? '' },
    h('code', {}, v.uuid ?? '(not made by mdevkit)'),
    h(
      'span',
      { class: 'where' },
      h('span', { class: `badge ${v.state === 'active' ? 'active' : 'defined'}` }, v.state),
      v.start === 'auto' ? h('span', { class: 'badge defined' }, 'auto') : null,
      `${v.gpu} / VF ${v.vf}${v.vfAddress === null ? '' : ` (${v.vfAddress})`} / ${v.typeName ?? v.typeKey}`,
      v.owner === null ? '' : ` · ${v.owner}`,
    ),
    h(
      'span',
      { class: 'actions' },
      v.uuid !== null
        ? h('button', { class: 'plain', onclick: () => void showHostdev() }, 'hostdev')
        : null,
      h(
        'button',
        {
          class: 'danger',
          onclick: () => void act(`removed vGPU ${label(v)}`, () => remove(v)),
        },
        'remove',
      ),
    ),
    detail,
  );
}

export function renderVgpus(): void {
  const { gpus, vgpus } = state.vgpus;
  byId('vgpu-section', HTMLElement).hidden = gpus.length === 0 && vgpus.length === 0;
  byId('vgpu-count', HTMLElement).textContent = `(${vgpus.length})`;
  byId('vgpu-gpus', HTMLElement).replaceChildren(...gpus.map(gpuCard));
  byId('vgpus', HTMLElement).replaceChildren(...vgpus.map(vgpuRow));
  const select = byId('vgpu-type', HTMLSelectElement);
  const chosen = select.value;
  select.replaceChildren(
    ...gpus
      .filter((g) => g.vfs.enabled > 0)
      .flatMap((g) =>
        g.types.map((t) =>
          h(
            'option',
            { value: typeChoice(g.gpu, t.id), disabled: t.headroom === 0 },
            `${g.gpu} / ${t.shortName ?? t.key} (${t.headroom} fit)`,
          ),
        ),
      ),
  );
  if (chosen !== '') select.value = chosen;
}

export function wireVgpuForm(): void {
  byId('vgpu-create', HTMLFormElement).addEventListener('submit', (ev) => {
    ev.preventDefault();
    const [gpu = '', type = ''] = byId('vgpu-type', HTMLSelectElement).value.split('\u0000');
    const vf = byId('vgpu-vf', HTMLInputElement).value.trim();
    const params = byId('vgpu-params', HTMLInputElement).value.trim();
    const name =
      state.vgpus.gpus.find((g) => g.gpu === gpu)?.types.find((t) => String(t.id) === type)
        ?.shortName ?? type;
    void act(`created a ${name} vGPU on ${gpu}`, () =>
      api.vfCreate({
        gpu,
        type: Number(type),
        start: byId('vgpu-auto', HTMLInputElement).checked ? 'auto' : 'manual',
        ...(vf === '' ? {} : { vf: Number(vf) }),
        ...(params === '' ? {} : { params }),
      }),
    );
  });
}
