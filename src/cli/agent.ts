import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { isLoopbackHost, loadOrCreateToken } from '../agent/auth.js';
import { checkEnvironmentDirs, checkStateDir, claimSocketPath } from '../agent/trust.js';
import {
  ConfigDirWatcher,
  SysfsPoller,
  mergeSources,
  ueventSource,
  type HostEventSource,
} from '../agent/events.js';
import { buildAgent } from '../agent/server.js';
import { VfPoller } from '../agent/vf-events.js';
import { Autostart, describeAutostartRun } from '../host/autostart.js';
import { cleanConfigDirDebris } from '../host/config-store.js';
import { environmentAt, type Environment } from '../host/environment.js';
import { VfAutostart, describeVfAutostartRun } from '../host/vf-vgpu.js';
import { procInUseProbe, type InUseProbe } from '../host/desired/in-use.js';
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
    // 0755 whatever the umask adds: script directories must not be writable by others.
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  }
  return env;
}

/** --tls-cert and --tls-key, both or neither; read now so a bad path fails before anything starts. */
function readTls(values: AgentValues): { cert: Buffer; key: Buffer } | undefined {
  const cert = values['tls-cert'];
  const key = values['tls-key'];
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) {
    throw new UsageError('--tls-cert and --tls-key go together');
  }
  if (values.socket !== undefined) {
    throw new UsageError('--tls-cert/--tls-key are for --listen; a unix socket needs no TLS');
  }
  const read = (path: string, what: string): Buffer => {
    try {
      return fs.readFileSync(path);
    } catch (err) {
      throw new CommandError(`cannot read the TLS ${what} ${path}: ${(err as Error).message}`);
    }
  };
  return { cert: read(cert, 'certificate'), key: read(key, 'key') };
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

export const agentCommand = command({
  synopsis: `[--profile P | --root DIR] [--listen HOST:PORT | --socket PATH]
                     [--state-dir DIR] [--no-auth] [--poll-interval MS]
                     [--tls-cert FILE --tls-key FILE]`,
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
    'tls-cert': {
      type: 'string',
      value: 'FILE',
      help: 'serve HTTPS with this certificate (PEM; with --tls-key): beyond loopback the token would otherwise travel in the clear',
    },
    'tls-key': { type: 'string', value: 'FILE', help: 'the private key of --tls-cert (PEM)' },
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
  readonly 'tls-cert'?: string;
  readonly 'tls-key'?: string;
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

  const tls = readTls(values);

  const isLab = values.root === undefined;
  // Nothing runs (no autostart, no callout) before the state dir, the
  // directories scripts come from and the token are known to be the agent's
  // own (src/agent/trust.ts).
  const stateDir = checkStateDir(
    nodePath.resolve(
      io.cwd,
      values['state-dir'] ?? defaultStateDir(io.env, isLab ? 'lab' : 'host'),
    ),
  );
  const token = loadOrCreateToken(stateDir);

  let env: Environment;
  let events: HostEventSource;
  let hostLabel: string;
  let inUse: InUseProbe;
  if (isLab) {
    const lab = Lab.fromProfile(values.profile ?? DEFAULT_PROFILE);
    env = labEnvironment(stateDir, lab);
    // Who holds a device open is the VMs' business, not sysfs's: on the
    // in-process lab, the emulator says (the pairing this layer exists for).
    inUse = (uuid) =>
      (lab.core.device(uuid)?.openCount ?? 0) > 0 ? 'open by a VM of the lab' : undefined;
    checkEnvironmentDirs(env);
    // A crash mid-write left temp files; they are ours (and the dirs trusted now).
    cleanConfigDirDebris(env.configDir);
    // Uevents are the lab's word for what changed in sysfs; definitions are files.
    events = mergeSources(
      ueventSource((listener) => lab.kernel.onUevent(listener), env.port),
      new ConfigDirWatcher(env.configDir),
      new VfPoller(env, pollMs),
    );
    hostLabel = `lab '${lab.profile.name}' (in-process emulated host)`;
    // mdevctl's udev rule, as on a host: the lab has just booted, so each
    // parent's start=auto devices start now, and again when it re-registers.
    const autostart = new Autostart(env, {
      onRun: (run) => {
        for (const line of describeAutostartRun(run)) io.stderr.write(`mdevkit agent: ${line}\n`);
      },
      // A broken file is skipped (the listing reports it), the others start.
      invalidDefinition: (path) =>
        io.stderr.write(`mdevkit agent: autostart: skipped ${path}: not a valid definition\n`),
    });
    lab.kernel.onUevent(autostart.uevent);
    autostart.coldplug();
    await autostart.flush();
    // The VF vGPUs' rule: start=auto vGPUs come back once their GPU's VFs exist.
    const vfAutostart = new VfAutostart(env, {
      onRun: (run) => {
        for (const line of describeVfAutostartRun(run)) {
          io.stderr.write(`mdevkit agent: ${line}\n`);
        }
      },
    });
    lab.kernel.onUevent(vfAutostart.uevent);
    vfAutostart.coldplug();
    await vfAutostart.flush();
  } else {
    env = environmentAt(nodePath.resolve(io.cwd, values.root!));
    if (!fs.existsSync(env.configDir))
      fs.mkdirSync(env.configDir, { recursive: true, mode: 0o755 });
    checkEnvironmentDirs(env);
    cleanConfigDirDebris(env.configDir);
    events = mergeSources(
      new SysfsPoller(env.port, pollMs),
      new ConfigDirWatcher(env.configDir),
      new VfPoller(env, pollMs),
    );
    hostLabel = env.root;
    inUse = env.root === '/' ? procInUseProbe(env.port) : () => undefined;
  }

  const agent = await buildAgent({
    env,
    events,
    token: values['no-auth'] ? '' : token.token,
    authDisabled: values['no-auth'],
    protectReads: !loopback,
    loopbackOnly: listen !== undefined && loopback,
    mode: isLab ? 'lab' : 'host',
    hostLabel,
    inUse,
    logger: io.env['MDEVKIT_AGENT_LOG'] === '1',
    // Writes that may wait (callouts; on a host also sysfs stores) run in
    // the operations worker; the lab's sysfs is reached through the agent's thread.
    worker: isLab
      ? { root: stateDir, bridge: true, always: false }
      : { root: env.root, bridge: false, always: true },
    ...(tls === undefined ? {} : { tls }),
  });

  let url: string;
  /** The socket we made (its inode): on exit we remove that one, not whatever took its place. */
  let ownSocket: { path: string; ino: number } | undefined;
  try {
    if (values.socket !== undefined) {
      const path = nodePath.resolve(io.cwd, values.socket);
      await claimSocketPath(path);
      // Made 0600 from the start (no window in which others may connect):
      // nothing else creates files while the agent starts to listen.
      const umask = process.umask(0o177);
      try {
        await agent.app.listen({ path });
      } finally {
        process.umask(umask);
      }
      ownSocket = { path, ino: fs.statSync(path).ino };
      url = `unix:${path}`;
    } else {
      await agent.app.listen({ host: listen!.host, port: listen!.port });
      const addr = agent.app.server.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : listen!.port;
      url = `${tls === undefined ? 'http' : 'https'}://${urlHost(listen!.host)}:${port}/`;
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
  if (!loopback && tls === undefined) {
    banner.push(
      'warning: serving plain HTTP beyond loopback: the token travels in the clear (--tls-cert/--tls-key serve HTTPS)',
    );
  }
  banner.push(`listening on ${url}`);
  // Listen for SIGTERM before saying "listening": whoever waits for that
  // line may stop the agent at once, and must find it cleaning up.
  const stopped = untilStopped();
  io.stdout.write(banner.join('\n') + '\n');

  const why = await stopped;
  io.stderr.write(`mdevkit agent: ${why}, stopping\n`);
  await agent.close();
  if (
    ownSocket !== undefined &&
    fs.statSync(ownSocket.path, { throwIfNoEntry: false })?.ino === ownSocket.ino
  ) {
    fs.rmSync(ownSocket.path, { force: true });
  }
  return 0;
}
