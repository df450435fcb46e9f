import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as nodePath from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { STREAM_BUFFER_LIMIT } from '../../src/agent/routes/events.js';
import { uuidN } from '../support/labs.js';
import { tmpDir } from '../support/tmp.js';
import { labAgent, type LabAgent } from '../agent/support.js';

/*
 * Slow event-stream readers: fifty clients open the stream and never read
 * while the host changes a lot. Without a bound the agent buffered every
 * frame for every client (111 MB → 431 MB in 60 s, issue 12). Each client
 * may have STREAM_BUFFER_LIMIT bytes waiting; past that it is dropped, and
 * reconnects with Last-Event-ID.
 *
 * The figures: the agent listens on a unix socket, whose kernel buffer is
 * small (about 200 KiB), so what a client does not read stays in the
 * agent's memory — the worst case. Each client is sent PER_CLIENT bytes of
 * frames (fifty times that in all); what the agent holds (V8 heap +
 * external buffers, sampled after a full GC every 5000 events) may grow by
 * at most the stated bound.
 */

const CLIENTS = 50;
const PER_CLIENT = 8 * 1024 * 1024;
/** The stated bound: every client's buffer full, plus 32 MiB for the rest of the agent. */
const BOUND = CLIENTS * STREAM_BUFFER_LIMIT + 32 * 1024 * 1024;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const used = (): number => {
  const m = process.memoryUsage();
  return m.heapUsed + m.external + m.arrayBuffers;
};
const MiB = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;

describe('slow event-stream readers: memory stays within a stated bound', () => {
  const stateDir = tmpDir('mdevkit-sec-sse-');
  const sock = nodePath.join(stateDir, 'agent.sock');
  let la: LabAgent;
  before(async () => {
    la = await labAgent(stateDir);
    await la.agent.app.listen({ path: sock });
  });
  after(() => la.agent.close());

  /** A client that sends the request and then never reads; resolves once the stream has begun. */
  const stalled = (headers = ''): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const s = net.connect(sock, () => {
        s.write(`GET /api/v1/events HTTP/1.1\r\nHost: localhost\r\n${headers}\r\n`);
      });
      s.once('data', () => {
        s.pause(); // from now on, read nothing
        resolve(s);
      });
      s.once('error', reject);
    });

  test(`${CLIENTS} clients that never read: growth within ${MiB(BOUND)}, the laggards dropped`, async (t) => {
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => stalled()));
    assert.equal(la.agent.context.metrics.streamClients, CLIENTS);
    gc();
    const baseline = used();
    let peak = 0;
    let peakBuffered = 0;
    const hub = la.agent.context.hub;
    const sample = { kind: 'device-defined', uuid: uuidN(0), parent: 'mdpy' } as const;
    const frameBytes = 110 + JSON.stringify(sample).length;
    const events = Math.ceil(PER_CLIENT / frameBytes);
    for (let i = 0; i < events; i += 500) {
      for (let j = i; j < Math.min(events, i + 500); j++) {
        hub.publish({ kind: 'device-defined', uuid: uuidN(j), parent: 'mdpy' });
      }
      await new Promise((r) => setImmediate(r));
      peakBuffered = Math.max(peakBuffered, la.agent.context.metrics.streamBufferedBytes());
      if (i % 5000 === 0) {
        gc(); // what the agent holds, not garbage not yet collected
        peak = Math.max(peak, used() - baseline);
      }
    }
    await new Promise((r) => setTimeout(r, 50));
    gc();
    peak = Math.max(peak, used() - baseline);
    const dropped = la.agent.context.metrics.streamDropped;
    t.diagnostic(
      `${CLIENTS} stalled clients, ${events} events (${MiB(events * frameBytes)} per client): peak growth ${MiB(peak)} (bound ${MiB(BOUND)}), peak buffered ${MiB(peakBuffered)}, ${dropped} dropped`,
    );
    assert.ok(
      peakBuffered <= CLIENTS * (STREAM_BUFFER_LIMIT + 4096),
      `buffered ${MiB(peakBuffered)}`,
    );
    assert.ok(peak <= BOUND, `memory grew ${MiB(peak)}, more than ${MiB(BOUND)}`);
    assert.equal(dropped, CLIENTS, 'every client that never read was dropped');
    assert.equal(la.agent.context.metrics.streamClients, 0);
    gc();
    assert.ok(
      used() - baseline < 32 * 1024 * 1024,
      `memory came back down: ${MiB(used() - baseline)}`,
    );
    for (const c of clients) c.destroy();
  });

  test('a dropped client reconnects with Last-Event-ID and is replayed what it missed, or told to reload', async () => {
    const c = await stalled();
    const hub = la.agent.context.hub;
    const first = hub.lastId + 1;
    for (let j = 0; j < Math.ceil((2 * STREAM_BUFFER_LIMIT) / 200); j++) {
      hub.publish({ kind: 'device-undefined', uuid: uuidN(j), parent: 'mdpy' });
      if (j % 500 === 0) await new Promise((r) => setImmediate(r));
    }
    // What reached the client before the agent let go of it, read now.
    const got = await new Promise<string>((resolve) => {
      let text = '';
      c.on('data', (d: Buffer) => (text += d.toString('latin1')));
      c.on('close', () => resolve(text));
      c.resume();
    });
    const ids = [...got.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    assert.ok(ids.length > 0 && ids[0] === first, 'it got the first events');
    const lastSeen = ids[ids.length - 1]!;
    assert.ok(lastSeen < hub.lastId, 'and not the rest: it was dropped');
    // Reconnect as EventSource does, reading this time.
    const resumed = await new Promise<string>((resolve, reject) => {
      const s = net.connect(sock, () =>
        s.write(
          `GET /api/v1/events HTTP/1.1\r\nHost: localhost\r\nLast-Event-ID: ${lastSeen}\r\n\r\n`,
        ),
      );
      let text = '';
      s.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if (/event: reset/.test(text) || new RegExp(`^id: ${hub.lastId}$`, 'm').test(text)) {
          s.destroy();
          resolve(text);
        }
      });
      s.on('error', reject);
    });
    if (/event: reset/.test(resumed)) return; // missed more than a replay may carry: reload
    const replayed = [...resumed.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    assert.equal(replayed[0], lastSeen + 1, 'the replay starts right after what it saw');
  });
});
