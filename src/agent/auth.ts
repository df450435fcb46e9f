import { randomBytes, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as nodePath from 'node:path';

/**
 * The agent's bearer token: 32 random bytes in hex, created at the first
 * start in the state directory (mode 0600) and printed once, then read back
 * on every later start. Every write needs it; reads need it too when the
 * agent listens beyond loopback.
 */
export const TOKEN_FILE = 'agent-token';

export interface TokenInfo {
  readonly token: string;
  /** True when this start created it (the one time it is printed). */
  readonly created: boolean;
  readonly path: string;
}

const TOKEN_TEXT = /^[0-9a-f]{64}\s*$/;
/** A token file is 65 bytes; reading more than this shows it is something else. */
const TOKEN_READ_LIMIT = 4096;

/**
 * The token of the state directory `stateDir` (which checkStateDir has
 * vouched for), created when missing. The file is opened with O_NOFOLLOW
 * (a symlink is refused, dangling or not) and O_NONBLOCK (a FIFO cannot
 * hang the start), and must be a regular file of the agent's user that
 * nobody else can read or write, holding 64 hex digits. Its contents are
 * never quoted in an error: it may be anything.
 */
export function loadOrCreateToken(stateDir: string): TokenInfo {
  const path = nodePath.join(stateDir, TOKEN_FILE);
  const existing = readToken(path);
  if (existing !== undefined) return { token: existing, created: false, path };
  const token = randomBytes(32).toString('hex');
  // Written whole under a temporary name, then linked into place: link(2)
  // fails when the name exists, so two agents starting at once agree on
  // one token, and nobody ever reads a half-written one.
  const tmp = nodePath.join(stateDir, `.${TOKEN_FILE}.${process.pid}.tmp`);
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    fs.writeSync(fd, `${token}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // Another agent made it first: use that one (no second try, no recursion).
    const theirs = readToken(path);
    if (theirs === undefined) throw new TokenFileError(path, 'vanished while it was being made');
    return { token: theirs, created: false, path };
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return { token, created: true, path };
}

/** A token file the agent refuses; the message says how to fix it. */
export class TokenFileError extends Error {
  override readonly name = 'TokenFileError';
  readonly code = 'untrusted-path';
  constructor(
    readonly path: string,
    problem: string,
    fix = `remove it (rm ${path}) and the agent makes a new token at its next start`,
  ) {
    super(`refusing the agent token ${path}: it ${problem}; ${fix}`);
  }
}

/** The token in `path`, or undefined when there is no file. */
function readToken(path: string): string | undefined {
  const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
  let fd: number;
  try {
    fd = fs.openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw new TokenFileError(path, 'is a symlink');
    throw new TokenFileError(path, `cannot be opened (${code ?? 'error'})`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new TokenFileError(path, 'is not a regular file');
    const me = process.geteuid?.() ?? 0;
    if (st.uid !== me) {
      throw new TokenFileError(
        path,
        `belongs to uid ${st.uid}, not to this agent's user (uid ${me})`,
      );
    }
    if ((st.mode & 0o077) !== 0) {
      throw new TokenFileError(
        path,
        `can be read or written by group or others (mode 0${(st.mode & 0o777).toString(8)})`,
        `if nobody else has seen it: chmod 600 ${path}; otherwise remove it (rm ${path}) for a new token`,
      );
    }
    const buf = Buffer.alloc(TOKEN_READ_LIMIT);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const text = buf.subarray(0, n).toString('latin1');
    if (!TOKEN_TEXT.test(text))
      throw new TokenFileError(path, 'does not hold an agent token (64 hex digits)');
    return text.slice(0, 64);
  } finally {
    fs.closeSync(fd);
  }
}

/** Constant-time comparison of a presented token with the real one. */
export function tokenMatches(presented: string | undefined, token: string): boolean {
  if (presented === undefined) return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

/** 127.0.0.0/8, ::1, ::ffff:127.x, and the name "localhost". */
export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) return h === '::1' || /^::ffff:127\./i.test(h);
  return false;
}

/**
 * Hosts a browser may name in requests to a loopback agent. Anything else
 * reaching a loopback socket came through DNS rebinding (a page on
 * evil.example whose name now resolves to 127.0.0.1), so it is refused.
 */
export function isLoopbackHostHeader(hostHeader: string | undefined): boolean {
  if (hostHeader === undefined) return true; // HTTP/1.0 tools; not a browser
  const m = /^(\[[^\]]*\]|[^:]*)(?::\d+)?$/.exec(hostHeader);
  return m !== null && isLoopbackHost(m[1]!);
}
