/**
 * A small command-line parser that behaves as mdevctl's (clap 3) does where
 * scripts and libvirt can observe it: `--opt value` and `--opt=value`,
 * `-o value`, `-ovalue` and `-o=value`, combined short flags (`-dv`), `--`
 * ending options, a value that looks like an option counting as missing,
 * a repeated option being an error, conflicts and requirements between
 * options, and every mistake exiting with status 2 and an "error: ..." text
 * on stderr. Pure: no I/O; `parse` returns values or throws ArgError.
 */

export interface OptionSpec {
  /** Key in the result and the long name (`--jsonfile`). */
  readonly long: string;
  readonly short?: string;
  /** Placeholder in messages and help; present means the option takes a value. */
  readonly value?: string;
  readonly help: string;
  /** Parse/validate the value; throw Error(message) to reject it. */
  readonly parse?: (raw: string) => unknown;
  readonly conflicts?: readonly string[];
  readonly requires?: readonly string[];
  /** Required unless one of these is present ([] = always required). */
  readonly requiredUnless?: readonly string[];
  readonly hidden?: boolean;
}

export interface PositionalSpec {
  readonly name: string;
  readonly help: string;
  readonly required: boolean;
}

export interface CommandSpec {
  readonly name: string;
  readonly about: string;
  readonly longAbout?: string;
  readonly options: readonly OptionSpec[];
  readonly positionals?: readonly PositionalSpec[];
  /** Has -V/--version. */
  readonly version?: boolean;
  readonly hidden?: boolean;
}

/** A usage mistake: exit 2, `message` after "error: ", then `usage` when given. */
export class ArgError extends Error {
  override readonly name = 'ArgError';
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(message);
  }
}

/** --help or --version was asked for: print `text` to stdout, exit 0. */
export class ArgExit extends Error {
  override readonly name = 'ArgExit';
  constructor(readonly text: string) {
    super('exit');
  }
}

export type ParsedArgs = Record<string, unknown>;

export function display(o: OptionSpec): string {
  return o.value === undefined ? `--${o.long}` : `--${o.long} <${o.value}>`;
}

function usageLine(prog: string, cmd: CommandSpec, present: readonly OptionSpec[] = []): string {
  // lsmdev is `mdevctl list` under its own name.
  const parts = [prog === 'lsmdev' ? prog : `${prog} ${cmd.name}`];
  const required = cmd.options.filter((o) => o.requiredUnless !== undefined);
  const shown = new Set<OptionSpec>();
  for (const o of [...required, ...present]) {
    if (shown.has(o)) continue;
    shown.add(o);
    parts.push(display(o));
  }
  if (shown.size < cmd.options.length) parts.splice(1, 0, '[OPTIONS]');
  for (const p of cmd.positionals ?? []) parts.push(p.required ? `<${p.name}>` : `[${p.name}]`);
  return `USAGE:\n    ${parts.join(' ')}\n`;
}

export function parse(
  prog: string,
  cmd: CommandSpec,
  argv: readonly string[],
  helpText: () => string,
  versionText: string,
): ParsedArgs {
  const out: ParsedArgs = {};
  const seen: OptionSpec[] = [];
  const positionals: string[] = [];
  const byLong = new Map(cmd.options.map((o) => [o.long, o]));
  const byShort = new Map(
    cmd.options.filter((o) => o.short !== undefined).map((o) => [o.short!, o]),
  );
  const usage = (): string => usageLine(prog, cmd, seen);

  const store = (o: OptionSpec, raw: string | undefined): void => {
    if (seen.includes(o)) {
      throw new ArgError(
        `The argument '${display(o)}' was provided more than once, but cannot be used multiple times`,
        usage(),
      );
    }
    seen.push(o);
    if (o.value === undefined) {
      out[o.long] = true;
      return;
    }
    if (raw === undefined) {
      throw new ArgError(`The argument '${display(o)}' requires a value but none was supplied`);
    }
    try {
      out[o.long] = o.parse === undefined ? raw : o.parse(raw);
    } catch (err) {
      throw new ArgError(`Invalid value "${raw}" for '${display(o)}': ${(err as Error).message}`);
    }
  };
  const looksLikeOption = (s: string | undefined): boolean =>
    s !== undefined && s.length > 1 && s.startsWith('-');

  let onlyPositionals = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (onlyPositionals || arg === '-' || !arg.startsWith('-')) {
      positionals.push(arg);
      continue;
    }
    if (arg === '--') {
      onlyPositionals = true;
      continue;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      if (name === 'help') throw new ArgExit(helpText());
      if (name === 'version' && cmd.version === true) throw new ArgExit(versionText);
      const o = byLong.get(name);
      if (o === undefined) {
        throw new ArgError(
          `Found argument '--${name}' which wasn't expected, or isn't valid in this context\n\n\tIf you tried to supply \`--${name}\` as a value rather than a flag, use \`-- --${name}\``,
          usage(),
        );
      }
      if (o.value === undefined) {
        if (eq >= 0) throw new ArgError(`The argument '${display(o)}' takes no value`, usage());
        store(o, undefined);
      } else if (eq >= 0) {
        store(o, arg.slice(eq + 1));
      } else {
        const next = argv[i + 1];
        if (next === undefined || looksLikeOption(next)) store(o, undefined);
        else {
          store(o, next);
          i++;
        }
      }
      continue;
    }
    // A cluster of short options: -dv, -u VALUE, -uVALUE, -u=VALUE.
    for (let j = 1; j < arg.length; j++) {
      const ch = arg[j]!;
      if (ch === 'h') throw new ArgExit(helpText());
      if (ch === 'V' && cmd.version === true) throw new ArgExit(versionText);
      const o = byShort.get(ch);
      if (o === undefined) {
        throw new ArgError(
          `Found argument '-${ch}' which wasn't expected, or isn't valid in this context\n\n\tIf you tried to supply \`-${ch}\` as a value rather than a flag, use \`-- -${ch}\``,
          usage(),
        );
      }
      if (o.value === undefined) {
        store(o, undefined);
        continue;
      }
      let rest = arg.slice(j + 1);
      if (rest.startsWith('=')) rest = rest.slice(1);
      if (rest !== '' || arg[j + 1] === '=') store(o, rest);
      else {
        const next = argv[i + 1];
        if (next === undefined || looksLikeOption(next)) store(o, undefined);
        else {
          store(o, next);
          i++;
        }
      }
      break;
    }
  }

  const specs = cmd.positionals ?? [];
  if (positionals.length > specs.length) {
    throw new ArgError(
      `Found argument '${positionals[specs.length]}' which wasn't expected, or isn't valid in this context`,
      usage(),
    );
  }
  specs.forEach((p, k) => {
    if (positionals[k] !== undefined) out[p.name] = positionals[k];
  });

  // Conflicts (either direction), then requirements, as clap checks them.
  for (const o of seen) {
    for (const other of seen) {
      if (o === other) continue;
      if (o.conflicts?.includes(other.long) || other.conflicts?.includes(o.long)) {
        const [a, b] = seen.indexOf(o) < seen.indexOf(other) ? [o, other] : [other, o];
        throw new ArgError(
          `The argument '${display(a)}' cannot be used with '${display(b)}'`,
          usageLine(prog, cmd, [a]),
        );
      }
    }
  }
  const missing: string[] = [];
  for (const o of cmd.options) {
    if (o.requiredUnless === undefined || seen.includes(o)) continue;
    if (o.requiredUnless.some((n) => out[n] !== undefined)) continue;
    missing.push(display(o));
  }
  for (const o of seen) {
    for (const r of o.requires ?? []) {
      const req = byLong.get(r)!;
      if (!seen.includes(req) && !missing.includes(display(req))) missing.push(display(req));
    }
  }
  for (const p of specs) if (p.required && out[p.name] === undefined) missing.push(`<${p.name}>`);
  if (missing.length > 0) {
    throw new ArgError(
      `The following required arguments were not provided:\n${missing.map((m) => `    ${m}`).join('\n')}`,
      usage(),
    );
  }
  return out;
}

/** clap-style help for one command. */
export function commandHelp(prog: string, cmd: CommandSpec, version: string): string {
  const opts = cmd.options.filter((o) => o.hidden !== true);
  const rows: [string, string][] = [];
  const all: { short?: string; label: string; help: string }[] = [
    ...opts.map((o) => ({
      ...(o.short === undefined ? {} : { short: o.short }),
      label: display(o),
      help: o.help,
    })),
    { short: 'h', label: '--help', help: 'Print help information' },
  ];
  if (cmd.version === true)
    all.push({ short: 'V', label: '--version', help: 'Print version information' });
  all.sort((a, b) => a.label.slice(2).localeCompare(b.label.slice(2)));
  for (const o of all)
    rows.push([`${o.short === undefined ? '   ' : `-${o.short},`} ${o.label}`, o.help]);
  const width = Math.max(...rows.map(([l]) => l.length));
  const title = prog === 'lsmdev' ? prog : `${prog}-${cmd.name}`;
  let text = `${title} ${version}\n${cmd.longAbout ?? cmd.about}\n\n${usageLine(prog, cmd)}`;
  for (const p of cmd.positionals ?? []) {
    text += `\nARGS:\n    <${p.name}>    ${p.help}\n`;
  }
  text += `\nOPTIONS:\n${rows.map(([l, h]) => `    ${l.padEnd(width)}    ${h}`).join('\n')}\n`;
  return text;
}
