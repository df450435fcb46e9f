import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { errnoCodeOf } from '../../src/common/errno.js';
import { requires } from '../support/capabilities.js';
import { uuidN } from '../support/labs.js';
import { FUSE_NEEDS, serveLab, writeProfile, type ServedLab } from './served-lab.js';

/**
 * N processes create the last available instance through FUSE at the same
 * moment: exactly one succeeds, every other gets the kernel's error, and
 * available_instances never shows less than 0. 100 trials on one mount,
 * with the same racing processes each time (they are told when to go, and
 * all spin until the same instant before their write(2)).
 */

const TRIALS = 100;
const RACERS = 6;

// A racer: for each line "DEADLINE_MS PATH UUID" on stdin, wait for the
// deadline, write UUID to PATH in one write(2), print "ok" or the errno
// number (libuv has no name for some, EUSERS among them).
const RACER = `
const fs = require('node:fs');
const rl = require('node:readline').createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const [deadline, file, uuid] = line.split(' ');
  while (performance.timeOrigin + performance.now() < Number(deadline));
  try { fs.writeFileSync(file, uuid); console.log('ok'); }
  catch (err) { console.log(typeof err.errno === 'number' ? String(-err.errno) : String(err)); }
});`;

// A watcher: reads available_instances as fast as it can until stdin ends,
// then prints every distinct value it saw.
const WATCHER = `
const fs = require('node:fs');
const seen = new Set();
let done = false;
process.stdin.on('data', () => {}).on('end', () => { done = true; });
const file = process.argv[1];
(function loop() {
  for (let i = 0; i < 20; i++) seen.add(fs.readFileSync(file, 'utf8'));
  if (done) { console.log(JSON.stringify([...seen])); return; }
  setImmediate(loop);
})();`;

class Racer {
  readonly child: ChildProcess;
  readonly #lines: Interface;
  readonly #waiting: ((line: string) => void)[] = [];

  constructor() {
    this.child = spawn(process.execPath, ['-e', RACER], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#lines = createInterface({ input: this.child.stdout! });
    this.#lines.on('line', (line) => this.#waiting.shift()?.(line));
  }

  race(deadline: number, file: string, uuid: string): Promise<string> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      this.child.stdin!.write(`${deadline} ${file} ${uuid}\n`);
    });
  }

  stop(): void {
    this.child.stdin!.end();
  }
}

interface Pool {
  /** mdev type dir with exactly one instance available. */
  typeDir: string;
  /** The errno a create on the exhausted type gives. */
  exhausted: string;
}

describe('racing for the last instance through FUSE', () => {
  let lab: ServedLab;
  let racers: Racer[] = [];
  after(async () => {
    for (const r of racers) r.stop();
    await lab?.close();
  });
  before(async () => {
    if (!FUSE_NEEDS.root || !FUSE_NEEDS.fuse) return;
    // mtty counts in its driver (ENOSPC); mdpy leaves counting to the core (EUSERS).
    lab = await serveLab([
      '--profile',
      writeProfile([
        { driver: 'mtty', options: { ports: 1 } },
        { driver: 'mdpy', options: { count: 1 } },
      ]),
    ]);
    racers = Array.from({ length: RACERS }, () => new Racer());
  });

  it(`lets exactly one of ${RACERS} processes have it, ${TRIALS} times`, async (t) => {
    if (!requires(t, FUSE_NEEDS, 'races processes through a FUSE mount')) return;
    const types = (parent: string) =>
      path.join(lab.sys, 'class/mdev_bus', parent, 'mdev_supported_types');
    const pools: Pool[] = [
      { typeDir: path.join(types('mtty'), 'mtty-1'), exhausted: 'ENOSPC' },
      {
        typeDir: path.join(types('mdpy'), fs.readdirSync(types('mdpy')).sort()[0]!),
        exhausted: 'EUSERS',
      },
    ];
    const watchers = pools.map((p) =>
      spawn(process.execPath, ['-e', WATCHER, path.join(p.typeDir, 'available_instances')], {
        stdio: ['pipe', 'pipe', 'inherit'],
      }),
    );
    let n = 1000;
    for (let trial = 0; trial < TRIALS; trial++) {
      const pool = pools[trial % pools.length]!;
      const avail = path.join(pool.typeDir, 'available_instances');
      assert.equal(fs.readFileSync(avail, 'utf8'), '1\n', `trial ${trial}: one left`);
      const uuids = racers.map(() => uuidN(n++));
      const deadline = Date.now() + 15;
      const results = (
        await Promise.all(
          racers.map((r, i) => r.race(deadline, path.join(pool.typeDir, 'create'), uuids[i]!)),
        )
      ).map((r) => (r === 'ok' ? r : (errnoCodeOf(Number(r)) ?? r)));
      const winners = results.flatMap((res, i) => (res === 'ok' ? [uuids[i]!] : []));
      assert.equal(winners.length, 1, `trial ${trial}: exactly one winner (${results.join(' ')})`);
      assert.deepEqual(
        results.filter((r) => r !== 'ok'),
        Array<string>(RACERS - 1).fill(pool.exhausted),
        `trial ${trial}: the losers get ${pool.exhausted}`,
      );
      assert.equal(fs.readFileSync(avail, 'utf8'), '0\n');
      assert.deepEqual(fs.readdirSync(path.join(pool.typeDir, 'devices')), winners);
      fs.writeFileSync(path.join(lab.sys, 'bus/mdev/devices', winners[0]!, 'remove'), '1');
    }
    const seen = await Promise.all(
      watchers.map(
        (w) =>
          new Promise<string[]>((resolve) => {
            let out = '';
            w.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
            w.once('exit', () => resolve(JSON.parse(out) as string[]));
            w.stdin!.end();
          }),
      ),
    );
    for (const values of seen) {
      assert.deepEqual(
        values.sort(),
        ['0\n', '1\n'],
        'available_instances only ever showed 1 and 0, never less',
      );
    }
  });
});
