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

export function loadOrCreateToken(stateDir: string): TokenInfo {
  const path = nodePath.join(stateDir, TOKEN_FILE);
  try {
    const token = fs.readFileSync(path, 'utf8').trim();
    if (/^[0-9a-f]{64}$/.test(token)) return { token, created: false, path };
    throw new Error(`${path} does not hold an agent token; remove it to make a new one`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString('hex');
  // 'wx': two agents starting at once must not both believe they made it.
  try {
    fs.writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateToken(stateDir);
    throw err;
  }
  return { token, created: true, path };
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
