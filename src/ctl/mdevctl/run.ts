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
} from '../../host/devices.js';
import { withScriptListings } from '../../host/callouts.js';
import { environmentFrom, type Environment } from '../../host/environment.js';
import { MdevError, jsonErrorLine } from '../../host/errors.js';
import { terminalSafe, type CommandIo } from '../io.js';
import { ArgError, ArgExit, commandHelp, parse, type ParsedArgs } from './args.js';
import { listJson, listText, typesJson, typesText } from './output.js';
import { LIST, MDEVCTL_VERSION, findCommand, topHelp } from './spec.js';

/**
 * The mdevctl-compatible command line. `runMdevctl` takes what follows the
 * program name and returns the exit status: 0 success, 1 runtime error
 * ("Error: ..." and a "Caused by:" chain on stderr), 2 usage error — as
 * mdevctl does. `prog` is how we were invoked: "mdevctl" (drop-in, exact
 * behaviour), "lsmdev" (list only), or "mdevkit" (also takes --root DIR).
 */

export type Prog = 'mdevctl' | 'lsmdev' | 'mdevkit';

function usageError(io: CommandIo, err: ArgError): number {
  io.stderr.write(
    terminalSafe(
      `error: ${err.message}\n\n${err.usage === undefined ? '' : `${err.usage}\n`}For more information try --help\n`,
    ),
  );
  return 2;
}

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

function warnLine(message: string): string {
  return `[${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} WARN  mdevctl] ${message}\n`;
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
  const name = prog === 'lsmdev' ? 'list' : args.shift();
  const shown = prog === 'mdevkit' ? 'mdevkit' : 'mdevctl';
  const version = `${MDEVCTL_VERSION}${prog === 'mdevkit' ? ' (mdevkit)' : ''}`;
  if (name === undefined) {
    io.stderr.write(topHelp(shown, version));
    return 2;
  }
  if (name === '-h' || name === '--help') {
    io.stdout.write(topHelp(shown, version));
    return 0;
  }
  if (name === '-V' || name === '--version') {
    io.stdout.write(`${shown} ${version}\n`);
    return 0;
  }
  if (name === 'help') {
    const sub = args[0] === undefined ? undefined : findCommand(args[0]);
    if (args[0] !== undefined && sub === undefined) {
      return usageError(
        io,
        new ArgError(`Unrecognized subcommand '${args[0]}'`, `USAGE:\n    ${shown} <SUBCOMMAND>\n`),
      );
    }
    io.stdout.write(
      sub === undefined ? topHelp(shown, version) : commandHelp(shown, sub, MDEVCTL_VERSION),
    );
    return 0;
  }
  // `mdevkit lsmdev` is list; mdevctl itself knows lsmdev only as its program name.
  const spec = name === 'lsmdev' && prog === 'mdevkit' ? LIST : findCommand(name);
  if (spec === undefined) {
    return usageError(
      io,
      new ArgError(
        `Found argument '${name}' which wasn't expected, or isn't valid in this context`,
        `USAGE:\n    ${shown} <SUBCOMMAND>\n`,
      ),
    );
  }
  const progName = prog === 'lsmdev' ? 'lsmdev' : shown;
  let opts: ParsedArgs;
  try {
    opts = parse(
      progName,
      spec,
      args,
      () => commandHelp(progName, spec, MDEVCTL_VERSION),
      `${progName === 'lsmdev' ? progName : `${progName}-${spec.name}`} ${MDEVCTL_VERSION}\n`,
    );
  } catch (err) {
    if (err instanceof ArgExit) {
      io.stdout.write(err.text);
      return 0;
    }
    if (err instanceof ArgError) return usageError(io, err);
    throw err;
  }

  const env = environment ?? environmentFrom(io.env, root);
  const hooks: HostHooks = {
    warn: (m) => io.stderr.write(terminalSafe(warnLine(m))),
    calloutStderr: (script, text) => io.stderr.write(`${script}: ${text}`),
    force: opts['force'] === true,
  };
  try {
    selfCheck(env);
    // One command reads the callout and notifier directories once.
    return withScriptListings(() => dispatch(io, env, spec.name, opts, hooks));
  } catch (err) {
    // What went wrong in the operation (MdevError, a config or errno error, a
    // refusing callout) is for the user: "Error: ..." and exit 1, as mdevctl.
    // TypeError, RangeError and ReferenceError are mdevkit's bugs: keep the stack.
    if (
      err instanceof Error &&
      !(err instanceof TypeError) &&
      !(err instanceof RangeError) &&
      !(err instanceof ReferenceError)
    ) {
      io.stderr.write(jsonErrorLine(io.env, err) ?? terminalSafe(formatError(err)));
      return 1;
    }
    throw err;
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
      // (1.2.0 aborts the whole listing; see docs/mdevctl-compat.md).
      const devices = defined
        ? listDefinedDevices(env, filter, {
            ...hooks,
            invalidDefinition: (_path, error) =>
              hooks.warn?.(`Skipping invalid definition: ${describe(error.cause ?? error)}`),
          })
        : listActiveDevices(env, filter, hooks);
      const text =
        o['dumpjson'] === true
          ? listJson(devices, uuid !== undefined)
          : listText(devices, defined, o['verbose'] === true);
      io.stdout.write(`${text}\n`);
      return 0;
    }
    case 'types': {
      const types = listTypes(env, parent);
      io.stdout.write(`${o['dumpjson'] === true ? typesJson(types) : typesText(types)}\n`);
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
      for (const outcome of startParentDevices(env, str(o['PARENT'])!, hooks)) {
        if (outcome.error === undefined) continue;
        let cur: unknown = outcome.error;
        while (cur !== undefined && cur !== null) {
          hooks.warn?.(describe(cur));
          cur = (cur as { cause?: unknown }).cause;
        }
      }
      return 0;
    }
    default:
      throw new Error(`unhandled command ${command}`);
  }
}
