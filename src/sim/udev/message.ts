import type { UeventVar } from '../core/kernel.js';

/**
 * udev's own netlink message: what udevd multicasts to libudev monitors
 * (`udev_monitor_new_from_netlink(udev, "udev")`, systemd's sd-device
 * monitor) once it has processed a kernel uevent. A fixed header, then the
 * device's properties as KEY=value strings, each ended by a NUL.
 *
 * The header (systemd's struct monitor_netlink_header, 40 bytes):
 *   0  char[8]  "libudev\0" — tells a udev message from the kernel's format
 *   8  u32 BE   magic 0xfeedcafe
 *  12  u32      header size (40)
 *  16  u32      offset of the properties (40)
 *  20  u32      length of the properties
 *  24  u32 BE   MurmurHash2 of SUBSYSTEM    } for the in-kernel socket
 *  28  u32 BE   MurmurHash2 of DEVTYPE or 0 } filters subscribers install
 *  32  u32 BE   tag bloom filter, high word }
 *  36  u32 BE   tag bloom filter, low word  }
 * The sizes and offsets are in the sender's byte order (little-endian here);
 * the magic and the filter words in network order.
 *
 * Receivers check the prefix, the magic, that properties start within the
 * datagram, and that the sender's credentials say uid 0 (the kernel fills
 * them in for netlink). Messages travel on NETLINK_KOBJECT_UEVENT, multicast
 * group 2 ("udev"); group 1 is the kernel's own.
 */

export const NETLINK_KOBJECT_UEVENT = 15;
/** Multicast group of udev's processed events (group 1 carries the kernel's). */
export const UDEV_MONITOR_GROUP = 2;
const MAGIC = 0xfeedcafe;
const HEADER_SIZE = 40;

export interface UdevMessageOptions {
  /** DEVTYPE, when the device has one (hashed into the header). */
  readonly devtype?: string;
  /** udev tags of the device (hashed into the bloom filter). */
  readonly tags?: readonly string[];
}

/** Encode a processed event for libudev monitors. `properties` must hold SUBSYSTEM. */
export function encodeUdevMessage(
  properties: readonly UeventVar[],
  options: UdevMessageOptions = {},
): Buffer {
  const subsystem = properties.find(([k]) => k === 'SUBSYSTEM')?.[1];
  if (subsystem === undefined) throw new Error('udev message: no SUBSYSTEM property');
  const body = Buffer.from(properties.map(([k, v]) => `${k}=${v}\0`).join(''), 'utf8');
  const header = Buffer.alloc(HEADER_SIZE);
  header.write('libudev\0', 0, 'latin1');
  header.writeUInt32BE(MAGIC, 8);
  header.writeUInt32LE(HEADER_SIZE, 12);
  header.writeUInt32LE(HEADER_SIZE, 16);
  header.writeUInt32LE(body.length, 20);
  header.writeUInt32BE(murmurHash2(subsystem), 24);
  header.writeUInt32BE(options.devtype === undefined ? 0 : murmurHash2(options.devtype), 28);
  let hi = 0;
  let lo = 0;
  for (const tag of options.tags ?? []) {
    const [h, l] = bloom64(tag);
    hi |= h;
    lo |= l;
  }
  header.writeUInt32BE(hi >>> 0, 32);
  header.writeUInt32BE(lo >>> 0, 36);
  return Buffer.concat([header, body]);
}

/** Decode a udev message (for tests and the lab's own monitor): its properties in order. */
export function decodeUdevMessage(msg: Buffer): UeventVar[] {
  if (msg.length < HEADER_SIZE || msg.toString('latin1', 0, 8) !== 'libudev\0') {
    throw new Error('not a udev message');
  }
  if (msg.readUInt32BE(8) !== MAGIC) throw new Error('udev message: bad magic');
  const off = msg.readUInt32LE(16);
  const len = msg.readUInt32LE(20);
  return msg
    .toString('utf8', off, off + len)
    .split('\0')
    .filter((s) => s !== '')
    .map((s) => {
      const eq = s.indexOf('=');
      return [s.slice(0, eq), s.slice(eq + 1)] as const;
    });
}

/**
 * MurmurHash2, 32-bit, seed 0, over the UTF-8 bytes (blocks read
 * little-endian, as on the x86 and arm64 hosts udev runs on): the hash
 * systemd uses for the header's filter words.
 */
export function murmurHash2(text: string): number {
  const data = Buffer.from(text, 'utf8');
  const m = 0x5bd1e995;
  let h = data.length >>> 0;
  let i = 0;
  for (; i + 4 <= data.length; i += 4) {
    let k = data.readUInt32LE(i);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const rest = data.length - i;
  if (rest === 3) h ^= data[i + 2]! << 16;
  if (rest >= 2) h ^= data[i + 1]! << 8;
  if (rest >= 1) {
    h ^= data[i]!;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h >>> 0;
}

/** The 64-bit bloom bits of one tag (four 6-bit slices of its hash), as [high, low] words. */
function bloom64(tag: string): [number, number] {
  const hash = murmurHash2(tag);
  let hi = 0;
  let lo = 0;
  for (const shift of [0, 6, 12, 18]) {
    const bit = (hash >>> shift) & 63;
    if (bit >= 32) hi |= 1 << (bit - 32);
    else lo |= 1 << bit;
  }
  return [hi, lo];
}
