/**
 * mdevctl's command line as clap 4 (mdevctl 1.4.0's parser) reads it,
 * written for this project: the same spellings, the same order of checks
 * and the same messages, because scripts and libvirt see them.
 *
 * What it does, in clap's order:
 * - `--opt value`, `--opt=value`, `-o value`, `-ovalue`, `-o=value`, flag
 *   clusters (`-dv`), `--` ending options; an argument that looks like an
 *   option is never taken as a value (`-u -d`: --uuid has no value);
 * - an option's value is parsed (UUID, number) when the next option is met
 *   or at the end, so `-u bad --bogus` reports --bogus and `-u bad -d` the
 *   UUID, as clap does;
 * - --help and --version act where they stand (`modify --live --help`
 *   prints help, exit 0: libvirt's capability probe);
 * - then conflicts, then required arguments and groups;
 * - every usage error exits 2 with "error: ...", a usage line built from
 *   what was given (clap's "smart usage"), and "For more information,
 *   try '--help'.".
 *
 * Commands are data (spec.ts): options, positionals, groups. As with
 * clap's derive, every command has an implicit group of all its arguments
 * named after it (it shows in some usage lines). Pure: no I/O; `parse`
 * returns values or throws ArgError / ArgExit.
 */

export interface ArgSpec {
  /** Key in the result; also the long name unless `long` says otherwise. */
  readonly id: string;
  readonly long?: string;
  readonly short?: string;
  /** Placeholder in messages and help; present means the option takes a value. */
  readonly value?: string;
  /** A positional argument (its placeholder is `id`). */
  readonly positional?: boolean;
  readonly help: string;
  /** Parse/validate the value; throw Error(message) to reject it. */
  readonly parse?: (raw: string) => unknown;
  readonly required?: boolean;
  /** Required unless one of these is present. */
  readonly requiredUnless?: readonly string[];
  readonly conflicts?: readonly string[];
  readonly requires?: readonly string[];
}

export interface GroupSpec {
  readonly id: string;
  readonly args: readonly string[];
  readonly required?: boolean;
  /** More than one member may be given (otherwise members conflict). */
  readonly multiple?: boolean;
}

export interface CommandSpec {
  readonly name: string;
  /** Id of the implicit group of all arguments (clap derive: the variant or struct name). */
  readonly groupId: string;
  readonly about?: string;
  readonly longAbout?: string;
  readonly args: readonly ArgSpec[];
  readonly groups?: readonly GroupSpec[];
  /** Has -V/--version. */
  readonly version?: boolean;
  readonly hidden?: boolean;
}

/** A program: its name, version, about text, and its commands (none: the program is one command). */
export interface ProgramSpec {
  readonly bin: string;
  readonly version: string;
  readonly about: string;
  readonly commands: readonly CommandSpec[];
  /** The about text of the built-in `help` command and of its argument. */
  readonly helpCommand: { readonly about: string; readonly arg: string };
}

/** A usage mistake: exit 2, `text` (the whole message) on stderr. */
export class ArgError extends Error {
  override readonly name = 'ArgError';
  constructor(readonly text: string) {
    super(text.replace(/^error: /, '').split('\n')[0]);
  }
}

/** Help or version was asked for (or help is all there is to say): print `text`, exit `status`. */
export class ArgExit extends Error {
  override readonly name = 'ArgExit';
  constructor(
    readonly text: string,
    readonly status: 0 | 2 = 0,
    readonly stream: 'stdout' | 'stderr' = 'stdout',
  ) {
    super('exit');
  }
}

export type ParsedArgs = Record<string, unknown>;

// ---------------------------------------------------------------- the model

type Action = 'set' | 'flag' | 'help' | 'version';

interface Arg {
  readonly id: string;
  readonly long: string | undefined;
  readonly short: string | undefined;
  readonly value: string | undefined;
  /** 1-based position of a positional argument. */
  readonly index: number | undefined;
  readonly action: Action;
  readonly help: string;
  readonly parse: ((raw: string) => unknown) | undefined;
  readonly required: boolean;
  readonly requiredUnless: readonly string[];
  readonly conflicts: readonly string[];
  readonly requires: readonly string[];
}

interface Group {
  readonly id: string;
  readonly args: readonly string[];
  readonly required: boolean;
  readonly multiple: boolean;
}

/** A command as the parser sees it: user arguments, then -h and -V; its groups. */
class Cmd {
  readonly args: Arg[] = [];
  readonly groups: Group[] = [];
  constructor(
    readonly spec: CommandSpec,
    /** "mdevctl list", "lsmdev": how usage lines name it. */
    readonly usageName: string,
    opts: {
      /** What usage lines end with: "<COMMAND>" at the top level. */
      readonly trailer?: string;
      /** Has -h/--help (the built-in help command has not). */
      readonly helpFlag?: boolean;
    } = {},
  ) {
    this.trailer = opts.trailer;
    this.helpFlag = opts.helpFlag ?? true;
    let index = 0;
    for (const a of spec.args) {
      const positional = a.positional === true;
      this.args.push({
        id: a.id,
        long: positional ? undefined : (a.long ?? a.id),
        short: a.short,
        value: positional ? a.id : a.value,
        index: positional ? ++index : undefined,
        action: a.value === undefined && !positional ? 'flag' : 'set',
        help: a.help,
        parse: a.parse,
        required: a.required === true,
        requiredUnless: a.requiredUnless ?? [],
        conflicts: a.conflicts ?? [],
        requires: a.requires ?? [],
      });
    }
    const builtin = (id: string, short: string, action: Action, help: string): Arg => ({
      id,
      long: id,
      short,
      value: undefined,
      index: undefined,
      action,
      help,
      parse: undefined,
      required: false,
      requiredUnless: [],
      conflicts: [],
      requires: [],
    });
    if (this.helpFlag) this.args.push(builtin('help', 'h', 'help', 'Print help'));
    if (spec.version === true) this.args.push(builtin('version', 'V', 'version', 'Print version'));
    // clap derive's group of the command's own arguments comes first.
    if (spec.args.length > 0) {
      this.groups.push({
        id: spec.groupId,
        args: spec.args.map((a) => a.id),
        required: false,
        multiple: true,
      });
    }
    for (const g of spec.groups ?? []) {
      this.groups.push({
        id: g.id,
        args: g.args,
        required: g.required === true,
        multiple: g.multiple === true,
      });
    }
  }

  readonly trailer: string | undefined;
  readonly helpFlag: boolean;

  /** --help shows more than -h: the command has a long about. */
  get hasLongHelp(): boolean {
    return this.spec.longAbout !== undefined;
  }

  find(id: string): Arg | undefined {
    return this.args.find((a) => a.id === id);
  }
  findGroup(id: string): Group | undefined {
    return this.groups.find((g) => g.id === id);
  }
  byLong(long: string): Arg | undefined {
    return this.args.find((a) => a.long === long);
  }
  byShort(short: string): Arg | undefined {
    return this.args.find((a) => a.short === short);
  }
  positionals(): Arg[] {
    return this.args.filter((a) => a.index !== undefined);
  }
  options(): Arg[] {
    return this.args.filter((a) => a.index === undefined);
  }
  groupsFor(id: string): Group[] {
    return this.groups.filter((g) => g.args.includes(id));
  }
  /** Members of a group, nested groups unrolled. */
  groupMembers(id: string): string[] {
    const out: string[] = [];
    const todo = [id];
    for (let g = todo.pop(); g !== undefined; g = todo.pop()) {
      for (const n of this.findGroup(g)?.args ?? []) {
        if (out.includes(n)) continue;
        if (this.find(n) !== undefined) out.push(n);
        else todo.push(n);
      }
    }
    return out;
  }
  formatGroup(id: string): string {
    const names = this.groupMembers(id)
      .map((n) => this.find(n)!)
      .map((a) => (a.index !== undefined ? a.value! : display(a)));
    return `<${names.join('|')}>`;
  }
  /** The arguments and groups that are always required, in clap's order. */
  requiredGraph(): string[] {
    const out: string[] = [];
    for (const a of this.args) if (a.required) out.push(a.id);
    for (const g of this.groups) if (g.required && !out.includes(g.id)) out.push(g.id);
    return out;
  }
  /** What `id` requires, transitively (not `id` itself). */
  requiresOf(id: string): string[] {
    const processed: string[] = [];
    const todo = [id];
    const out: string[] = [];
    for (let a = todo.pop(); a !== undefined; a = todo.pop()) {
      if (processed.includes(a)) continue;
      processed.push(a);
      for (const r of this.find(a)?.requires ?? []) {
        if ((this.find(r)?.requires.length ?? 0) > 0) todo.push(r);
        out.push(r);
      }
    }
    return out;
  }
}

/** `--uuid <UUID>`, `--auto`, `<PARENT>`: how messages name an argument. */
export function display(a: Pick<Arg, 'long' | 'short' | 'value' | 'index'>): string {
  if (a.index !== undefined) return `<${a.value}>`;
  const name = a.long !== undefined ? `--${a.long}` : `-${a.short}`;
  return a.value === undefined ? name : `${name} <${a.value}>`;
}

/** How a usage line shows an argument; an optional positional in brackets. */
function usageForm(a: Arg, required: boolean): string {
  if (a.index !== undefined) return required ? `<${a.value}>` : `[${a.value}]`;
  return display(a);
}

// ---------------------------------------------------------------- matches

/** What was given: arguments and groups in the order first met (clap's ArgMatcher). */
class Matches {
  readonly entries = new Map<string, { values: unknown[]; explicit: boolean }>();
  pending: { id: string; long: boolean; raw: string[] } | undefined;

  present(id: string): boolean {
    return this.entries.get(id)?.explicit === true;
  }
  /** Present arguments and groups, in order. */
  presentIds(): string[] {
    return [...this.entries].filter(([, e]) => e.explicit).map(([id]) => id);
  }
}

/** Build the error text: message, tips, usage, the pointer to --help. */
function errorText(
  message: string,
  usage: string | undefined,
  tips: readonly string[] = [],
  helpPointer = true,
): string {
  let out = `error: ${message}`;
  if (tips.length > 0) {
    out += '\n';
    for (const t of tips) out += `\n  tip: ${t}`;
  }
  if (usage !== undefined) out += `\n\nUsage: ${usage}`;
  return helpPointer ? `${out}\n\nFor more information, try '--help'.\n` : `${out}\n`;
}

// ---------------------------------------------------------------- usage lines

/**
 * The usage line. With nothing `used`, the help form (`[OPTIONS]` and the
 * required arguments); otherwise clap's smart form: the required ones plus
 * those used, groups shown as `<a|b|c>`.
 */
function usage(cmd: Cmd, used: readonly string[], required = cmd.requiredGraph()): string {
  const parts = [cmd.usageName];
  if (used.length === 0 && needsOptionsTag(cmd)) parts.push('[OPTIONS]');
  const unrolled: string[] = [];
  for (const r of required) unrolled.push(...cmd.requiresOf(r), r);
  const groups: string[] = [];
  const groupMembers = new Set<string>();
  for (const id of [...unrolled, ...used]) {
    if (cmd.findGroup(id) === undefined) continue;
    const g = cmd.formatGroup(id);
    if (!groups.includes(g)) groups.push(g);
    for (const m of cmd.groupMembers(id)) groupMembers.add(m);
  }
  const opts: string[] = [];
  const positionals: (string | undefined)[] = [];
  for (const id of [...unrolled, ...used]) {
    const a = cmd.find(id);
    if (a === undefined || groupMembers.has(a.id)) continue;
    const form = usageForm(a, true);
    if (a.index !== undefined) positionals[a.index] = form;
    else if (!opts.includes(form)) opts.push(form);
  }
  for (const p of cmd.positionals()) {
    if (groupMembers.has(p.id) || positionals[p.index!] !== undefined) continue;
    positionals[p.index!] = usageForm(p, false);
  }
  parts.push(...opts, ...groups, ...positionals.filter((p): p is string => p !== undefined));
  if (cmd.trailer !== undefined) parts.push(cmd.trailer);
  return parts.join(' ');
}

function needsOptionsTag(cmd: Cmd): boolean {
  for (const a of cmd.options()) {
    if (a.action === 'help' || a.action === 'version' || a.required) continue;
    if (cmd.groupsFor(a.id).some((g) => g.required)) continue;
    return true;
  }
  return false;
}

/** The missing arguments as listed in the error: required ones first, then groups, then positionals. */
function requiredUsage(
  cmd: Cmd,
  missing: readonly string[],
  m: Matches,
  required: readonly string[],
): string[] {
  const unrolled: string[] = [];
  for (const r of required) unrolled.push(...cmd.requiresOf(r), r);
  const groups: string[] = [];
  const groupMembers = new Set<string>();
  for (const id of [...unrolled, ...missing]) {
    if (cmd.findGroup(id) === undefined) continue;
    const members = cmd.groupMembers(id);
    if (members.some((x) => m.present(x))) continue;
    const g = cmd.formatGroup(id);
    if (!groups.includes(g)) groups.push(g);
    for (const x of members) groupMembers.add(x);
  }
  const opts: string[] = [];
  const positionals: (string | undefined)[] = [];
  for (const id of [...unrolled, ...missing]) {
    const a = cmd.find(id);
    if (a === undefined || groupMembers.has(a.id) || m.present(id)) continue;
    const form = usageForm(a, true);
    if (a.index !== undefined) positionals[a.index] = form;
    else if (!opts.includes(form)) opts.push(form);
  }
  return [...opts, ...groups, ...positionals.filter((p): p is string => p !== undefined)];
}

// ---------------------------------------------------------------- suggestions

/** Jaro similarity of two strings (by code point), as clap's suggestions use it. */
export function jaro(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  if (x.length === 0 && y.length === 0) return 1;
  if (x.length === 0 || y.length === 0) return 0;
  const range = Math.max(0, Math.floor(Math.max(x.length, y.length) / 2) - 1);
  const xm = new Array<boolean>(x.length).fill(false);
  const ym = new Array<boolean>(y.length).fill(false);
  let matches = 0;
  for (let i = 0; i < x.length; i++) {
    const lo = Math.max(0, i - range);
    const hi = Math.min(y.length, i + range + 1);
    for (let j = lo; j < hi; j++) {
      if (!ym[j] && x[i] === y[j]) {
        xm[i] = ym[j] = true;
        matches++;
        break;
      }
    }
  }
  if (matches === 0) return 0;
  let t = 0;
  let j = 0;
  for (let i = 0; i < x.length; i++) {
    if (!xm[i]) continue;
    while (!ym[j]) j++;
    if (x[i] !== y[j]) t++;
    j++;
  }
  t = Math.floor(t / 2);
  return (matches / x.length + matches / y.length + (matches - t) / matches) / 3;
}

/** Candidates above clap's threshold, least similar first. */
function similar(v: string, candidates: readonly string[]): string[] {
  return candidates
    .map((c) => [jaro(v, c), c] as const)
    .filter(([score]) => score > 0.7)
    .sort((p, q) => p[0] - q[0])
    .map(([, c]) => c);
}

// ---------------------------------------------------------------- parsing

const isLong = (s: string): boolean => s.startsWith('--') && s.length > 2;
const isShort = (s: string): boolean => s.startsWith('-') && !s.startsWith('--') && s.length > 1;

interface Parser {
  readonly cmd: Cmd;
  readonly m: Matches;
  help(long: boolean): string;
  readonly versionText: string | undefined;
}

/** Commit an argument occurrence: duplicate check, then its values and groups. */
function react(p: Parser, a: Arg, raw: string[], long: boolean): void {
  resolvePending(p);
  const { cmd, m } = p;
  if (a.action === 'help') throw new ArgExit(p.help(long));
  if (a.action === 'version') throw new ArgExit(p.versionText!);
  if (a.action === 'set' && raw.length === 0) {
    throw new ArgError(
      errorText(`a value is required for '${display(a)}' but none was supplied`, undefined),
    );
  }
  if (m.entries.has(a.id)) {
    m.entries.delete(a.id);
    throw new ArgError(
      errorText(`the argument '${display(a)}' cannot be used multiple times`, usage(cmd, [])),
    );
  }
  const entry = { values: [] as unknown[], explicit: true };
  m.entries.set(a.id, entry);
  for (const g of cmd.groupsFor(a.id)) {
    if (!m.entries.has(g.id)) m.entries.set(g.id, { values: [], explicit: true });
  }
  if (a.action === 'flag') {
    entry.values.push(true);
    return;
  }
  for (const v of raw) {
    try {
      entry.values.push(a.parse === undefined ? v : a.parse(v));
    } catch (err) {
      throw new ArgError(
        errorText(`invalid value '${v}' for '${display(a)}': ${(err as Error).message}`, undefined),
      );
    }
  }
}

function resolvePending(p: Parser): void {
  const pending = p.m.pending;
  if (pending === undefined) return;
  p.m.pending = undefined;
  react(p, p.cmd.find(pending.id)!, pending.raw, pending.long);
}

/** Resolve what is pending for an error path: its own error does not count (clap ignores it). */
function settlePending(p: Parser): void {
  try {
    resolvePending(p);
  } catch (err) {
    if (!(err instanceof ArgError)) throw err;
  }
}

/** An option with a value: attached (`--o=v`, `-ov`) now, else the next argument. */
function optionValue(p: Parser, a: Arg, attached: string | undefined, long: boolean): boolean {
  if (attached !== undefined) {
    react(p, a, [attached], long);
    return false;
  }
  resolvePending(p);
  p.m.pending = { id: a.id, long, raw: [] };
  return true; // expecting a value
}

/** Mark `a` (and its groups) as given without values: how clap builds some usage lines. */
function markGiven(p: Parser, a: Arg): void {
  const { m, cmd } = p;
  if (!m.entries.has(a.id)) m.entries.set(a.id, { values: [], explicit: true });
  for (const g of cmd.groupsFor(a.id)) {
    if (!m.entries.has(g.id)) m.entries.set(g.id, { values: [], explicit: true });
  }
}

function unknownArgument(p: Parser, arg: string, tips: string[], used: string[]): ArgError {
  return new ArgError(
    errorText(`unexpected argument '${arg}' found`, usage(p.cmd, used), tips, p.cmd.helpFlag),
  );
}

/**
 * An unknown `--name`: the most similar long option of this command as a
 * tip, else one of a subcommand named later on the line.
 */
function unknownLong(
  p: Parser,
  name: string,
  trailing: boolean,
  remaining: readonly string[],
  subcommands: readonly Cmd[],
): ArgError {
  settlePending(p);
  const longsOf = (c: Cmd): string[] =>
    c.args.filter((a) => a.long !== undefined).map((a) => a.long!);
  const tips: string[] = [];
  const best = similar(name, longsOf(p.cmd)).pop();
  let fromSub: { flag: string; sub: string } | undefined;
  if (best === undefined) {
    let bestAt = Infinity;
    for (const sc of subcommands) {
      const c = similar(name, longsOf(sc)).pop();
      const at = remaining.indexOf(sc.spec.name);
      if (c !== undefined && at >= 0 && at < bestAt) {
        bestAt = at;
        fromSub = { flag: c, sub: sc.spec.name };
      }
    }
  }
  if (best !== undefined) {
    // The similar option counts as given, for the usage line.
    markGiven(p, p.cmd.byLong(best)!);
    tips.push(`a similar argument exists: '--${best}'`);
  }
  if (best === undefined && fromSub === undefined && !trailing && p.cmd.positionals().length > 0) {
    tips.push(`to pass '--${name}' as a value, use '-- --${name}'`);
  }
  if (fromSub !== undefined) tips.push(`'${fromSub.sub} --${fromSub.flag}' exists`);
  return unknownArgument(p, `--${name}`, tips, p.m.presentIds());
}

/**
 * Parse one command's arguments. `subcommands` is for the top level: the
 * first word naming one of them ends this level (returned as `next`).
 */
function parseLevel(
  p: Parser,
  argv: readonly string[],
  subcommands: readonly Cmd[],
  helpSubcommand?: (rest: readonly string[]) => never,
): { cmd: Cmd; rest: readonly string[] } | undefined {
  const { cmd, m } = p;
  let trailing = false;
  let expectingValue = false;
  let pos = 1;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!trailing) {
      if (!expectingValue) {
        if (arg === 'help' && helpSubcommand !== undefined) helpSubcommand(argv.slice(i + 1));
        const sc = subcommands.find((s) => s.spec.name === arg);
        if (sc !== undefined) {
          resolvePending(p);
          return { cmd: sc, rest: argv.slice(i + 1) };
        }
      }
      if (arg === '--') {
        trailing = true;
        continue;
      }
      if (isLong(arg)) {
        expectingValue = false;
        const eq = arg.indexOf('=');
        const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
        const attached = eq < 0 ? undefined : arg.slice(eq + 1);
        const a = cmd.byLong(name);
        if (a === undefined) throw unknownLong(p, name, trailing, argv.slice(i + 1), subcommands);
        if (a.action === 'set') expectingValue = optionValue(p, a, attached, true);
        else if (attached !== undefined) {
          // What was given so far (pending values not yet), less the always-required.
          const required = cmd.requiredGraph();
          const used = m
            .presentIds()
            .filter((id) => cmd.find(id) === undefined || !required.includes(id))
            .concat(a.id);
          settlePending(p);
          throw new ArgError(
            errorText(
              `unexpected value '${attached}' for '${display(a)}' found; no more were expected`,
              usage(cmd, used),
              [],
              cmd.helpFlag,
            ),
          );
        } else react(p, a, [], true);
        continue;
      }
      if (isShort(arg)) {
        expectingValue = false;
        for (let j = 1; j < arg.length; j++) {
          const c = arg[j]!;
          const a = cmd.byShort(c);
          if (a === undefined) {
            settlePending(p);
            const tips =
              !trailing && cmd.positionals().length > 0
                ? [`to pass '-${c}' as a value, use '-- -${c}'`]
                : [];
            throw unknownArgument(p, `-${c}`, tips, []);
          }
          if (a.action !== 'set') {
            react(p, a, [], false);
            continue;
          }
          let rest = arg.slice(j + 1);
          const eq = rest.startsWith('=');
          if (eq) rest = rest.slice(1);
          expectingValue = optionValue(p, a, rest === '' && !eq ? undefined : rest, false);
          break;
        }
        continue;
      }
      if (expectingValue && m.pending !== undefined) {
        m.pending.raw.push(arg);
        expectingValue = false;
        continue;
      }
    }
    const positional = cmd.positionals().find((a) => a.index === pos);
    if (positional !== undefined) {
      resolvePending(p);
      m.pending = { id: positional.id, long: false, raw: [arg] };
      pos++;
      continue;
    }
    settlePending(p);
    if (subcommands.length > 0) {
      if (trailing && subcommands.some((s) => s.spec.name === arg)) {
        throw unknownArgument(
          p,
          arg,
          [`subcommand '${arg}' exists; to use it, remove the '--' before it`],
          [],
        );
      }
      const candidates = similar(arg, subcommands.map((s) => s.spec.name).concat('help'));
      const tips =
        candidates.length === 0
          ? []
          : candidates.length === 1
            ? [`a similar subcommand exists: '${candidates[0]}'`]
            : [`some similar subcommands exist: ${candidates.map((c) => `'${c}'`).join(', ')}`];
      throw new ArgError(
        errorText(`unrecognized subcommand '${arg}'`, usage(cmd, []), tips, cmd.helpFlag),
      );
    }
    throw unknownArgument(p, arg, [], []);
  }
  resolvePending(p);
  return undefined;
}

/** Conflicts between what was given, then what is missing: clap's validator. */
function validate(p: Parser): void {
  const { cmd, m } = p;
  const present = m.presentIds();
  const directConflicts = (id: string): string[] => {
    const a = cmd.find(id);
    if (a === undefined) return [];
    const out = [...a.conflicts];
    for (const g of cmd.groupsFor(id)) {
      if (!g.multiple) out.push(...g.args.filter((x) => x !== id));
    }
    return out;
  };
  /** What present arguments conflict with `id` (either side declaring it). */
  const conflictsWith = (id: string): string[] => {
    const mine = directConflicts(id);
    const out: string[] = [];
    for (const other of present) {
      if (other === id) continue;
      if (mine.includes(other)) out.push(other);
      if (directConflicts(other).includes(id)) out.push(other);
    }
    return out;
  };
  for (const id of present) {
    const a = cmd.find(id);
    if (a === undefined) continue;
    const conflicts = conflictsWith(id);
    if (conflicts.length === 0) continue;
    const names: string[] = [];
    for (const c of conflicts.flatMap((x) => (cmd.findGroup(x) ? cmd.groupMembers(x) : [x]))) {
      const shown = display(cmd.find(c)!);
      if (!names.includes(shown)) names.push(shown);
    }
    const usedFiltered = present.filter((x) => cmd.find(x) !== undefined && !conflicts.includes(x));
    const needed = usedFiltered
      .flatMap((x) => cmd.find(x)!.requires)
      .filter((x) => !usedFiltered.includes(x) && !conflicts.includes(x));
    const others =
      names.length === 1 ? ` '${names[0]}'` : `:${names.map((n) => `\n  ${n}`).join('')}`;
    throw new ArgError(
      errorText(
        `the argument '${display(a)}' cannot be used with${others}`,
        usage(cmd, [...needed, ...usedFiltered]),
        [],
        cmd.helpFlag,
      ),
    );
  }

  const required = cmd.requiredGraph();
  for (const id of present) {
    for (const r of cmd.requiresOf(id)) if (!required.includes(r)) required.push(r);
  }
  const missing: string[] = [];
  for (const id of required) {
    if (m.present(id)) continue;
    if (cmd.find(id) !== undefined) {
      const excused =
        conflictsWith(id).length > 0 ||
        cmd.groupsFor(id).some((g) => conflictsWith(g.id).length > 0);
      if (!excused) missing.push(id);
    } else if (!cmd.groupMembers(id).some((x) => m.present(x))) missing.push(id);
  }
  for (const a of cmd.args) {
    if (m.present(a.id) || a.requiredUnless.length === 0) continue;
    if (!a.requiredUnless.some((x) => m.present(x))) missing.push(a.id);
  }
  if (missing.length === 0) return;
  const listed = requiredUsage(cmd, missing, m, required);
  const used = present.filter((x) => cmd.find(x) !== undefined).concat(missing);
  throw new ArgError(
    errorText(
      `the following required arguments were not provided:${listed.map((l) => `\n  ${l}`).join('')}`,
      usage(cmd, used, required),
      [],
      cmd.helpFlag,
    ),
  );
}

function valuesOf(cmd: Cmd, m: Matches): ParsedArgs {
  const out: ParsedArgs = {};
  for (const a of cmd.args) {
    const e = m.entries.get(a.id);
    if (e !== undefined && e.explicit && e.values.length > 0) out[a.id] = e.values[0];
  }
  return out;
}

// ---------------------------------------------------------------- the program

export interface Parsed {
  readonly command: CommandSpec;
  readonly values: ParsedArgs;
}

export interface ParseOptions {
  /** Columns help text is wrapped at (clap: the terminal's, else $COLUMNS, else 100). */
  readonly width?: number;
  /** The program is this one command (lsmdev): argv holds its arguments. */
  readonly single?: CommandSpec;
}

/**
 * Parse a command line of `program` (argv without the program name).
 * Returns the command and its values; throws ArgExit for help and
 * version (and for help when nothing was given), ArgError for mistakes.
 */
export function parse(
  program: ProgramSpec,
  argv: readonly string[],
  opts: ParseOptions = {},
): Parsed {
  const width = opts.width ?? 100;
  const level = (cmd: Cmd, version: string): Parser => ({
    cmd,
    m: new Matches(),
    help: (long) => commandHelp(program, cmd, long, width),
    versionText: `${version} ${program.version}\n`,
  });
  if (opts.single !== undefined) {
    const cmd = new Cmd(opts.single, program.bin);
    const p = level(cmd, program.bin);
    parseLevel(p, argv, []);
    validate(p);
    return { command: opts.single, values: valuesOf(cmd, p.m) };
  }
  const top = topCmd(program);
  const subs = program.commands.map((c) => new Cmd(c, `${program.bin} ${c.name}`));
  const p: Parser = { ...level(top, program.bin), help: () => topHelp(program, width) };
  const helpSubcommand = (rest: readonly string[]): never => {
    if (rest.length === 0) throw new ArgExit(topHelp(program, width));
    let cmd: Cmd | undefined;
    for (const word of rest) {
      const next =
        cmd !== undefined
          ? undefined
          : word === 'help'
            ? helpCmd(program)
            : subs.find((s) => s.spec.name === word);
      if (next === undefined) {
        const c = cmd ?? top;
        throw new ArgError(
          errorText(`unrecognized subcommand '${word}'`, usage(c, []), [], c.helpFlag),
        );
      }
      cmd = next;
    }
    throw new ArgExit(commandHelp(program, cmd!, true, width));
  };
  const next = parseLevel(p, argv, subs, helpSubcommand);
  if (next === undefined) {
    // Nothing at all: the help, as an error. Options only: a subcommand is missing.
    if (p.m.presentIds().length === 0) throw new ArgExit(topHelp(program, width), 2, 'stderr');
    const names = program.commands.map((c) => c.name).concat('help');
    throw new ArgError(
      errorText(
        `'${program.bin}' requires a subcommand but one was not provided\n  [subcommands: ${names.join(', ')}]`,
        usage(top, []),
      ),
    );
  }
  const sub = level(next.cmd, `${program.bin}-${next.cmd.spec.name}`);
  parseLevel(sub, next.rest, []);
  validate(sub);
  return { command: next.cmd.spec, values: valuesOf(next.cmd, sub.m) };
}

function topCmd(program: ProgramSpec): Cmd {
  return new Cmd(
    { name: program.bin, groupId: program.bin, args: [], version: true, about: program.about },
    program.bin,
    { trailer: '<COMMAND>' },
  );
}

function helpCmd(program: ProgramSpec): Cmd {
  return new Cmd(
    { name: 'help', groupId: 'help', about: program.helpCommand.about, args: [] },
    `${program.bin} help`,
    { trailer: '[COMMAND]...', helpFlag: false },
  );
}

// ---------------------------------------------------------------- help

/** Wrap `text` at `width` columns, breaking at spaces; continuation lines get `indent`. */
export function wrap(text: string, width: number, indent = ''): string {
  return text
    .split('\n')
    .map((line) => {
      const out: string[] = [];
      let cur = '';
      for (const w of line.split(' ')) {
        if (cur !== '' && cur.length + 1 + w.length > width) {
          out.push(cur);
          cur = w;
        } else cur = cur === '' ? w : `${cur} ${w}`;
      }
      out.push(cur);
      return out.join(`\n${indent}`);
    })
    .join(`\n${indent}`);
}

/** "-u, --uuid <UUID>", "    --dumpjson", "<PARENT>": an argument's column in help. */
function helpLabel(a: Arg): string {
  if (a.index !== undefined) return display(a);
  const short = a.short !== undefined ? `-${a.short}` : '    ';
  const long = a.long !== undefined ? `${a.short !== undefined ? ', ' : ''}--${a.long}` : '';
  return `${short}${long}${a.value !== undefined ? ` <${a.value}>` : ''}`;
}

function helpFlagText(cmd: Cmd, long: boolean): string {
  if (!cmd.hasLongHelp) return 'Print help';
  return long ? "Print help (see a summary with '-h')" : "Print help (see more with '--help')";
}

/**
 * One section of arguments in clap's layout: short help aligns the texts
 * in a column; long help puts each text on its own lines, indented by 10,
 * with a blank line between arguments.
 */
function argSection(
  heading: string,
  args: readonly Arg[],
  cmd: Cmd,
  long: boolean,
  width: number,
): string {
  const text = (a: Arg): string => (a.action === 'help' ? helpFlagText(cmd, long) : a.help);
  const rows = args.map((a) => {
    const label = helpLabel(a);
    if (long) {
      const t = text(a);
      return t === ''
        ? `  ${label}`
        : `  ${label}\n          ${wrap(t, width - 10, ' '.repeat(10))}`;
    }
    // Options leave room for "-x, " before the long name; positionals do not.
    const column =
      Math.max(2, ...args.map((x) => display(x).length)) + (a.index === undefined ? 4 : 0);
    const pad = ' '.repeat(column - label.length + 2);
    return `  ${label}${pad}${wrap(text(a), Math.max(1, width - column - 4), ' '.repeat(column + 4))}`;
  });
  return `${heading}:\n${rows.join(long ? '\n\n' : '\n')}\n`;
}

function commandHelp(program: ProgramSpec, cmd: Cmd, wantLong: boolean, width: number): string {
  // Long help only where there is more to say (clap's use_long_help).
  const long = wantLong && cmd.hasLongHelp;
  const about = long ? (cmd.spec.longAbout ?? cmd.spec.about) : cmd.spec.about;
  let out = about !== undefined ? `${wrap(about, width)}\n\n` : '';
  out += `Usage: ${usage(cmd, [])}\n`;
  if (cmd.spec.name === 'help' && !cmd.helpFlag) {
    return `${out}\nArguments:\n  [COMMAND]...  ${program.helpCommand.arg}\n`;
  }
  const positionals = cmd.positionals();
  if (positionals.length > 0) out += `\n${argSection('Arguments', positionals, cmd, long, width)}`;
  out += `\n${argSection('Options', cmd.options(), cmd, long, width)}`;
  return out;
}

function topHelp(program: ProgramSpec, width: number): string {
  const top = topCmd(program);
  const rows = program.commands
    .filter((c) => c.hidden !== true)
    .map((c) => [c.name, c.about ?? ''] as const)
    .concat([['help', program.helpCommand.about]]);
  const col = Math.max(...rows.map(([n]) => n.length));
  return (
    `${wrap(program.about, width)}\n\nUsage: ${usage(top, [])}\n\nCommands:\n` +
    `${rows.map(([n, a]) => `  ${n.padEnd(col)}  ${a}`).join('\n')}\n\n` +
    argSection('Options', top.options(), top, false, width)
  );
}
