import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';

/**
 * Tests that need root, FUSE, Debian's mdevctl, Chromium or libvirt's
 * schemas skip with a reason where those are missing. CI installs them and
 * sets MDEVKIT_REQUIRE_ALL=1, which turns every such skip into a failure.
 */
export const REQUIRE_ALL = process.env['MDEVKIT_REQUIRE_ALL'] === '1';

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const isRoot = process.getuid?.() === 0;
export const hasMdevctl = fs.existsSync('/usr/bin/mdevctl');
export const hasFuse =
  fs.existsSync('/dev/fuse') &&
  has('fusermount') &&
  fs.existsSync('/usr/lib/x86_64-linux-gnu/libfuse.so.2');
export const hasChromium = fs.existsSync('/usr/bin/chromium');
export const hasLibvirtSchemas =
  fs.existsSync('/usr/share/libvirt/schemas') && has('virt-xml-validate');
/** Debian's monolithic libvirtd with its QEMU driver (libvirt-daemon, -driver-qemu) and virsh. */
export const hasLibvirtd =
  fs.existsSync('/usr/sbin/libvirtd') &&
  fs.existsSync('/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so') &&
  has('virsh');
/** util-linux unshare/nsenter and udevadm: the lab's udev events in a network namespace. */
export const hasNetns = has('unshare') && has('nsenter') && has('udevadm');
/** Debian's QEMU for x86 (qemu-system-x86) and for s390x (qemu-system-misc). */
export const hasQemuX86 = has('qemu-system-x86_64');
export const hasQemuS390x = has('qemu-system-s390x');

/**
 * Skip the test (with `reason`) unless every requirement holds; under
 * MDEVKIT_REQUIRE_ALL=1 a missing requirement fails the test instead.
 * Returns true when the test may go on.
 */
export function requires(t: TestContext, needs: Record<string, boolean>, reason: string): boolean {
  const missing = Object.entries(needs)
    .filter(([, ok]) => !ok)
    .map(([name]) => name);
  if (missing.length === 0) return true;
  const msg = `needs ${missing.join(', ')}: ${reason}`;
  if (REQUIRE_ALL) assert.fail(`MDEVKIT_REQUIRE_ALL=1 but ${msg}`);
  t.skip(msg);
  return false;
}

/** Path of the shared tools beside the checkout (../shared). */
export const SHARED_DIR = new URL('../../../shared/', import.meta.url).pathname;
export const MDEVCTL_NS = `${SHARED_DIR}tools/mdevctl-ns`;
