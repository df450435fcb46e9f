import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { isLoopbackHost, loadOrCreateToken } from '../agent/auth.js';
import {
  ConfigDirWatcher,
  SysfsPoller,
  mergeSources,
  ueventSource,
  type HostEventSource,
} from '../agent/events.js';
import { buildAgent } from '../agent/server.js';
import { Autostart, describeAutostartRun } from '../host/autostart.js';
import { environmentAt, type Environment } from '../host/environment.js';
import { Lab } from '../sim/lab.js';
import { DEFAULT_PROFILE } from '../sim/profiles/profile.js';
import type { CommandIo } from '../ctl/io.js';
import { CommandError, UsageError, command, untilStopped } from './command.js';
import { PROFILE_OPTION } from './lab.js';

/** $XDG_STATE_HOME/mdevkit/<name>, else ~/.local/state/mdevkit/<name>. */
export function defaultStateDir(
  env: Readonly<Record<string, string | undefined>>,
  name: string,
): string {
  const xdg = env['XDG_STATE_HOME'];
  const base =
    xdg !== undefined && nodePath.isAbsolute(xdg)
      ? xdg
      : nodePath.join(env['HOME'] ?? os.homedir(), '.local', 'state');
  return nodePath.join(base, 'mdevkit', name);
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export function parseListen(text: string): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = m === null ? Number.NaN : Number(m[3]);
  if (m === null || port > 65535) {
    throw new UsageError(`--listen takes HOST:PORT (e.g. 127.0.0.1:8765), not '${text}'`);
  }
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/** The lab's side of the world: a state dir holding the lab's mdevctl.d, as /etc would. */
function labEnvironment(stateDir: string, lab: Lab): Environment {
  const env = environmentAt(stateDir, lab.port);
  for (const dir of [
    env.configDir,
    nodePath.join(env.configDir, 'scripts.d', 'callouts'),
    nodePath.join(env.configDir, 'scripts.d', 'notifiers'),
    // what mdevctl 1.4 (and `mdevkit list --root STATE`) requires under a root
    ...env.calloutDirs.slice(0, 1),
    ...env.notifierDirs.slice(0, 1),
  ]) {
    fs.mkdirSync(dir, { recursive: true });
  }
  return env;
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

export const agentCommand = command({
  synopsis: `[--profile P | --root DIR] [--listen HOST:PORT | --socket PATH]
                     [--state-dir DIR] [--no-auth] [--poll-interval MS]`,
  description:
    'The host agent: an HTTP API (/api/v1, described at /openapi.json), an event stream (/api/v1/events), Prometheus metrics (/metrics) and the dashboard (/).\n\n' +
    "Writes need 'Authorization: Bearer <token>'. The token is created at the first start in the state dir and printed that once.",
  options: {
    profile: {
      ...PROFILE_OPTION,
      help: `run on an in-process emulated lab host built from profile P (the default, with profile '${DEFAULT_PROFILE}': no root, FUSE or hardware needed)`,
    },
    root: {
      type: 'string',
      value: 'DIR',
      help: "manage the host whose root is DIR ('/' on a real host) through its sysfs and DIR/etc/mdevctl.d, as mdevctl does",
    },
    listen: {
      type: 'string',
      value: 'HOST:PORT',
      help: 'where to listen (default 127.0.0.1:8765; port 0 picks a free one)',
    },
    socket: { type: 'string', value: 'PATH', help: 'listen on a unix socket instead (mode 0600)' },
    'state-dir': {
      type: 'string',
      value: 'DIR',
      help: "the agent's state: its token and, for a lab, the lab's etc/mdevctl.d (default $XDG_STATE_HOME/mdevkit/<lab|host>, i.e. ~/.local/state/mdevkit/...)",
    },
    'no-auth': {
      type: 'boolean',
      default: false,
      help: 'let writes through without the token (loopback or socket only)',
    },
    'poll-interval': {
      type: 'string',
      value: 'MS',
      help: 'how often to look at sysfs for changes on a real host (default 1000)',
    },
  },
  positionals: [],
  run: (io, { values }) => serveAgent(io, values),
});

interface AgentValues {
  readonly profile?: string;
  readonly root?: string;
  readonly listen?: string;
  readonly socket?: string;
  readonly 'state-dir'?: string;
  readonly 'no-auth': boolean;
  readonly 'poll-interval'?: string;
}

async function serveAgent(io: CommandIo, values: AgentValues): Promise<number> {
  if (values.profile !== undefined && values.root !== undefined) {
    throw new UsageError('--profile (a lab) and --root (a host) exclude each other');
  }
  if (values.listen !== undefined && values.socket !== undefined) {
    throw new UsageError('--listen and --socket exclude each other');
  }
  const pollMs = values['poll-interval'] === undefined ? 1000 : Number(values['poll-interval']);
  if (!Number.isInteger(pollMs) || pollMs < 50) {
    throw new UsageError('--poll-interval takes milliseconds, at least 50');
  }
  const listen =
    values.socket === undefined ? parseListen(values.listen ?? '127.0.0.1:8765') : undefined;
  const loopback = listen === undefined || isLoopbackHost(listen.host);
  if (!loopback && values['no-auth']) {
    throw new UsageError(
      `refusing to listen on ${listen!.host} without a token: --no-auth is for loopback and unix sockets only`,
    );
  }

  const isLab = values.root === undefined;
  const stateDir = nodePath.resolve(
    io.cwd,
    values['state-dir'] ?? defaultStateDir(io.env, isLab ? 'lab' : 'host'),
  );
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });

  let env: Environment;
  let events: HostEventSource;
  let hostLabel: string;
  if (isLab) {
    const lab = Lab.fromProfile(values.profile ?? DEFAULT_PROFILE);
    env = labEnvironment(stateDir, lab);
    // Uevents are the lab's word for what changed in sysfs; definitions are files.
    events = mergeSources(
      ueventSource((listener) => lab.kernel.onUevent(listener), env.port),
      new ConfigDirWatcher(env.configDir),
    );
    hostLabel = `lab '${lab.profile.name}' (in-process emulated host)`;
    // mdevctl's udev rule, as on a host: the lab has just booted, so each
    // parent's start=auto devices start now, and again when it re-registers.
    const autostart = new Autostart(env, {
      onRun: (run) => {
        for (const line of describeAutostartRun(run)) io.stderr.write(`mdevkit agent: ${line}\n`);
      },
    });
    lab.kernel.onUevent(autostart.uevent);
    autostart.coldplug();
    await autostart.flush();
  } else {
    env = environmentAt(nodePath.resolve(io.cwd, values.root!));
    if (!fs.existsSync(env.configDir)) fs.mkdirSync(env.configDir, { recursive: true });
    events = mergeSources(new SysfsPoller(env.port, pollMs), new ConfigDirWatcher(env.configDir));
    hostLabel = env.root;
  }

  const token = loadOrCreateToken(stateDir);
  const agent = await buildAgent({
    env,
    events,
    token: values['no-auth'] ? '' : token.token,
    authDisabled: values['no-auth'],
    protectReads: !loopback,
    loopbackOnly: listen !== undefined && loopback,
    mode: isLab ? 'lab' : 'host',
    hostLabel,
    logger: io.env['MDEVKIT_AGENT_LOG'] === '1',
  });

  let url: string;
  try {
    if (values.socket !== undefined) {
      const path = nodePath.resolve(io.cwd, values.socket);
      fs.rmSync(path, { force: true }); // a stale socket of an agent that died
      await agent.app.listen({ path });
      fs.chmodSync(path, 0o600);
      url = `unix:${path}`;
    } else {
      await agent.app.listen({ host: listen!.host, port: listen!.port });
      const addr = agent.app.server.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : listen!.port;
      url = `http://${urlHost(listen!.host)}:${port}/`;
    }
  } catch (err) {
    await agent.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new CommandError(
        `${values.socket ?? values.listen ?? '127.0.0.1:8765'} is in use (another agent?); pick another with --listen`,
      );
    }
    if (code === 'EADDRNOTAVAIL' || code === 'EACCES') {
      throw new CommandError(
        `cannot listen on ${values.socket ?? values.listen}: ${(err as Error).message}`,
      );
    }
    throw err;
  }

  // One write, "listening on" last: whoever waits for that line has the rest.
  const banner = [`mdevkit agent: managing ${hostLabel}`];
  banner.push(`state: ${stateDir}${isLab ? ` (definitions in ${env.configDir})` : ''}`);
  if (values['no-auth']) {
    banner.push('auth: off (--no-auth): writes need no token');
  } else if (token.created) {
    banner.push(
      `token (created now and shown this once; kept in ${token.path}):`,
      `  ${token.token}`,
    );
    if (url.startsWith('http')) banner.push(`dashboard, signed in: ${url}#token=${token.token}`);
  } else {
    banner.push(`token: in ${token.path}`);
  }
  banner.push(`listening on ${url}`);
  io.stdout.write(banner.join('\n') + '\n');

  const why = await untilStopped();
  io.stderr.write(`mdevkit agent: ${why}, stopping\n`);
  await agent.close();
  if (values.socket !== undefined)
    fs.rmSync(nodePath.resolve(io.cwd, values.socket), { force: true });
  return 0;
}
