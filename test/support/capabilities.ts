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

/**
 * The project's mount-namespace runner: `MDEVCTL_NS TREE -- CMD ARGS...` runs
 * CMD where TREE/sys and TREE/etc/mdevctl.d are /sys and /etc/mdevctl.d
 * (root; see the script's header).
 */
export const MDEVCTL_NS = new URL('../../scripts/mdevctl-ns', import.meta.url).pathname;

/** The reference mdevctl releases the differential tests know. */
export type MdevctlVersion = '1.2.0' | '1.4.0';
export const MDEVCTL_VERSIONS: readonly MdevctlVersion[] = ['1.2.0', '1.4.0'];

/**
 * Where each reference is looked for, in order; the first whose `--version`
 * names the release wins. 1.2.0 is Debian 12's package; 1.4.0 is what
 * scripts/install-mdevctl-ref.sh installs (or Debian 13's own package).
 * MDEVKIT_MDEVCTL_1_2 / MDEVKIT_MDEVCTL_1_4 name another binary or launcher.
 */
function referenceCandidates(version: MdevctlVersion): string[] {
  const own = process.env[version === '1.2.0' ? 'MDEVKIT_MDEVCTL_1_2' : 'MDEVKIT_MDEVCTL_1_4'];
  const places =
    version === '1.2.0'
      ? ['/usr/bin/mdevctl']
      : ['/opt/mdevctl-1.4.0/bin/mdevctl', '/usr/bin/mdevctl'];
  return own !== undefined && own !== '' ? [own] : places;
}

const references = new Map<MdevctlVersion, string | undefined>();

/**
 * The path of reference mdevctl `version`, or undefined when this machine
 * has none that runs and reports that release (checked once per process).
 */
export function mdevctlReference(version: MdevctlVersion): string | undefined {
  if (!references.has(version)) {
    const found = referenceCandidates(version).find((bin) => {
      if (!fs.existsSync(bin)) return false;
      try {
        const out = execFileSync(bin, ['--version'], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
          env: { ...process.env, RUST_BACKTRACE: '0' },
        });
        return out.trim() === `mdevctl ${version}`;
      } catch {
        return false;
      }
    });
    references.set(version, found);
  }
  return references.get(version);
}

/** Debian 12's mdevctl 1.2.0 (apt-get install mdevctl). */
export const hasMdevctl12 = (): boolean => mdevctlReference('1.2.0') !== undefined;
/** mdevctl 1.4.0 (scripts/install-mdevctl-ref.sh). */
export const hasMdevctl14 = (): boolean => mdevctlReference('1.4.0') !== undefined;
