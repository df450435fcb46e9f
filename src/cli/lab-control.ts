import * as nodePath from 'node:path';
import { ErrnoError, strerror } from '../common/errno.js';
import { ControlUnavailableError, controlCall } from '../sim/control.js';
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

function openOrClose(op: 'open' | 'close') {
  return command({
    synopsis: 'UUID [--lab DIR]',
    description: `${op === 'open' ? "Open a mediated device of a running lab as a VM's VFIO use would." : 'Release a mediated device of a running lab that a VM holds open.'} While a device is open, removing it and changing its aggregation or nvidia/vgpu_params fail with EBUSY. Opens nest: a device opened twice is released by two closes.`,
    options: LAB_DIR_OPTIONS,
    positionals: [{ name: 'UUID' }],
    async run(io, { values, positionals }) {
      const uuid = uuidArgument(positionals[0]!);
      const dir = labDir(io, values);
      const socketPath = labSocketPath(nodePath.resolve(io.cwd, dir));
      try {
        await controlCall(socketPath, { op, uuid });
      } catch (err) {
        if (err instanceof ControlUnavailableError) throw noLabRunning(dir, socketPath);
        if (err instanceof ErrnoError) {
          const why = err.detail ?? (err.message.startsWith(`${err.code}:`) ? '' : err.message);
          throw new CommandError(
            `cannot ${op} ${uuid}: ${strerror(err.code)}${why === '' ? '' : ` (${why})`}`,
          );
        }
        throw err;
      }
    },
  });
}

export const labOpen = openOrClose('open');
export const labClose = openOrClose('close');
