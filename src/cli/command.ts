import * as nodePath from 'node:path';
import { parseArgs } from 'node:util';
import { ErrnoError, strerror } from '../common/errno.js';
import { terminalSafe, type CommandIo } from '../ctl/io.js';
import { environmentAt, type Environment } from '../host/environment.js';
import { jsonErrorLine } from '../host/errors.js';
import { parseUuid } from '../host/uuid-forms.js';

/**
 * mdevkit's own commands, declared: a command is its synopsis, description,
 * options and positional arguments plus a `run` function; commands nest in
 * groups (`mdevkit lab serve`). This module does the rest the same way for
 * every command: option parsing (node:util parseArgs), `-h`/`--help` from
 * the declaration, `--root DIR` / MDEVCTL_ENV_ROOT, `--json` output, and
 * failures to exit codes — 0 ok, 1 a failure said in words, 2 the user's
 * mistake (with the usage). No stack traces for either.
 *
 * The mdevctl drop-in (src/ctl/mdevctl) keeps its own clap-alike parser:
 * it must behave as mdevctl, not as mdevkit.
 */

// ---- declarations -------------------------------------------------------------

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly default?: string | boolean;
  /** What the value is, in the help: `--cache SECONDS`. */
  readonly value?: string;
  readonly help: string;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

type ValueOf<S extends OptionSpec> = S['type'] extends infer T
  ? T extends 'boolean'
    ? boolean
    : string
  : never;
type HasDefault<S extends OptionSpec> = S extends { readonly default: string | boolean }
  ? true
  : false;

/** Parsed option values: present when given or defaulted. */
export type OptionValues<O extends OptionSpecs> = {
  readonly [K in keyof O as HasDefault<O[K]> extends true ? K : never]: ValueOf<O[K]>;
} & {
  readonly [K in keyof O as HasDefault<O[K]> extends true ? never : K]?: ValueOf<O[K]>;
};

export interface PositionalSpec {
  readonly name: string;
  readonly optional?: boolean;
}

export interface Command<O extends OptionSpecs = OptionSpecs> {
  readonly kind: 'command';
  /** What follows the command's name in its usage line ("[--profile P] DIR"). */
  readonly synopsis: string;
  /** What it does, in a paragraph or two (after the usage line in --help). */
  readonly description: string;
  readonly options: O;
  /**
   * The positional arguments, checked for their count; `raw`: the
   * arguments are handed over as they are, no option parsing at all (a
   * hook whose caller decides its arguments).
   */
  readonly positionals: readonly PositionalSpec[] | 'raw';
  /** Said instead of "X takes ..." when the positional arguments do not fit. */
  readonly positionalsHint?: string;
  /** Arguments after "--" are not parsed but handed to `run` as `rest` (a command line). */
  readonly passThrough?: boolean;
  /** Takes --root DIR: the host it works on (else MDEVCTL_ENV_ROOT, else /). */
  readonly root?: boolean;
  /** Takes --json: machine-readable output. */
  readonly json?: boolean;
  /**
   * The library's expected failures for this command, in words (printed
   * as one line, exit 1); undefined for anything else.
   */
  readonly explain?: (err: unknown) => string | undefined;
  // A method, so a command with its own options is a Command<OptionSpecs> too.
  run(io: CommandIo, call: Call<O>): number | void | Promise<number | void>;
}

/** What `run` gets besides the I/O: the parsed arguments and helpers. */
export interface Call<O extends OptionSpecs> {
  /** "lab serve": the command's name below mdevkit. */
  readonly name: string;
  readonly values: OptionValues<O>;
  readonly positionals: readonly string[];
  /** Arguments after "--" (with `passThrough`). */
  readonly rest: readonly string[];
  /** --json was given. */
  readonly json: boolean;
  /** The host: --root DIR, else MDEVCTL_ENV_ROOT, else / (with `root`). */
  host(): Environment;
  /** `value` as JSON with --json, else `text()`. */
  output(value: unknown, text: () => string): void;
}

/** Subcommands under one name; `mdevkit` itself is one. */
export interface Group {
  readonly kind: 'group';
  readonly description?: string;
  readonly commands: Readonly<Record<string, Entry>>;
  /** `--version` / `-V` prints this (the top level). */
  readonly version?: string;
}

/** A command with its own parser (mdevctl's): handed its arguments as they are. */
export interface RawCommand {
  readonly kind: 'raw';
  run(io: CommandIo, args: readonly string[]): number | Promise<number>;
}

export type Runnable = Command | Group | RawCommand;

/**
 * A row of a group's table: its one-line summary for the group's help, and
 * the command, loaded on use so each pays only for its own modules at
 * start-up (esbuild puts a dynamic import in its own chunk).
 */
export interface Entry {
  readonly summary: string;
  readonly load: () => Runnable | Promise<Runnable>;
}

/** Declare a command (typed from its options). */
export function command<const O extends OptionSpecs>(spec: Omit<Command<O>, 'kind'>): Command<O> {
  return { kind: 'command', ...spec };
}

export function group(spec: Omit<Group, 'kind'>): Group {
  return { kind: 'group', ...spec };
}

// ---- failures -------------------------------------------------------------------

/** The user's mistake: "mdevkit: message", then the usage; exit 2, no stack. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(message);
  }
}

/**
 * A failure to report in words (exit 1), no stack. `cause` keeps the
 * library's coded error, for MDEVKIT_ERROR_FORMAT=json.
 */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    message: string,
    readonly exitCode = 1,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A UUID argument in any spelling mdevctl takes, canonical; a usage error otherwise. */
export function uuidArgument(text: string): string {
  const uuid = parseUuid(text);
  if (uuid === undefined) throw new UsageError(`'${text}' is not a UUID`);
  return uuid;
}

/** Resolves with the signal on SIGINT or SIGTERM: how a long-running command (a server) learns to stop. */
export function untilStopped(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve(sig);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

// ---- running --------------------------------------------------------------------

const PROGRAM = 'mdevkit';
const HELP_ARGS = new Set(['-h', '--help']);

const ROOT_OPTION: OptionSpec = {
  type: 'string',
  value: 'DIR',
  help: "the host's root (default: $MDEVCTL_ENV_ROOT, else /): a real host, a FUSE-served lab (mdevkit lab serve) or a lab snapshot; its sysfs is DIR/sys, its definitions DIR/etc/mdevctl.d",
};
const JSON_OPTION: OptionSpec = { type: 'boolean', help: 'machine-readable output (JSON)' };
const HELP_OPTION: OptionSpec = { type: 'boolean', short: 'h', help: 'show this help' };

/**
 * Run `argv` against the program's top-level group and return the exit
 * status. `overrides.host` replaces what --root would name (tests hand in
 * a lab's environment).
 */
export async function runProgram(
  top: Runnable,
  io: CommandIo,
  argv: readonly string[],
  overrides: Overrides = {},
): Promise<number> {
  try {
    return await runAt([], top, io, argv, overrides);
  } catch (err) {
    return reportError(io, err);
  }
}

/**
 * Run one runnable at a path of names below the program. Throws the
 * command's UsageError/CommandError (callers that run a command directly,
 * as tests do, see them); runProgram turns them into exit codes. Runs
 * synchronously when the command and its loading are synchronous.
 */
export function runAt(
  path: readonly string[],
  target: Runnable,
  io: CommandIo,
  argv: readonly string[],
  overrides: Overrides = {},
): number | Promise<number> {
  switch (target.kind) {
    case 'raw':
      return target.run(io, argv);
    case 'group':
      return runGroup(path, target, io, argv, overrides);
    case 'command':
      return runCommand(path, target, io, argv, overrides);
  }
}

/** `runAt` for commands known to be synchronous (tests of sysfs-only commands). */
export function runAtSync(
  path: readonly string[],
  target: Runnable,
  io: CommandIo,
  argv: readonly string[],
  overrides: Overrides = {},
): number {
  const code = runAt(path, target, io, argv, overrides);
  if (typeof code !== 'number') throw new Error(`${path.join(' ')} did not finish synchronously`);
  return code;
}

export interface Overrides {
  /** What --root would name: tests hand in a lab's environment. */
  readonly host?: () => Environment;
}

function runGroup(
  path: readonly string[],
  g: Group,
  io: CommandIo,
  argv: readonly string[],
  overrides: Overrides,
): number | Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.stdout.write(groupUsage(path, g));
    return 2;
  }
  if (HELP_ARGS.has(name) || name === 'help') {
    io.stdout.write(groupUsage(path, g));
    return 0;
  }
  if (g.version !== undefined && (name === '--version' || name === '-V')) {
    io.stdout.write(`${[PROGRAM, ...path].join(' ')} ${g.version}\n`);
    return 0;
  }
  const entry = Object.hasOwn(g.commands, name) ? g.commands[name] : undefined;
  if (entry === undefined) {
    const what = path.length === 0 ? 'command' : `${path.join(' ')} command`;
    throw new UsageError(`unknown ${what} '${name}'`, groupUsage(path, g));
  }
  const next = [...path, name];
  const loaded = entry.load();
  return loaded instanceof Promise
    ? loaded.then((t) => runAt(next, t, io, rest, overrides))
    : runAt(next, loaded, io, rest, overrides);
}

function runCommand(
  path: readonly string[],
  c: Command,
  io: CommandIo,
  argv: readonly string[],
  overrides: Overrides,
): number | Promise<number> {
  const usage = commandUsage(path, c);
  /** The command's failures as the user should see them. */
  const failure = (err: unknown): unknown => {
    if (err instanceof UsageError) return new UsageError(err.message, err.usage ?? usage);
    if (isParseArgsError(err)) return new UsageError(err.message, usage);
    const words = c.explain?.(err);
    return words === undefined ? err : new CommandError(words, 1, { cause: err });
  };
  try {
    const call = parseCall(path.join(' '), c, io, argv, overrides);
    if (call === 'help') {
      io.stdout.write(usage);
      return 0;
    }
    const code = c.run(io, call);
    if (code instanceof Promise) {
      return code.then(
        (n) => n ?? 0,
        (err: unknown) => {
          throw failure(err);
        },
      );
    }
    return code ?? 0;
  } catch (err) {
    throw failure(err);
  }
}

function parseCall(
  name: string,
  c: Command,
  io: CommandIo,
  argv: readonly string[],
  overrides: Overrides,
): Call<OptionSpecs> | 'help' {
  let own = argv;
  let rest: readonly string[] = [];
  if (c.passThrough === true) {
    const dash = argv.indexOf('--');
    if (dash >= 0) [own, rest] = [argv.slice(0, dash), argv.slice(dash + 1)];
  }
  let values: Record<string, string | boolean | undefined> = {};
  let positionals: readonly string[];
  if (c.positionals === 'raw') {
    if (own[0] !== undefined && HELP_ARGS.has(own[0])) return 'help';
    positionals = own;
  } else {
    // --help wins over any other mistake on the line (before a "--").
    const end = own.indexOf('--');
    if ((end < 0 ? own : own.slice(0, end)).some((a) => HELP_ARGS.has(a))) return 'help';
    const parsed = parseArgs({
      args: [...own],
      options: parseOptions(c),
      allowPositionals: true,
      strict: true,
    });
    values = parsed.values;
    positionals = parsed.positionals;
    checkPositionals(name, c, positionals);
  }
  const json = c.json === true && values['json'] === true;
  const root = values['root'];
  let host: Environment | undefined;
  return {
    name,
    values: values as OptionValues<OptionSpecs>,
    positionals,
    rest,
    json,
    host() {
      host ??=
        overrides.host?.() ??
        environmentAt(
          nodePath.resolve(
            io.cwd,
            typeof root === 'string' ? root : io.env['MDEVCTL_ENV_ROOT'] || '/',
          ),
        );
      return host;
    },
    output(value, text) {
      io.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : text());
    },
  };
}

/** Everything the command takes: its own options plus the ones the helper adds. */
function allOptions(c: Command): [string, OptionSpec][] {
  const all = Object.entries(c.options);
  if (c.root === true) all.push(['root', ROOT_OPTION]);
  if (c.json === true) all.push(['json', JSON_OPTION]);
  all.push(['help', HELP_OPTION]);
  return all;
}

function parseOptions(
  c: Command,
): Record<string, { type: 'string' | 'boolean'; short?: string; default?: string | boolean }> {
  const out: Record<
    string,
    { type: 'string' | 'boolean'; short?: string; default?: string | boolean }
  > = {};
  for (const [long, o] of allOptions(c)) {
    out[long] = {
      type: o.type,
      ...(o.short === undefined ? {} : { short: o.short }),
      ...(o.default === undefined ? {} : { default: o.default }),
    };
  }
  return out;
}

function checkPositionals(name: string, c: Command, given: readonly string[]): void {
  const specs = c.positionals === 'raw' ? [] : c.positionals;
  const min = specs.filter((p) => p.optional !== true).length;
  const max = specs.length;
  if (given.length >= min && given.length <= max) return;
  if (c.positionalsHint !== undefined) throw new UsageError(c.positionalsHint);
  if (max === 0) throw new UsageError(`${name} takes no arguments, not '${given[0]}'`);
  if (max === 1) {
    throw new UsageError(`${name} takes ${min === 1 ? 'one' : 'at most one'} ${specs[0]!.name}`);
  }
  throw new UsageError(`${name} takes ${positionalSynopsis(specs)}`);
}

function positionalSynopsis(specs: readonly PositionalSpec[]): string {
  return specs.map((p) => (p.optional === true ? `[${p.name}]` : p.name)).join(' ');
}

// ---- help ---------------------------------------------------------------------

const WIDTH = 80;

/** Words wrapped to `width` columns, every line after the first indented by `indent`. */
function wrap(text: string, indent: number, width = WIDTH): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && indent + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

/** The paragraphs of a description, each wrapped; a line starting with spaces is kept as it is. */
function paragraphs(text: string): string {
  return text
    .trim()
    .split(/\n\s*\n/)
    .map((p) => (/^\s/m.test(p) ? p : wrap(p, 0)))
    .join('\n\n');
}

export function commandUsage(path: readonly string[], c: Command): string {
  const extra = `${c.json === true ? ' [--json]' : ''}${c.root === true ? ' [--root DIR]' : ''}`;
  const synopsis = [PROGRAM, ...path, c.synopsis].filter((s) => s !== '').join(' ');
  const rows = allOptions(c).map(([long, o]) => {
    const flag = `${o.short === undefined ? '' : `-${o.short}, `}--${long}`;
    return [o.value === undefined ? flag : `${flag} ${o.value}`, o.help] as const;
  });
  // Help in a column after the flags; a flag too long for it gets its own line.
  const col = Math.min(24, Math.max(...rows.map(([f]) => f.length)) + 4);
  const options = rows
    .map(([flag, help]) =>
      flag.length + 4 > col
        ? `  ${flag}\n${' '.repeat(col)}${wrap(help, col)}`
        : `  ${flag.padEnd(col - 2)}${wrap(help, col)}`,
    )
    .join('\n');
  return `usage: ${synopsis}${extra}\n\n${paragraphs(c.description)}\n\nOptions:\n${options}\n`;
}

export function groupUsage(path: readonly string[], g: Group): string {
  const names = Object.keys(g.commands);
  const width = Math.max(...names.map((n) => n.length));
  const rows = Object.entries(g.commands).map(
    ([n, e]) => `  ${n.padEnd(width)}  ${wrap(e.summary, width + 4)}`,
  );
  const prefix = [PROGRAM, ...path].join(' ');
  const about = g.description === undefined ? '' : `${paragraphs(g.description)}\n\n`;
  return `usage: ${prefix} <command> [options]\n\n${about}Commands:\n${rows.join('\n')}\n\nRun '${prefix} <command> --help' for a command's options.\n`;
}

// ---- exit codes -----------------------------------------------------------------

function isParseArgsError(err: unknown): err is Error {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS');
}

/** Failures the user can act on get one line; anything else is a bug and keeps its stack. */
export function reportError(io: CommandIo, err: unknown): number {
  if (err instanceof UsageError) {
    io.stderr.write(terminalSafe(`${PROGRAM}: ${err.message}\n`));
    if (err.usage !== undefined) io.stderr.write(terminalSafe(`\n${err.usage}`));
    return 2;
  }
  // A coded failure (the host library's, or an errno) as one JSON line when asked for.
  const json = jsonErrorLine(io.env, err instanceof CommandError ? (err.cause ?? err) : err);
  if (json !== undefined) {
    io.stderr.write(json);
    return err instanceof CommandError ? err.exitCode : 1;
  }
  if (err instanceof CommandError) {
    io.stderr.write(terminalSafe(`${PROGRAM}: ${err.message}\n`));
    return err.exitCode;
  }
  // By name, not instanceof: importing the profile module would load zod on
  // every command's start-up path (mdevctl's commands must start fast).
  if (err instanceof Error && err.name === 'ProfileError') {
    io.stderr.write(terminalSafe(`${PROGRAM}: ${err.message}\n`));
    return 1;
  }
  if (err instanceof ErrnoError) {
    const where = err.path === undefined ? '' : ` (${err.path})`;
    const detail = err.detail === undefined ? '' : `: ${err.detail}`;
    io.stderr.write(terminalSafe(`${PROGRAM}: ${strerror(err.code)}${where}${detail}\n`));
    return 1;
  }
  if (isParseArgsError(err)) {
    io.stderr.write(terminalSafe(`${PROGRAM}: ${err.message}\n`));
    return 2;
  }
  // A library error with a stable code is an expected failure: its words suffice.
  if (err instanceof Error && (err as { code?: unknown }).code !== undefined) {
    io.stderr.write(terminalSafe(`${PROGRAM}: ${err.message}\n`));
    return 1;
  }
  throw err;
}
