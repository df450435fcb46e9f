import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { environmentAt, type Environment } from '../../src/host/environment.js';
import type { Lab } from '../../src/sim/lab.js';
import { tmpDir } from '../support/tmp.js';

/**
 * Helpers of the libvirt tests: an environment over a lab's in-process port
 * with a fresh config dir, and validation of produced XML with libvirt's
 * own RNG schemas through virt-xml-validate.
 */

/** The lab's sysfs plus an empty <tmp>/etc/mdevctl.d. */
export function labEnvironment(lab: Lab): Environment {
  const root = tmpDir('mdevkit-libvirt-');
  fs.mkdirSync(path.join(root, 'etc', 'mdevctl.d'), { recursive: true });
  return environmentAt(root, lab.port);
}

let counter = 0;

/** Validate with libvirt's schema (nodedev, domain); fails with virt-xml-validate's words. */
export function assertValidXml(xml: string, schema: 'nodedev' | 'domain'): void {
  const dir = tmpDir('mdevkit-xml-');
  const file = path.join(dir, `doc-${counter++}.xml`);
  fs.writeFileSync(file, xml);
  const r = spawnSync('virt-xml-validate', [file, schema], { encoding: 'utf8' });
  assert.equal(
    r.status,
    0,
    `virt-xml-validate ${schema} rejected:\n${xml}\n${r.stderr}${r.stdout}`,
  );
}

/** A minimal domain around some <devices> content, in libvirt's shape. */
export function domainXml(name: string, devices: string): string {
  return `<domain type='kvm'>
  <name>${name}</name>
  <uuid>c7a5fdbd-cdaf-9455-926a-d65c16db1809</uuid>
  <memory unit='KiB'>1048576</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
${devices}  </devices>
</domain>
`;
}
