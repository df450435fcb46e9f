import {
  shortTypeName,
  typeKey,
  type VfGpuCapacity,
  type VgpuEntry,
  type VgpuInventory,
} from '../host/vf-vgpu.js';

/**
 * How `mdevkit vf list|types|capacity` print NVIDIA's VF vGPUs: a line per
 * GPU, then its rows; and the JSON the commands and the agent share.
 */

const typeLabel = (e: { typeId: number; typeName: string | undefined }): string =>
  e.typeName === undefined ? typeKey(e.typeId) : `${shortTypeName(e.typeName)} (${e.typeId})`;

function gpuLine(c: VfGpuCapacity): string {
  const board = c.board === undefined ? '' : `${c.board}, `;
  const fb = c.framebufferGb === undefined ? '' : `${c.framebufferGb} GB`;
  const head = `GPU ${c.gpu} (${board}${fb})`;
  if (c.vfs.enabled === 0) {
    return `${head}: VFs are not enabled (${c.vfs.total} possible): run sriov-manage -e`;
  }
  const mode =
    c.mode === 'equal-size' && c.runningSizeGb !== undefined
      ? `, runs ${c.runningSizeGb} GB types`
      : c.mode === 'mixed-size'
        ? ', mixed sizes'
        : '';
  return `${head}: ${c.vgpus} vGPUs on ${c.vfs.enabled} VFs (${c.vfs.free} free), ${c.usedGb} of ${c.framebufferGb ?? '?'} GB used${mode}`;
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      `  ${r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')}`.trimEnd(),
    )
    .join('\n');
}

export function renderVfList(inv: VgpuInventory): string {
  if (inv.capacity.length === 0 && inv.entries.length === 0) {
    return 'no NVIDIA GPU with SR-IOV vGPUs\n';
  }
  const out: string[] = [];
  const gpus = new Set([...inv.capacity.map((c) => c.gpu), ...inv.entries.map((e) => e.gpu)]);
  for (const gpu of [...gpus].sort()) {
    const cap = inv.capacity.find((c) => c.gpu === gpu);
    out.push(cap === undefined ? `GPU ${gpu}: not present` : gpuLine(cap));
    const rows = inv.entries.filter((e) => e.gpu === gpu);
    if (rows.length > 0) {
      out.push(
        table([
          ['VF', 'ADDRESS', 'TYPE', 'STATE', 'UUID', 'OWNER'],
          ...rows.map((e) => [
            String(e.vf),
            e.vfAddress ?? '-',
            typeLabel(e),
            e.state === 'conflict' ? `conflict (VF holds ${e.currentTypeId})` : e.state,
            e.uuid ?? '-',
            e.owner ?? '-',
          ]),
        ]),
      );
    }
  }
  for (const bad of inv.invalidDefinitions) out.push(`warning: ${bad.message}`);
  return out.join('\n') + '\n';
}

export function renderVfTypes(inv: VgpuInventory): string {
  if (inv.capacity.length === 0) return 'no NVIDIA GPU with SR-IOV vGPUs\n';
  const out: string[] = [];
  for (const c of inv.capacity) {
    out.push(gpuLine(c));
    if (c.types.length === 0) continue;
    out.push(
      table([
        ['ID', 'TYPE', 'FRAMEBUFFER', 'CREATABLE NOW', 'FITS'],
        ...c.types.map((t) => [
          String(t.id),
          t.shortName ?? typeKey(t.id),
          t.framebufferGb === undefined ? '?' : `${t.framebufferGb} GB`,
          t.creatableNow === undefined ? '-' : t.creatableNow ? 'yes' : 'no',
          String(t.headroom),
        ]),
      ]),
    );
  }
  return out.join('\n') + '\n';
}

export function renderVfCapacity(inv: VgpuInventory): string {
  if (inv.capacity.length === 0) return 'no NVIDIA GPU with SR-IOV vGPUs\n';
  const out: string[] = [];
  for (const c of inv.capacity) {
    out.push(gpuLine(c));
    if (c.vfs.enabled === 0) continue;
    const fits = c.types.filter((t) => t.headroom > 0);
    out.push(
      `  mode: ${c.mode}; fits now: ${fits.length === 0 ? 'nothing' : fits.map((t) => `${t.headroom} x ${t.shortName ?? typeKey(t.id)}`).join(', ')}`,
    );
  }
  return out.join('\n') + '\n';
}

/** A GPU's capacity as JSON (CLI and agent). */
export function vfCapacityJson(c: VfGpuCapacity): Record<string, unknown> {
  return {
    gpu: c.gpu,
    board: c.board ?? null,
    framebufferGb: c.framebufferGb ?? null,
    usedGb: c.usedGb,
    runningSizeGb: c.runningSizeGb ?? null,
    mode: c.mode,
    vfs: c.vfs,
    vgpus: c.vgpus,
    types: c.types.map((t) => ({
      id: t.id,
      key: t.key,
      name: t.name ?? null,
      shortName: t.shortName ?? null,
      framebufferGb: t.framebufferGb ?? null,
      creatableNow: t.creatableNow ?? null,
      headroom: t.headroom,
    })),
  };
}

export function vgpuEntryJson(e: VgpuEntry): Record<string, unknown> {
  return {
    uuid: e.uuid ?? null,
    gpu: e.gpu,
    vf: e.vf,
    vfAddress: e.vfAddress ?? null,
    typeId: e.typeId,
    typeKey: typeKey(e.typeId),
    typeName: e.typeName ?? null,
    currentTypeId: e.currentTypeId ?? null,
    state: e.state,
    defined: e.defined,
    start: e.start ?? null,
    params: e.params ?? null,
    owner: e.owner ?? null,
    placement: e.placement ?? null,
  };
}
