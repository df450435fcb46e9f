import * as os from 'node:os';
import type { CommandIo } from '../ctl/io.js';
import {
  renderVfCapacity,
  renderVfList,
  renderVfTypes,
  vfCapacityJson,
  vgpuEntryJson,
} from '../ctl/vf-vgpu.js';
import {
  autostartGpu,
  canonicalPciAddress,
  checkOwner,
  createVgpu,
  describeVfAutostartRun,
  readVgpuInventory,
  removeVgpu,
  startVgpu,
  stopVgpu,
  vfOf,
  type VgpuInventory,
} from '../host/vf-vgpu.js';
import { UsageError, command, group, uuidArgument } from './command.js';

/**
 * `mdevkit vf ...`: NVIDIA's SR-IOV VF vGPUs (no mdev bus): list, types,
 * capacity, create (on a chosen VF or a placed one), remove, start, stop,
 * and autostart (what the udev rule runs once a GPU's VFs exist).
 */

/** Who a command acts as: --owner, else user:$USER. */
function ownerOf(io: CommandIo, given: string | undefined): string {
  const user = io.env['SUDO_USER'] ?? io.env['USER'] ?? safeUser();
  return checkOwner(given ?? `user:${user.replace(/[^A-Za-z0-9@._-]/g, '_') || 'root'}`);
}

function safeUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return 'root';
  }
}

function gpuOption(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const a = canonicalPciAddress(text);
  if (a === undefined)
    throw new UsageError(`--gpu takes a PCI address (0000:41:00.0), not '${text}'`);
  return a;
}

const GPU_OPTION = {
  type: 'string',
  value: 'GPU',
  help: 'only this GPU (the PCI address of its physical function, 0000:41:00.0)',
} as const;

/**
 * A read-only view of the GPUs --gpu selects (every GPU without it): the
 * inventory is read once from sysfs and the definitions, and `view` gives
 * its JSON and its text.
 */
function inventoryCommand(
  description: string,
  view: (inv: VgpuInventory) => { json: unknown; text: () => string },
) {
  return command({
    synopsis: '[--gpu GPU]',
    description,
    options: { gpu: GPU_OPTION },
    positionals: [],
    root: true,
    json: true,
    run(_io, call) {
      const gpu = gpuOption(call.values.gpu);
      const { json, text } = view(readVgpuInventory(call.host(), gpu === undefined ? {} : { gpu }));
      call.output(json, text);
    },
  });
}

const listCommand = inventoryCommand(
  "NVIDIA's VF vGPUs, one row each: the vGPUs mdevkit defined (active when their VF holds their type, inactive when not, conflict when the VF holds another) and the vGPUs a VF holds that nobody defined here (foreign). Each GPU's line says its VFs and framebuffer; a GPU whose VFs are not enabled says so. Read from sysfs and the definitions only.",
  (inv) => ({
    json: {
      gpus: inv.capacity.map(vfCapacityJson),
      vgpus: inv.entries.map(vgpuEntryJson),
      invalidDefinitions: inv.invalidDefinitions,
    },
    text: () => renderVfList(inv),
  }),
);

const typesCommand = inventoryCommand(
  "The vGPU types of each GPU: id, name, framebuffer, whether a free VF lists it in creatable_vgpu_types now, and how many more fit. A GPU in NVIDIA's default equal-size mode takes one framebuffer size at a time (Q and A of that size mix).",
  (inv) => ({ json: inv.capacity.map(vfCapacityJson), text: () => renderVfTypes(inv) }),
);

const capacityCommand = inventoryCommand(
  'Per GPU: framebuffer used and total, VFs free, enabled and total, the framebuffer size it runs and its mode, and the types that still fit with how many.',
  (inv) => ({ json: inv.capacity.map(vfCapacityJson), text: () => renderVfCapacity(inv) }),
);

const createCommand = command({
  synopsis:
    '--gpu GPU --type TYPE [--vf N] [--params P] [--auto] [--owner O] [--uuid U] [--define-only]',
  description:
    "Define a vGPU and make it: on VF N of GPU, or on the first VF that is free and not defined for another vGPU. TYPE is a type id (1153, nvidia-1153) or name (L40S-12Q). The definition persists (beside mdevctl's, in etc/mdevkit/vf-vgpus/GPU/UUID) and is pinned to its VF, whose PCI address a VM's XML names; --auto makes it come back whenever the GPU's VFs are enabled. vgpu_params (key=value[,...]) is written after the type. Prints the vGPU's UUID, its identity everywhere (QEMU's -uuid too).",
  options: {
    gpu: { ...GPU_OPTION, help: 'the GPU (PCI address of its physical function)' },
    type: {
      type: 'string',
      value: 'TYPE',
      help: 'the vGPU type: id (1153, nvidia-1153) or name (L40S-12Q)',
    },
    vf: { type: 'string', value: 'N', help: 'the VF index (virtfnN); default: the first free one' },
    params: { type: 'string', value: 'P', help: 'vgpu_params, key=value[,key=value...]' },
    auto: {
      type: 'boolean',
      default: false,
      help: 'start=auto: make it again whenever the VFs appear',
    },
    owner: { type: 'string', value: 'O', help: 'who owns it (KIND:NAME; default user:$USER)' },
    uuid: { type: 'string', value: 'U', help: 'its UUID (default: a new one)' },
    'define-only': { type: 'boolean', default: false, help: 'only define it; start makes it' },
  },
  positionals: [],
  root: true,
  json: true,
  run(io, call) {
    const v = call.values;
    if (v.gpu === undefined || v.type === undefined)
      throw new UsageError('create needs --gpu GPU and --type TYPE');
    let vf: number | undefined;
    if (v.vf !== undefined) {
      if (!/^\d{1,3}$/.test(v.vf))
        throw new UsageError(`--vf takes a VF index (0, 1, ...), not '${v.vf}'`);
      vf = Number(v.vf);
    }
    const r = createVgpu(call.host(), {
      gpu: gpuOption(v.gpu)!,
      type: v.type,
      ...(vf !== undefined ? { vf } : {}),
      ...(v.params !== undefined ? { params: v.params } : {}),
      owner: ownerOf(io, v.owner),
      start: v.auto ? 'auto' : 'manual',
      ...(v.uuid !== undefined ? { uuid: uuidArgument(v.uuid) } : {}),
      defineOnly: v['define-only'],
    });
    const d = r.definition;
    call.output(
      {
        uuid: d.uuid,
        gpu: d.gpu,
        vf: d.vf,
        vfAddress: r.vfAddress,
        typeId: d.typeId,
        typeName: d.typeName ?? null,
        started: r.started,
        owner: d.owner,
      },
      () =>
        `${r.started ? 'created' : 'defined'} vGPU ${d.uuid} (${d.typeName ?? d.typeId}) on VF ${d.vf} (${r.vfAddress}) of ${d.gpu}\n`,
    );
  },
});

const removeCommand = command({
  synopsis: 'UUID|VF [--force] [--owner O]',
  description:
    "Destroy a vGPU (write 0 to its VF's current_vgpu_type) and remove its definition; by UUID, or by the VF's PCI address. A vGPU another owner made, or one a VF holds that mdevkit did not make, is left alone unless --force. A VF in use by a VM keeps its vGPU.",
  options: {
    force: { type: 'boolean', default: false, help: "remove it even when it is someone else's" },
    owner: { type: 'string', value: 'O', help: 'who asks (KIND:NAME; default user:$USER)' },
  },
  positionals: [{ name: 'UUID|VF' }],
  root: true,
  json: true,
  run(io, call) {
    const target = call.positionals[0]!;
    const t = canonicalPciAddress(target) ?? uuidArgument(target);
    const r = removeVgpu(call.host(), t, {
      as: ownerOf(io, call.values.owner),
      force: call.values.force,
    });
    call.output(r, () => {
      const what = r.uuid === undefined ? `the vGPU on ${r.vfAddress}` : `vGPU ${r.uuid}`;
      const done = [r.destroyed ? 'destroyed' : undefined, r.undefined ? 'undefined' : undefined]
        .filter((x) => x !== undefined)
        .join(' and ');
      return `${what}: ${done}\n`;
    });
  },
});

function startStop(op: 'start' | 'stop') {
  return command({
    synopsis: 'UUID',
    description:
      op === 'start'
        ? "Make a defined vGPU: write its type to its VF's current_vgpu_type, then its vgpu_params. Refused when the VF holds another vGPU (naming it), when the type does not fit, or when the GPU's VFs are not enabled."
        : 'Destroy a defined vGPU (its definition stays). Refused while a VM uses the VF.',
    options: {},
    positionals: [{ name: 'UUID' }],
    root: true,
    json: true,
    run(_io, call) {
      const uuid = uuidArgument(call.positionals[0]!);
      const r = op === 'start' ? startVgpu(call.host(), uuid) : stopVgpu(call.host(), uuid);
      call.output(
        { uuid, vfAddress: r.vfAddress, gpu: r.definition.gpu },
        () => `${op === 'start' ? 'started' : 'stopped'} vGPU ${uuid} on ${r.vfAddress}\n`,
      );
    },
  });
}

const autostartCommand = command({
  synopsis: 'ADDRESS',
  description:
    "Make the start=auto vGPUs of a GPU that do not exist yet: what udev runs when a VF is bound to nvidia (ADDRESS: the VF's or the GPU's). A vGPU that exists already is left as it is.",
  options: {},
  positionals: [{ name: 'ADDRESS' }],
  root: true,
  json: true,
  run(io, call) {
    const a = canonicalPciAddress(call.positionals[0]!);
    if (a === undefined) throw new UsageError(`'${call.positionals[0]}' is not a PCI address`);
    const env = call.host();
    const gpu = vfOf(env.port, a)?.gpu ?? a;
    const run = autostartGpu(env, gpu);
    call.output(
      {
        gpu,
        started: run.started.map((d) => d.uuid),
        failed: run.failed.map((f) => ({
          uuid: f.definition.uuid,
          error: String((f.error as Error).message ?? f.error),
        })),
      },
      () =>
        describeVfAutostartRun(run)
          .map((l) => `${l}\n`)
          .join(''),
    );
    return run.failed.length > 0 ? 1 : 0;
  },
});

export const VF = group({
  description:
    "NVIDIA's SR-IOV VF vGPUs (vGPU 17+ on Linux 6.8+: VFs with nvidia/current_vgpu_type, no mdev bus).",
  commands: {
    list: { summary: 'the VF vGPUs, defined and foreign, with each GPU', load: () => listCommand },
    types: {
      summary: 'the vGPU types of each GPU and how many more fit',
      load: () => typesCommand,
    },
    capacity: { summary: "each GPU's framebuffer, VFs and mode", load: () => capacityCommand },
    create: {
      summary: 'define a vGPU on a chosen or placed VF and make it',
      load: () => createCommand,
    },
    remove: { summary: 'destroy a vGPU and remove its definition', load: () => removeCommand },
    start: { summary: 'make a defined vGPU', load: () => startStop('start') },
    stop: {
      summary: 'destroy a defined vGPU, keeping its definition',
      load: () => startStop('stop'),
    },
    autostart: {
      summary: "make a GPU's start=auto vGPUs (udev's call)",
      load: () => autostartCommand,
    },
  },
});
