import * as nodePath from 'node:path';
import { ErrnoError, strerror } from '../common/errno.js';
import { ControlUnavailableError, controlCall, type ControlRequest } from '../sim/control.js';
import { isPciAddress } from '../sim/core/pci.js';
import type { CommandIo } from '../ctl/io.js';
import { CommandError, UsageError, command, uuidArgument, type OptionSpecs } from './command.js';

/**
 * `mdevkit lab open|close UUID`: play the VM for a running lab — open a
 * mediated device as VFIO would, and release it. Talks to the lab's control
 * socket (src/sim/control.ts), DIR/lab.sock of the lab served at DIR.
 * Management commands never open devices; this is the emulator's side.
 */

/** The control socket of the lab at DIR. */
export function labSocketPath(dir: string): string {
  return nodePath.join(dir, 'lab.sock');
}

/** `--lab DIR` (alias `--mount DIR`): which served lab; default $MDEVKIT_LAB. */
export const LAB_DIR_OPTIONS = {
  lab: {
    type: 'string',
    value: 'DIR',
    help: "the lab's directory (as given to 'lab serve --mount DIR'); default: $MDEVKIT_LAB, which 'lab shell' sets",
  },
  mount: { type: 'string', value: 'DIR', help: 'the same as --lab' },
} as const satisfies OptionSpecs;

/** The served lab's directory from --lab/--mount or $MDEVKIT_LAB. */
export function labDir(
  io: CommandIo,
  values: { readonly lab?: string; readonly mount?: string },
  option = '--lab',
): string {
  const dir = values.lab ?? values.mount ?? io.env['MDEVKIT_LAB'];
  if (dir === undefined || dir === '') {
    throw new UsageError(`which lab? give ${option} DIR or set MDEVKIT_LAB`);
  }
  return dir;
}

/** Nobody answers on the lab's socket: say how to start one. */
export function noLabRunning(dir: string, socketPath: string): CommandError {
  return new CommandError(
    `no lab is running at ${dir} (nothing answers on ${socketPath}); start one with 'mdevkit lab serve --mount ${dir}'`,
  );
}

/** A control call whose refusal reads "cannot OP WHAT: strerror (why)". */
async function call(
  io: CommandIo,
  values: { readonly lab?: string; readonly mount?: string },
  request: ControlRequest,
  what: string,
): Promise<Record<string, unknown>> {
  const dir = labDir(io, values);
  const socketPath = labSocketPath(nodePath.resolve(io.cwd, dir));
  try {
    return await controlCall(socketPath, request);
  } catch (err) {
    if (err instanceof ControlUnavailableError) throw noLabRunning(dir, socketPath);
    if (err instanceof ErrnoError) {
      const why = err.detail ?? (err.message.startsWith(`${err.code}:`) ? '' : err.message);
      throw new CommandError(
        `cannot ${what}: ${strerror(err.code)}${why === '' ? '' : ` (${why})`}`,
      );
    }
    throw err;
  }
}

/** A device of the lab: an mdev UUID, or the PCI address of a VFIO-registered function (a VF). */
function deviceArgument(text: string): { uuid: string } | { device: string } {
  const lower = text.toLowerCase();
  const pci = /^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(lower) ? `0000:${lower}` : lower;
  if (isPciAddress(pci)) return { device: pci };
  return { uuid: uuidArgument(text) };
}

function openOrClose(op: 'open' | 'close') {
  return command({
    synopsis: 'UUID|ADDRESS [--lab DIR]',
    description: `${op === 'open' ? "Open a device of a running lab as a VM's VFIO use would: a mediated device by UUID, or an NVIDIA VF (a vGPU) by its PCI address." : 'Release a device of a running lab that a VM holds open (a mediated device by UUID, an NVIDIA VF by its PCI address).'} While a device is open, removing it and changing its aggregation or nvidia/vgpu_params fail with EBUSY, and so do writes to a VF's nvidia/current_vgpu_type. A VF without a vGPU type cannot be opened (ENODEV). Opens nest: a device opened twice is released by two closes.`,
    options: LAB_DIR_OPTIONS,
    positionals: [{ name: 'UUID|ADDRESS' }],
    async run(io, { values, positionals }) {
      const arg = positionals[0]!;
      const target = deviceArgument(arg);
      await call(
        io,
        values,
        { op, ...target },
        `${op} ${'uuid' in target ? target.uuid : target.device}`,
      );
    },
  });
}

export const labOpen = openOrClose('open');
export const labClose = openOrClose('close');

/**
 * `mdevkit lab sriov-manage -e|-d GPU|ALL`: NVIDIA's sriov-manage on a
 * running lab. Enabling VFs is a machine action (root runs NVIDIA's script,
 * usually from a boot unit); the lab's nvidia driver refuses raw writes to
 * sriov_numvfs, as the hardware's does.
 */
export const labSriovManage = command({
  synopsis: '-e|-d GPU|ALL [--boot] [--lab DIR]',
  description:
    "Enable (-e) or disable (-d) the SR-IOV virtual functions of an NVIDIA GPU of a running lab, as NVIDIA's /usr/lib/nvidia/sriov-manage does: GPU is a PCI address (0000:41:00.0) or ALL. Enabling gives a GPU all its VFs (sriov_totalvfs), each bound to nvidia with its nvidia/ directory, and is idempotent; disabling takes the VFs and their vGPUs away, and is refused while a VM holds one. VFs do not survive a reboot: --boot also enables (with -d: disables) the boot unit that runs this at every 'lab reboot', as systemctl enable nvidia-sriov-manage@GPU.service does on a host.",
  options: {
    enable: { type: 'string', short: 'e', value: 'GPU', help: 'enable the VFs of GPU (or ALL)' },
    disable: { type: 'string', short: 'd', value: 'GPU', help: 'disable the VFs of GPU (or ALL)' },
    boot: {
      type: 'boolean',
      default: false,
      help: 'also at every boot of the lab (enable or disable the boot unit)',
    },
    ...LAB_DIR_OPTIONS,
  },
  positionals: [],
  json: true,
  async run(io, { values, output }) {
    if ((values.enable === undefined) === (values.disable === undefined)) {
      throw new UsageError('give one of -e GPU and -d GPU (GPU: a PCI address or ALL)');
    }
    const enable = values.enable !== undefined;
    const target = (values.enable ?? values.disable)!;
    const result = await call(
      io,
      values,
      { op: 'sriov-manage', enable, target, boot: values.boot },
      `${enable ? 'enable' : 'disable'} VFs of ${target}`,
    );
    const { ok: _ok, ...data } = result;
    output(data, () => {
      const messages = Array.isArray(result['messages']) ? (result['messages'] as string[]) : [];
      return messages.map((m) => `${m}\n`).join('');
    });
  },
});
