import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import * as grpc from '@grpc/grpc-js';

/**
 * gRPC over unix sockets, as kubelet and its plugins talk: a server bound
 * to a socket file that is mode 0600 from the moment anyone can dial it, a
 * client dialled by path, and the checks a plugin makes on its socket.
 */

/** Longest path a unix socket can bind to (sun_path is 108 bytes with its NUL). */
export const UNIX_PATH_MAX = 107;

/** The identity of a socket file: a socket made anew at the same path differs. */
export interface SocketIdentity {
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
}

/** The file at `path` when it is a socket, else undefined (absent, or something else). */
export function socketIdentity(path: string): SocketIdentity | undefined {
  try {
    const st = fs.lstatSync(path);
    return st.isSocket() ? { path, dev: st.dev, ino: st.ino } : undefined;
  } catch {
    return undefined;
  }
}

/** Is the socket at `id.path` still the one `id` names? */
export function isSameSocket(id: SocketIdentity): boolean {
  const now = socketIdentity(id.path);
  return now !== undefined && now.dev === id.dev && now.ino === id.ino;
}

let tempCounter = 0;

/**
 * Bind `server` to the unix socket `path`, mode 0600, and resolve with the
 * socket's identity.
 *
 * bind(2) makes the socket with the process's umask, so it is bound under
 * a temporary name in the same directory, chmod'ed, and renamed into
 * place: a client dials `path` only once it is 0600 (a socket keeps
 * working across a rename; connect(2) finds it by inode). A stale socket at
 * `path` (a plugin that died) is replaced; anything else there is refused.
 */
export async function bindUnixSocket(server: grpc.Server, path: string): Promise<SocketIdentity> {
  if (Buffer.byteLength(path) > UNIX_PATH_MAX) {
    throw new Error(`socket path ${path} is longer than ${UNIX_PATH_MAX} bytes`);
  }
  const dir = nodePath.dirname(path);
  const temp = nodePath.join(dir, `.${process.pid}.${++tempCounter}.sock-tmp`);
  try {
    fs.unlinkSync(temp);
  } catch {
    // not there: the usual case
  }
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix:${temp}`, grpc.ServerCredentials.createInsecure(), (err) =>
      err === null ? resolve() : reject(err),
    );
  });
  try {
    fs.chmodSync(temp, 0o600);
    const there = fs.lstatSync(path, { throwIfNoEntry: false });
    if (there !== undefined && !there.isSocket()) {
      throw new Error(`${path} exists and is not a socket; not replacing it`);
    }
    fs.renameSync(temp, path);
  } catch (err) {
    try {
      fs.unlinkSync(temp);
    } catch {
      // gone already
    }
    throw err;
  }
  const id = socketIdentity(path);
  if (id === undefined) throw new Error(`socket ${path} vanished right after it was made`);
  return id;
}

/** Remove the socket `id` names, if it is still there (and still ours). */
export function removeOwnSocket(id: SocketIdentity): void {
  if (!isSameSocket(id)) return;
  try {
    fs.unlinkSync(id.path);
  } catch {
    // removed meanwhile
  }
}

/** Stop a server now: streams are cancelled, the socket closes. */
export function stopServer(server: grpc.Server): void {
  server.forceShutdown();
}

/** The address grpc-js dials for a unix socket path. */
export function unixTarget(path: string): string {
  return `unix:${path}`;
}

/** Wait until `client` is connected, or fail after `timeoutMs` (kubelet dials with a 10 s budget). */
export function waitConnected(client: grpc.Client, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    client.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve()));
  });
}

/** gRPC status codes by name, for errors a service returns. */
export const Status = grpc.status;

/** An error a gRPC handler returns: the status code and a message for the caller. */
export function grpcError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), {
    code,
    details,
    metadata: new grpc.Metadata(),
  });
}
