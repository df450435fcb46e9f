import * as nodePath from 'node:path';
import { parseArgs } from 'node:util';
import { ErrnoError, strerror } from '../common/errno.js';
import { isUuid } from '../common/uuid.js';
import { ControlUnavailableError, controlCall } from '../sim/control.js';
import { CommandError, UsageError, type CommandContext } from './context.js';

/**
 * `mdevkit lab open|close UUID`: play the VM for a running lab — open a
 * mediated device as VFIO would, and release it. Talks to the lab's control
 * socket (src/sim/control.ts), DIR/lab.sock of the lab served at DIR.
 * Management commands never open devices; this is the emulator's side.
 */

export const OPEN_USAGE = `usage: mdevkit lab open UUID [--lab DIR]
       mdevkit lab close UUID [--lab DIR]

Open a mediated device of a running lab as a VM's VFIO use would, or release
it again. While a device is open, removing it and changing its aggregation
or nvidia/vgpu_params fail with EBUSY. Opens nest: a device opened twice is
released by two closes.
  --lab DIR    the lab's directory (as given to 'lab serve --mount DIR');
               default: $MDEVKIT_LAB, which 'lab shell' sets
  --mount DIR  the same as --lab
`;

/** The control socket of the lab at DIR. */
export function labSocketPath(dir: string): string {
  return nodePath.join(dir, 'lab.sock');
}

async function openOrClose(op: 'open' | 'close', ctx: CommandContext, args: string[]) {
  const { values, positionals } = parseArgs({
    args,
    options: {
      lab: { type: 'string' },
      mount: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    ctx.stdout.write(OPEN_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`lab ${op} takes one UUID`, OPEN_USAGE);
  const uuid = positionals[0]!;
  if (!isUuid(uuid)) throw new UsageError(`'${uuid}' is not a UUID`, OPEN_USAGE);
  const dir = values.lab ?? values.mount ?? ctx.env['MDEVKIT_LAB'];
  if (dir === undefined || dir === '') {
    throw new UsageError('which lab? give --lab DIR or set MDEVKIT_LAB', OPEN_USAGE);
  }
  const socketPath = labSocketPath(nodePath.resolve(ctx.cwd, dir));
  try {
    await controlCall(socketPath, { op, uuid });
  } catch (err) {
    if (err instanceof ControlUnavailableError) {
      throw new CommandError(
        `no lab is running at ${dir} (nothing answers on ${socketPath}); start one with 'mdevkit lab serve --mount ${dir}'`,
      );
    }
    if (err instanceof ErrnoError) {
      const why = err.detail ?? (err.message.startsWith(`${err.code}:`) ? '' : err.message);
      throw new CommandError(
        `cannot ${op} ${uuid}: ${strerror(err.code)}${why === '' ? '' : ` (${why})`}`,
      );
    }
    throw err;
  }
  return 0;
}

export const labOpen = (ctx: CommandContext, args: string[]): Promise<number> =>
  openOrClose('open', ctx, args);

export const labClose = (ctx: CommandContext, args: string[]): Promise<number> =>
  openOrClose('close', ctx, args);
