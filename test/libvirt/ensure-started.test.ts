import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it } from 'node:test';
import { CommandError } from '../../src/cli/command.js';
import type { CommandIo } from '../../src/ctl/io.js';
import { runLibvirtHook } from '../../src/cli/libvirt.js';
import { defineDevice, startDevice } from '../../src/host/devices.js';
import type { Environment } from '../../src/host/environment.js';
import {
  EnsureStartedError,
  domainMdevs,
  ensureStarted,
} from '../../src/libvirt/ensure-started.js';
import { XmlInputError } from '../../src/libvirt/xml.js';
import { labWith } from '../support/labs.js';
import { labEnvironment } from './support.js';

/**
 * The domain XML fixtures are shaped as libvirt hands them to the qemu hook
 * (live XML: id, aliases, PCI addresses, seclabel, comments, a PCI hostdev
 * that is not ours). vgpu-guest uses a GVT-g vGPU and an mtty serial card.
 */
const FIXTURES = new URL('./fixtures/', import.meta.url);
const VGPU_GUEST = fs.readFileSync(new URL('vgpu-guest.xml', FIXTURES), 'utf8');
const NO_MDEV = fs.readFileSync(new URL('no-mdev.xml', FIXTURES), 'utf8');
const GVT_UUID = 'b1e0a5f4-6c1d-4c3e-9a1f-0d2b3c4d5e6f';
const MTTY_UUID = 'c2f1b6a7-7d2e-4d4f-8b2a-1e3c4d5f6a7b'; // upper case in the XML
const GVT = '0000:00:02.0';

function host(mttyPorts = 24): Environment {
  return labEnvironment(
    labWith([{ driver: 'gvt' }, { driver: 'mtty', options: { ports: mttyPorts } }]),
  );
}

const isRunning = (env: Environment, uuid: string): boolean =>
  env.port.kind(`/sys/bus/mdev/devices/${uuid}`) !== null;

function defineBoth(env: Environment, mttyType = 'mtty-1'): void {
  defineDevice(env, {
    uuid: GVT_UUID,
    parent: GVT,
    json: {
      name: 'test',
      read: () =>
        JSON.stringify({
          mdev_type: 'i915-GVTg_V5_8',
          start: 'manual',
          attrs: [{ 'mdev/aggregation/value': '2' }],
        }),
    },
  });
  defineDevice(env, { uuid: MTTY_UUID, parent: 'mtty', type: mttyType });
}

interface Captured {
  ctx: CommandIo;
  out: () => string;
  err: () => string;
  stdinReads: () => number;
}

function capture(stdin: string): Captured {
  let out = '';
  let err = '';
  let reads = 0;
  return {
    ctx: {
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
      env: {},
      cwd: process.cwd(),
      readStdin: () => {
        reads++;
        return stdin;
      },
    },
    out: () => out,
    err: () => err,
    stdinReads: () => reads,
  };
}

describe('reading a domain XML', () => {
  it('finds the mdev hostdevs in document order, canonical and without repeats', () => {
    assert.deepEqual(domainMdevs(VGPU_GUEST), {
      domain: 'vgpu-guest',
      uuids: [GVT_UUID, MTTY_UUID],
      // PCI hostdevs too (NVIDIA VF vGPUs are among them; others are left to libvirt).
      pci: [{ address: '0000:03:00.0', managed: true }],
    });
    const twice = VGPU_GUEST.replace('C2F1B6A7-7D2E-4D4F-8B2A-1E3C4D5F6A7B', GVT_UUID);
    assert.deepEqual(domainMdevs(twice).uuids, [GVT_UUID]);
    assert.deepEqual(domainMdevs(NO_MDEV), {
      domain: 'plain-guest',
      uuids: [],
      pci: [{ address: '0000:03:00.0', managed: true }],
    });
  });

  it('rejects what is not a domain, naming the input', () => {
    assert.throws(() => domainMdevs('<domain>', 'in.xml'), XmlInputError);
    assert.throws(() => domainMdevs('<device/>', 'in.xml'), /in\.xml is not a domain/);
    assert.throws(
      () =>
        domainMdevs(
          "<domain><devices><hostdev mode='subsystem' type='mdev' model='vfio-pci'><source/></hostdev></devices></domain>",
          'in.xml',
        ),
      /an mdev <hostdev> has no valid <source><address uuid='...'\/><\/source>/,
    );
  });
});

describe('ensure-started', () => {
  it('starts defined devices that are not running, with their attributes', () => {
    const env = host();
    defineBoth(env);
    const outcomes = ensureStarted(env, domainMdevs(VGPU_GUEST));
    assert.deepEqual(outcomes, [
      { uuid: GVT_UUID, state: 'started', parent: GVT, type: 'i915-GVTg_V5_8' },
      { uuid: MTTY_UUID, state: 'started', parent: 'mtty', type: 'mtty-1' },
    ]);
    assert.ok(isRunning(env, GVT_UUID) && isRunning(env, MTTY_UUID));
    assert.equal(
      env.port.read(`/sys/bus/mdev/devices/${GVT_UUID}/mdev/aggregation/value`).trim(),
      '2',
    );
    // a second run finds both running and changes nothing
    assert.deepEqual(
      ensureStarted(env, domainMdevs(VGPU_GUEST)).map((o) => o.state),
      ['running', 'running'],
    );
  });

  it('leaves a running device alone, even one that is not defined', () => {
    const env = host();
    startDevice(env, { uuid: GVT_UUID, parent: GVT, type: 'i915-GVTg_V5_4' });
    defineDevice(env, { uuid: MTTY_UUID, parent: 'mtty', type: 'mtty-2' });
    assert.deepEqual(ensureStarted(env, domainMdevs(VGPU_GUEST)), [
      { uuid: GVT_UUID, state: 'running', parent: GVT, type: 'i915-GVTg_V5_4' },
      { uuid: MTTY_UUID, state: 'started', parent: 'mtty', type: 'mtty-2' },
    ]);
  });

  it('fails naming a device that is neither running nor defined, and stops what it started', () => {
    const env = host();
    defineDevice(env, { uuid: GVT_UUID, parent: GVT, type: 'i915-GVTg_V5_4' });
    assert.throws(
      () => ensureStarted(env, domainMdevs(VGPU_GUEST)),
      (err: unknown) => {
        assert.ok(err instanceof EnsureStartedError);
        assert.equal(
          err.message,
          `mediated device ${MTTY_UUID} for domain 'vgpu-guest' is neither running nor defined`,
        );
        assert.equal(err.uuid, MTTY_UUID);
        assert.deepEqual(err.outcomes, [
          { uuid: GVT_UUID, state: 'rolled-back', parent: GVT, type: 'i915-GVTg_V5_4' },
        ]);
        return true;
      },
    );
    assert.equal(isRunning(env, GVT_UUID), false, 'the GVT-g device was stopped again');
  });

  it('fails naming the device and the reason when it cannot start', () => {
    const env = host(1); // one mtty port: no instance of mtty-2 (two ports) is available
    defineBoth(env, 'mtty-2');
    assert.throws(
      () => ensureStarted(env, domainMdevs(VGPU_GUEST)),
      (err: unknown) => {
        assert.ok(err instanceof EnsureStartedError);
        assert.match(
          err.message,
          new RegExp(
            `^cannot start mediated device ${MTTY_UUID} \\(parent mtty, type mtty-2\\) for domain 'vgpu-guest': No available instances of mtty-2 on mtty$`,
          ),
        );
        return true;
      },
    );
    assert.equal(isRunning(env, GVT_UUID), false);
    assert.equal(isRunning(env, MTTY_UUID), false);
  });

  it('reports an attribute the kernel refuses, with its errno', () => {
    const env = host();
    defineDevice(env, {
      uuid: GVT_UUID,
      parent: GVT,
      json: {
        name: 'test',
        read: () =>
          JSON.stringify({
            mdev_type: 'i915-GVTg_V5_8',
            start: 'manual',
            attrs: [{ 'mdev/aggregation/value': 'lots' }],
          }),
      },
    });
    assert.throws(
      () => ensureStarted(env, { domain: 'g', uuids: [GVT_UUID] }),
      (err: unknown) => {
        assert.ok(err instanceof EnsureStartedError);
        assert.match(
          err.message,
          /^cannot start mediated device .* for domain 'g': Failed to set attribute 'mdev\/aggregation\/value'.*Invalid argument \(EINVAL\)/,
        );
        return true;
      },
    );
    assert.equal(isRunning(env, GVT_UUID), false);
  });
});

describe("libvirt's qemu hook", () => {
  it('starts the devices in the prepare/begin phase, quietly', () => {
    const env = host();
    defineBoth(env);
    const c = capture(VGPU_GUEST);
    const rc = runLibvirtHook(c.ctx, ['qemu', 'vgpu-guest', 'prepare', 'begin', '-'], env);
    assert.equal(rc, 0);
    assert.equal(c.out(), '');
    assert.ok(isRunning(env, GVT_UUID) && isRunning(env, MTTY_UUID));
  });

  it('ignores every other phase and driver without reading standard input', () => {
    const env = host();
    defineBoth(env);
    for (const args of [
      ['qemu', 'vgpu-guest', 'start', 'begin', '-'],
      ['qemu', 'vgpu-guest', 'started', 'begin', '-'],
      ['qemu', 'vgpu-guest', 'release', 'end', '-'],
      ['qemu', 'vgpu-guest', 'migrate', 'begin', '-'],
      ['qemu', 'vgpu-guest', 'prepare', 'end', '-'],
      ['lxc', 'vgpu-guest', 'prepare', 'begin', '-'],
    ]) {
      const c = capture(VGPU_GUEST);
      assert.equal(runLibvirtHook(c.ctx, args, env), 0, args.join(' '));
      assert.equal(c.stdinReads(), 0, args.join(' '));
    }
    assert.equal(isRunning(env, GVT_UUID), false);
  });

  it('fails the VM start with a message naming the device', () => {
    const env = host();
    const c = capture(VGPU_GUEST);
    assert.throws(
      () => runLibvirtHook(c.ctx, ['qemu', 'vgpu-guest', 'prepare', 'begin', '-'], env),
      (err: unknown) =>
        err instanceof CommandError &&
        err.message ===
          `mediated device ${GVT_UUID} for domain 'vgpu-guest' is neither running nor defined`,
    );
  });

  it('accepts a domain without mdevs', () => {
    const c = capture(NO_MDEV);
    assert.equal(
      runLibvirtHook(c.ctx, ['qemu', 'plain-guest', 'prepare', 'begin', '-'], host()),
      0,
    );
  });
});
