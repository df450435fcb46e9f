/**
 * Worker for test/ctl/crash-safety-bursts.test.ts: bursts of definition
 * writes through the host library (the calls the CLI and the agent make)
 * until it is killed. argv: ROOT LANE SEQ MODE.
 *
 * MODE "burst": forever, pick one of the lane's UUIDs and define it (when
 * absent), or replace it (modify --jsonfile) or undefine it, each document
 * carrying a fresh sequence number. Before each operation it prints
 * "B <seq> <op> <uuid>", after it returned (the write fsynced and renamed)
 * "A <seq>": an acknowledged operation, which a kill must never undo.
 * MODE "restart": one write and one removal in each parent directory, as
 * the next command after a crash makes, then "done".
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defineDevice, modifyDevice, undefineDevice } from '../../src/host/devices.js';
import { environmentAt } from '../../src/host/environment.js';

export const PARENTS = ['0000:00:02.0', '0000:00:03.0'];
export const TYPE = 'i915-GVTg_V5_4';
export const UUIDS_PER_LANE = 6;

export const laneParent = (lane: number): string => PARENTS[lane % PARENTS.length]!;
export const laneUuid = (lane: number, k: number): string =>
  `c0ffee${String(lane).padStart(2, '0')}-0000-4000-8000-${String(k).padStart(12, '0')}`;
/** The document of sequence number `seq`, as the worker writes it. */
export const documentOf = (seq: number): string =>
  JSON.stringify({ mdev_type: TYPE, start: 'manual', attrs: [{ seq: String(seq) }] });

const say = (line: string): void => void fs.writeSync(1, `${line}\n`);

function main(): void {
  const [root, laneText, seqText, mode] = process.argv.slice(2) as [string, string, string, string];
  const env = environmentAt(root);
  const lane = Number(laneText);
  const parent = laneParent(lane);
  if (mode === 'restart') {
    for (const p of PARENTS) {
      const probe = `c0ffeeff-0000-4000-8000-${String(lane).padStart(12, '0')}`;
      defineDevice(env, { uuid: probe, parent: p, type: TYPE });
      undefineDevice(env, probe, p);
    }
    say('done');
    return;
  }
  let seq = Number(seqText);
  say('ready');
  for (;;) {
    const uuid = laneUuid(lane, Math.floor(Math.random() * UUIDS_PER_LANE));
    const present = fs.existsSync(path.join(env.configDir, parent, uuid));
    const s = seq++;
    const json = { name: `burst-${s}`, read: () => documentOf(s) };
    if (!present) {
      say(`B ${s} define ${uuid}`);
      defineDevice(env, { uuid, parent, json });
    } else if (Math.random() < 0.6) {
      say(`B ${s} modify ${uuid}`);
      modifyDevice(env, { uuid, parent, json });
    } else {
      say(`B ${s} undefine ${uuid}`);
      undefineDevice(env, uuid, parent);
    }
    say(`A ${s}`);
  }
}

// Run only as the worker (the test imports the constants above).
if (/crash-(safety-)?burst-worker\.(c?js|ts)$/.test(process.argv[1] ?? '')) main();
