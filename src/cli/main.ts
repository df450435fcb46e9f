import * as fs from 'node:fs';
import { ErrnoError, strerror } from '../common/errno.js';
import { ProfileError } from '../sim/profiles/profile.js';
import { CommandError, UsageError, type CommandContext } from './context.js';

/**
 * Entry point of `bin/mdevkit`: picks the command and maps failures to exit
 * codes (0 ok, 1 runtime error, 2 usage error). Commands live in their
 * own modules; this file only wires them.
 */

export const VERSION = '0.1.0';

export type CommandRunner = (ctx: CommandContext, args: string[]) => Promise<number> | number;

interface Command {
  readonly summary: string;
  /** Loaded on use, so a command pays only for its own modules at start-up. */
  load(): Promise<CommandRunner>;
}

/**
 * The command table. Each entry imports its module lazily (esbuild splits
 * it into its own chunk); add new commands here.
 */
const COMMANDS: Record<string, Command> = {
  lab: {
    summary: 'the emulated host: summary, snapshot',
    load: async () => (await import('./lab.js')).labCommand,
  },
};

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`);
  return `usage: mdevkit <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun 'mdevkit <command> --help' for a command's options.\n`;
}

export function processContext(): CommandContext {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    readStdin: () => fs.readFileSync(0, 'utf8'),
  };
}

export async function main(argv: string[], ctx: CommandContext): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    ctx.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    ctx.stdout.write(`mdevkit ${VERSION}\n`);
    return 0;
  }
  const cmd = COMMANDS[name];
  try {
    if (cmd === undefined) throw new UsageError(`unknown command '${name}'`, usage());
    const run = await cmd.load();
    return await run(ctx, rest);
  } catch (err) {
    return reportError(ctx, err);
  }
}

/** Failures the user can act on get one line; anything else is a bug and keeps its stack. */
export function reportError(ctx: CommandContext, err: unknown): number {
  if (err instanceof UsageError) {
    ctx.stderr.write(`mdevkit: ${err.message}\n`);
    if (err.usage !== undefined) ctx.stderr.write(`\n${err.usage}`);
    return 2;
  }
  if (err instanceof CommandError) {
    ctx.stderr.write(`mdevkit: ${err.message}\n`);
    return err.exitCode;
  }
  if (err instanceof ProfileError) {
    ctx.stderr.write(`mdevkit: ${err.message}\n`);
    return 1;
  }
  if (err instanceof ErrnoError) {
    const where = err.path === undefined ? '' : ` (${err.path})`;
    const detail = err.detail === undefined ? '' : `: ${err.detail}`;
    ctx.stderr.write(`mdevkit: ${strerror(err.code)}${where}${detail}\n`);
    return 1;
  }
  // node:util parseArgs reports unknown or malformed options this way.
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
    ctx.stderr.write(`mdevkit: ${(err as Error).message}\n`);
    return 2;
  }
  if (err instanceof Error && (err as { code?: unknown }).code !== undefined) {
    ctx.stderr.write(`mdevkit: ${err.message}\n`);
    return 1;
  }
  throw err;
}
