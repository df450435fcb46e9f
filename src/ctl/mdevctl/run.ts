import { ErrnoError, errnoNumber, isErrnoCode, strerror } from '../../common/errno.js';
import {
  defineDevice,
  jsonFileSource,
  listActiveDevices,
  listDefinedDevices,
  listTypes,
  modifyDevice,
  modifyLive,
  selfCheck,
  startDevice,
  startParentDevices,
  stopDevice,
  undefineDevice,
  type HostHooks,
  type JsonSource,
  type WarnSource,
} from '../../host/devices.js';
import { environmentFrom, type Environment } from '../../host/environment.js';
import { MdevError, jsonErrorLine } from '../../host/errors.js';
import { terminalSafe, type CommandIo } from '../io.js';
import { ArgError, ArgExit, parse, type ParsedArgs } from './args.js';
import { listJson, listText, typesJson, typesText } from './output.js';
import { LIST, MDEVCTL_VERSION, programSpec } from './spec.js';

/**
 * The mdevctl-compatible command line. `runMdevctl` takes what follows the
 * program name and returns the exit status: 0 success, 1 runtime error
 * ("Error: ..." and a "Caused by:" chain on stderr), 2 usage error — as
 * mdevctl 1.4.0 does. `prog` is how we were invoked: "mdevctl" (drop-in,
 * exact behaviour), "lsmdev" (list only), or "mdevkit" (also takes --root DIR).
 */

export type Prog = 'mdevctl' | 'lsmdev' | 'mdevkit';

/** The environment variable with a callout script's time limit in seconds (0: none). */
export const CALLOUT_TIMEOUT_VARIABLE = 'MDEVKIT_CALLOUT_TIMEOUT';

/** anyhow's report: the message, then each cause. */
export function formatError(err: unknown): string {
  const chain: string[] = [];
  let cur: unknown = err;
  while (cur !== undefined && cur !== null && chain.length < 8) {
    chain.push(describe(cur));
    cur = (cur as { cause?: unknown }).cause;
  }
  let out = `Error: ${chain[0]}\n`;
  const causes = chain.slice(1);
  if (causes.length === 1) out += `\nCaused by:\n    ${causes[0]}\n`;
  else if (causes.length > 1)
    out += `\nCaused by:\n${causes.map((c, i) => `    ${i}: ${c}`).join('\n')}\n`;
  return out;
}

function describe(err: unknown): string {
  if (err instanceof ErrnoError) return `${strerror(err.code)} (os error ${errnoNumber(err.code)})`;
  const code = (err as { code?: unknown } | null)?.code;
  if (isErrnoCode(code) && (err as { syscall?: unknown }).syscall !== undefined) {
    return `${strerror(code)} (os error ${errnoNumber(code)})`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** The module mdevctl logs a warning from, as env_logger names it. */
const WARN_MODULE: Record<WarnSource, string> = {
  listing: 'mdevctl::environment',
  callouts: 'mdevctl::callouts',
  device: 'mdevctl::mdev',
  command: 'mdevctl',
};

/** An env_logger line: `[2025-01-02T03:04:05Z WARN  mdevctl::callouts] message`. */
function warnLine(message: string, source: WarnSource = 'command'): string {
  const time = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  return `[${time} WARN  ${WARN_MODULE[source]}] ${message}\n`;
}

const LEVELS = ['off', 'error', 'warn', 'info', 'debug', 'trace'];

/**
 * Whether mdevctl would log a warning of `module`, as env_logger reads
 * MDEVCTL_LOG (default "warn"): comma-separated directives, `level`,
 * `module=level` or `module` (everything of it); the longest module that
 * prefixes the warning's decides, a bare level otherwise, none at all means
 * off; a spec with no valid directive means errors only.
 */
export function warnEnabled(spec: string | undefined, module: string): boolean {
  const directives: { name: string | undefined; level: number }[] = [];
  for (const part of (spec ?? 'warn').split('/')[0]!.split(',')) {
    const d = part.trim();
    if (d === '') continue;
    const eq = d.indexOf('=');
    const [name, level] = eq < 0 ? [d, undefined] : [d.slice(0, eq), d.slice(eq + 1)];
    if (level === undefined) {
      const asLevel = LEVELS.indexOf(name.toLowerCase());
      if (asLevel >= 0) directives.push({ name: undefined, level: asLevel });
      else directives.push({ name, level: LEVELS.length - 1 });
    } else {
      const n = LEVELS.indexOf(level.toLowerCase());
      if (n >= 0) directives.push({ name, level: n });
    }
  }
  if (directives.length === 0) directives.push({ name: undefined, level: 1 });
  let best: { name: string | undefined; level: number } | undefined;
  for (const d of directives) {
    if (d.name !== undefined && !module.startsWith(d.name)) continue;
    // a later directive of the same length wins, as env_logger sorts them stably
    if (best === undefined || (d.name?.length ?? -1) >= (best.name?.length ?? -1)) best = d;
  }
  return best !== undefined && best.level >= 2;
}

function jsonSource(io: CommandIo, path: string): JsonSource {
  return jsonFileSource(path, io.cwd, (maxBytes) => io.readStdin(maxBytes));
}

/** Take mdevkit's --root DIR out of the arguments (before any "--"). */
function extractRoot(args: string[]): { args: string[]; root?: string } {
  const out: string[] = [];
  let root: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      out.push(...args.slice(i));
      break;
    }
    if (a === '--root' && i + 1 < args.length) {
      root = args[++i];
    } else if (a.startsWith('--root=')) {
      root = a.slice(7);
    } else out.push(a);
  }
  return root === undefined ? { args: out } : { args: out, root };
}

/** Columns clap wraps help at: the terminal's, else $COLUMNS, else 100. */
function helpWidth(io: CommandIo): number {
  const tty = (io.stdout as { columns?: unknown }).columns;
  if (typeof tty === 'number' && tty > 0) return tty;
  const cols = Number(io.env['COLUMNS']);
  return Number.isInteger(cols) && cols > 0 ? cols : 100;
}

/** MDEVKIT_CALLOUT_TIMEOUT in seconds (fractions allowed, 0: no limit), as ms. */
function calloutTimeout(io: CommandIo): number | undefined {
  const raw = io.env[CALLOUT_TIMEOUT_VARIABLE];
  if (raw === undefined || raw === '') return undefined;
  const s = Number(raw);
  return Number.isFinite(s) && s >= 0 ? Math.round(s * 1000) : undefined;
}

/** What the command did wrong (not a bug of ours): "Error: ..." and exit 1. */
function isOperationError(err: unknown): err is Error {
  // TypeError, RangeError and ReferenceError are mdevkit's bugs: keep the stack.
  return (
    err instanceof Error &&
    !(err instanceof TypeError) &&
    !(err instanceof RangeError) &&
    !(err instanceof ReferenceError)
  );
}

/**
 * `environment`, when given, replaces the one found from --root or
 * MDEVCTL_ENV_ROOT (tests run the CLI on an in-process lab's port this way).
 */
export function runMdevctl(
  io: CommandIo,
  argv: readonly string[],
  prog: Prog = 'mdevctl',
  environment?: Environment,
): number {
  let args = [...argv];
  let root: string | undefined;
  if (prog === 'mdevkit') ({ args, root } = extractRoot(args));
  // `mdevkit lsmdev` is list; mdevctl itself knows lsmdev only as its program name.
  if (prog === 'mdevkit' && args[0] === 'lsmdev') args[0] = 'list';
  const env = environment ?? environmentFrom(io.env, root);
  const fail = (err: unknown): number => {
    if (!isOperationError(err)) throw err;
    io.stderr.write(jsonErrorLine(io.env, err) ?? terminalSafe(formatError(err)));
    return 1;
  };
  // mdevctl checks its directories before it reads its command line.
  try {
    selfCheck(env);
  } catch (err) {
    return fail(err);
  }
  const version = `${MDEVCTL_VERSION}${prog === 'mdevkit' ? ' (mdevkit)' : ''}`;
  const program = programSpec(prog, version);
  let command: string;
  let opts: ParsedArgs;
  try {
    const parsed = parse(program, args, {
      width: helpWidth(io),
      ...(prog === 'lsmdev' ? { single: LIST } : {}),
    });
    command = parsed.command.name;
    opts = parsed.values;
  } catch (err) {
    if (err instanceof ArgExit) {
      (err.stream === 'stdout' ? io.stdout : io.stderr).write(err.text);
      return err.status;
    }
    if (err instanceof ArgError) {
      io.stderr.write(terminalSafe(err.text));
      return 2;
    }
    throw err;
  }

  const timeout = calloutTimeout(io);
  const hooks: HostHooks = {
    warn: (m, source = 'command') => {
      if (warnEnabled(io.env['MDEVCTL_LOG'], WARN_MODULE[source])) {
        io.stderr.write(terminalSafe(warnLine(m, source)));
      }
    },
    calloutStderr: (script, text) => io.stderr.write(`${script}: ${text}`),
    force: opts['force'] === true,
    ...(timeout === undefined ? {} : { calloutTimeoutMs: timeout }),
  };
  try {
    return dispatch(io, env, command, opts, hooks);
  } catch (err) {
    return fail(err);
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function dispatch(
  io: CommandIo,
  env: Environment,
  command: string,
  o: ParsedArgs,
  hooks: HostHooks,
): number {
  const uuid = str(o['uuid']);
  const parent = str(o['parent']);
  const type = str(o['type']);
  const jsonfile = str(o['jsonfile']);
  const json = jsonfile === undefined ? undefined : jsonSource(io, jsonfile);
  switch (command) {
    case 'list': {
      const filter = { uuid, parent };
      const defined = o['defined'] === true;
      // A malformed definition is reported with its path and skipped: one
      // broken file must not hide every other definition from libvirt
      // (mdevctl aborts the whole listing; see docs/mdevctl-compat.md).
      const devices = defined
        ? listDefinedDevices(env, filter, {
            ...hooks,
            invalidDefinition: (_path, error) =>
              hooks.warn?.(
                `Skipping invalid definition: ${describe(error.cause ?? error)}`,
                'listing',
              ),
          })
        : listActiveDevices(env, filter, hooks);
      io.stdout.write(
        o['dumpjson'] === true
          ? listJson(devices, uuid !== undefined)
          : listText(devices, defined, o['verbose'] === true),
      );
      return 0;
    }
    case 'types': {
      const types = listTypes(env, parent);
      io.stdout.write(o['dumpjson'] === true ? typesJson(types) : typesText(types));
      return 0;
    }
    case 'define': {
      const dev = defineDevice(env, { uuid, parent, type, auto: o['auto'] === true, json }, hooks);
      if (dev.generatedUuid) io.stdout.write(`${dev.uuid}\n`);
      return 0;
    }
    case 'undefine':
      undefineDevice(env, uuid!, parent, hooks);
      return 0;
    case 'modify': {
      if (o['live'] === true) {
        if (type !== undefined)
          throw new MdevError('invalid-argument', "'type' cannot be changed on active mdev");
        if (o['auto'] === true)
          throw new MdevError('invalid-argument', "'auto' cannot be changed on active mdev");
        if (o['manual'] === true)
          throw new MdevError('invalid-argument', "'manual' cannot be changed on active mdev");
        modifyLive(
          env,
          { uuid: uuid!, parent, json: json!, alsoDefined: o['defined'] === true },
          hooks,
        );
        return 0;
      }
      const start = o['auto'] === true ? 'auto' : o['manual'] === true ? 'manual' : undefined;
      const addattr = str(o['addattr']);
      const value = str(o['value']);
      modifyDevice(
        env,
        {
          uuid: uuid!,
          parent,
          type,
          start,
          json,
          addAttr:
            addattr === undefined || value === undefined ? undefined : { name: addattr, value },
          delAttr: o['delattr'] === true,
          index: typeof o['index'] === 'number' ? o['index'] : undefined,
        },
        hooks,
      );
      return 0;
    }
    case 'start': {
      const dev = startDevice(env, { uuid, parent, type, json }, hooks);
      if (dev.generatedUuid) io.stdout.write(`${dev.uuid}\n`);
      return 0;
    }
    case 'stop':
      stopDevice(env, uuid!, hooks);
      return 0;
    case 'start-parent-mdevs': {
      // Each failure as it happens, every error of its chain, as mdevctl logs them.
      startParentDevices(env, str(o['PARENT'])!, hooks, (outcome) => {
        for (let cur: unknown = outcome.error; cur !== undefined && cur !== null;) {
          hooks.warn?.(describe(cur), 'command');
          cur = (cur as { cause?: unknown }).cause;
        }
      });
      return 0;
    }
    default:
      throw new Error(`unhandled command ${command}`);
  }
}
