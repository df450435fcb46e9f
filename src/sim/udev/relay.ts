import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import type { Uevent, UeventVar } from '../core/kernel.js';
import { isMountpoint } from '../fuse/sysfs-fuse.js';
import { NETLINK_KOBJECT_UEVENT, UDEV_MONITOR_GROUP, encodeUdevMessage } from './message.js';

/**
 * The lab's udev: every kernel uevent of the emulated host is multicast, in
 * udev's own format, to the libudev monitors of one private network
 * namespace — as if udevd had processed it. libvirt's node-device driver,
 * `udevadm monitor --udev` and anything else built on libudev run in that
 * namespace and see devices come and go; nothing on the real host does
 * (uevent netlink sockets are per network namespace, and events sent from
 * userspace stay in the sender's).
 *
 * A process cannot move its sockets between namespaces and Node cannot
 * enter one, so the sending happens in a small relay process started
 * inside a new namespace by util-linux `unshare --net=FILE`, which also
 * binds the namespace to FILE (by convention DIR/netns of the lab) so that
 * `nsenter --net=FILE` puts shells and libvirtd into it. The serving process
 * hands the relay one length-prefixed message per event on its stdin.
 *
 * What udevd would add: USEC_INITIALIZED, the monotonic time in µs at which
 * the device was first seen (kept until it is removed). The lab has no
 * rules, so no tags, no hwdb properties, no renaming.
 */

export interface UdevRelayOptions {
  /** Where to bind the namespace (a file path; created if missing). */
  readonly nsPath: string;
  /** The command that runs `runRelay` (the lab's CLI: `mdevkit lab udev-relay`). */
  readonly relayCommand: readonly string[];
}

export class UdevRelay {
  readonly #child: ChildProcess;
  readonly #initialized = new Map<string, string>();
  #closed = false;

  private constructor(
    readonly nsPath: string,
    child: ChildProcess,
  ) {
    this.#child = child;
  }

  /**
   * Create the namespace and start the relay in it; resolves once the relay's
   * socket is open (events sent from then on reach every monitor).
   */
  static async start(options: UdevRelayOptions): Promise<UdevRelay> {
    const nsPath = options.nsPath;
    // A namespace left bound by a lab that was killed: nobody serves it.
    if (isMountpoint(nsPath)) unmount(nsPath);
    fs.writeFileSync(nsPath, '');
    const child = spawn('unshare', [`--net=${nsPath}`, '--', ...options.relayCommand], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const relay = new UdevRelay(nsPath, child);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const onData = (chunk: Buffer): void => {
        out += chunk.toString();
        if (out.includes('ready\n')) {
          child.stdout?.off('data', onData);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.once('error', (err) =>
        reject(new Error(`cannot start the lab's udev relay (unshare): ${err.message}`)),
      );
      child.once('exit', (code) =>
        reject(new Error(`the lab's udev relay exited (status ${code}) before it was ready`)),
      );
    }).catch((err: unknown) => {
      relay.#unbind();
      throw err;
    });
    child.removeAllListeners('exit');
    // The relay writes nothing more; keep its pipe drained all the same.
    child.stdout?.resume();
    child.stdin?.on('error', () => {}); // a relay gone early shows in close()
    return relay;
  }

  /** Send one kernel uevent to the namespace's udev monitors. */
  send(event: Uevent): void {
    if (this.#closed) return;
    const msg = encodeUdevMessage(this.udevProperties(event));
    const frame = Buffer.alloc(4 + msg.length);
    frame.writeUInt32LE(msg.length, 0);
    msg.copy(frame, 4);
    this.#child.stdin?.write(frame);
  }

  /** The event's properties as udevd passes them on: the kernel's, plus USEC_INITIALIZED. */
  udevProperties(event: Uevent): UeventVar[] {
    let usec = this.#initialized.get(event.devpath);
    if (usec === undefined) {
      usec = String(process.hrtime.bigint() / 1000n);
      this.#initialized.set(event.devpath, usec);
    }
    if (event.action === 'remove') this.#initialized.delete(event.devpath);
    const props = [...event.properties];
    // udevd keeps SEQNUM last-but-one and adds its own keys after the kernel's.
    props.push(['USEC_INITIALIZED', usec]);
    return props;
  }

  /** Stop the relay and unbind the namespace (processes still in it keep it alive). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const exited = new Promise<void>((resolve) => {
      if (this.#child.exitCode !== null || this.#child.signalCode !== null) resolve();
      else this.#child.once('exit', () => resolve());
    });
    this.#child.stdin?.end();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
    this.#unbind();
  }

  #unbind(): void {
    if (isMountpoint(this.nsPath)) unmount(this.nsPath);
    fs.rmSync(this.nsPath, { force: true });
  }
}

function unmount(path: string): void {
  const r = spawnSync('umount', [path], { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`umount ${path}: ${(r.stderr || r.error?.message || '').trim()}`);
  }
}

/**
 * The relay itself (run inside the namespace): open a NETLINK_KOBJECT_UEVENT
 * socket, say "ready", then multicast each length-prefixed message from
 * stdin to udev's group until stdin ends. Uses the `netlink` package (an
 * N-API addon with prebuilt binaries: Node has no AF_NETLINK sockets).
 */
export async function runRelay(
  stdin: NodeJS.ReadableStream,
  stdout: NodeJS.WritableStream,
): Promise<void> {
  const { RawNetlinkSocket } = await import('netlink');
  const socket = new RawNetlinkSocket(NETLINK_KOBJECT_UEVENT, {
    recvBufferSize: 4096,
    sendBufferSize: 4 * 1024 * 1024,
  });
  let failure: Error | undefined;
  const sendOne = (msg: Buffer): void =>
    socket.send(msg, { port: 0, groups: UDEV_MONITOR_GROUP }, (err) => {
      // No listener is not an error for a multicast; anything else is.
      if (err !== undefined && err.code !== 'ECONNREFUSED' && err.code !== 'ESRCH') failure ??= err;
    });
  stdout.write('ready\n');
  let pending = Buffer.alloc(0);
  for await (const chunk of stdin) {
    pending = Buffer.concat([pending, chunk as Buffer]);
    while (pending.length >= 4) {
      const len = pending.readUInt32LE(0);
      if (pending.length < 4 + len) break;
      sendOne(pending.subarray(4, 4 + len));
      pending = pending.subarray(4 + len);
    }
  }
  socket.close();
  if (failure !== undefined) throw failure;
}
