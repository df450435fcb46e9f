/**
 * Issue 8's figures for the host agent, against a running `mdevkit agent`
 * (bin/mdevkit, the built bundle) on a lab with 10k active devices:
 *
 *  - GET /api/v1/devices with 100 concurrent connections (autocannon):
 *    p50, p99 and requests/s, beside GET /healthz on the same agent as the
 *    baseline (the cost of HTTP itself). Goal: p99 <= 20 ms. Measured for
 *    the default page (100 devices), a page of 1000 and the whole list in
 *    one response (limit=10000), whose cost is mostly bytes (1.2 MB each);
 *  - the event stream under creates: devices created through the API at a
 *    paced 1000/s, then as fast as the API allows, with one SSE client
 *    counting `device-created` events and the delay from each create's
 *    response to its event. Goal: keeps up with 1000 creates/s.
 *
 * Run: npm run bench agent
 */
import autocannon from 'autocannon';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';

const DEVICES = 10_000;
const PACED_RATE = 1000;
const PACED_SECONDS = 3;
const CONNECTIONS = 100;
const DURATION_S = Number(process.env['BENCH_DURATION'] ?? 8);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdevkit-agent-bench-'));
const profile = path.join(dir, 'profile.json');
// mtty with a pool large enough for every single-port device the bench makes.
fs.writeFileSync(
  profile,
  JSON.stringify({ name: 'bench', devices: [{ driver: 'mtty', options: { ports: 50_000 } }] }),
);

const bin = new URL('../bin/mdevkit', import.meta.url).pathname;
const child = spawn(
  process.execPath,
  [
    bin,
    'agent',
    '--profile',
    profile,
    '--listen',
    '127.0.0.1:0',
    '--state-dir',
    path.join(dir, 'state'),
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
let banner = '';
const base = await new Promise<string>((resolve, reject) => {
  child.stdout!.on('data', (d: Buffer) => {
    banner += d;
    const m = /^listening on (http\S+?)\/?$/m.exec(banner);
    if (m) resolve(m[1]!);
  });
  child.once('exit', (code) => reject(new Error(`agent exited with ${code}`)));
});
const token = fs.readFileSync(path.join(dir, 'state', 'agent-token'), 'utf8').trim();
// Enough sockets that a slow moment of the agent does not throttle the paced phase.
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function post(pathName: string, body: unknown): Promise<number> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${base}${pathName}`,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(data),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

function uuid(i: number): string {
  const h = i.toString(16).padStart(12, '0');
  return `${h.slice(0, 8)}-0000-4000-8000-${h}`;
}

// ---- the event stream -------------------------------------------------------------
const arrived = new Map<string, number>();
const sse = http.get(`${base}/api/v1/events`, (res) => {
  res.setEncoding('utf8');
  let buf = '';
  res.on('data', (chunk: string) => {
    const now = performance.now();
    buf += chunk;
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const frame = buf.slice(0, end);
      buf = buf.slice(end + 2);
      if (!frame.includes('event: device-created')) continue;
      const m = /"uuid":"([0-9a-f-]{36})"/.exec(frame);
      if (m) arrived.set(m[1]!, now);
    }
  });
});
await new Promise((r) => setTimeout(r, 200));

const responded = new Map<string, number>();
async function create(i: number): Promise<void> {
  const u = uuid(i);
  const status = await post('/api/v1/devices', {
    uuid: u,
    parent: 'mtty',
    type: 'mtty-1',
    define: false,
    activate: true,
  });
  if (status !== 201) throw new Error(`create ${u}: HTTP ${status}`);
  responded.set(u, performance.now());
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function eventPhase(label: string, from: number, to: number, rate: number | undefined) {
  const t0 = performance.now();
  const pending: Promise<void>[] = [];
  if (rate === undefined) {
    // As fast as the API takes them: 32 requests in flight.
    let next = from;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < to) await create(next++);
      }),
    );
  } else {
    // Paced: every 5 ms, send what the rate says is due by now (timers are
    // too coarse to space single requests a millisecond apart).
    let next = from;
    while (next < to) {
      const due = Math.min(to, from + Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
      while (next < due) pending.push(create(next++));
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(pending);
  }
  const createdS = (performance.now() - t0) / 1000;
  const deadline = performance.now() + 5000;
  const want = Array.from({ length: to - from }, (_, k) => uuid(from + k));
  while (want.some((u) => !arrived.has(u)) && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const lags = want
    .filter((u) => arrived.has(u))
    .map((u) => Math.max(0, arrived.get(u)! - responded.get(u)!))
    .sort((a, b) => a - b);
  return {
    label,
    creates: to - from,
    createsPerS: (to - from) / createdS,
    events: lags.length,
    lagP50: pct(lags, 50),
    lagP99: pct(lags, 99),
    lagMax: lags[lags.length - 1] ?? NaN,
  };
}

// Unpaced first, so the paced phase meets a warmed-up agent (JIT, heap).
const flatCount = DEVICES - PACED_RATE * PACED_SECONDS;
const flat = await eventPhase('as fast as possible', 0, flatCount, undefined);
const paced = await eventPhase(`paced ${PACED_RATE}/s`, flatCount, DEVICES, PACED_RATE);

// ---- GET load ----------------------------------------------------------------------
async function load(label: string, pathName: string) {
  const r = await autocannon({
    url: `${base}${pathName}`,
    connections: CONNECTIONS,
    duration: DURATION_S,
  });
  if (r.non2xx > 0 || r.errors > 0)
    throw new Error(`${label}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return {
    label,
    p50: r.latency.p50,
    p99: r.latency.p99,
    rps: r.requests.average,
    mbPerS: r.throughput.average / 1e6,
  };
}

const listing = JSON.parse(await (await fetch(`${base}/api/v1/devices?limit=1`)).text()) as {
  total: number;
};
if (listing.total !== DEVICES)
  throw new Error(`expected ${DEVICES} devices, the agent lists ${listing.total}`);

const loads = [
  await load('GET /healthz (baseline)', '/healthz'),
  await load('GET /api/v1/devices (page of 100)', '/api/v1/devices'),
  await load('GET /api/v1/devices?limit=1000', '/api/v1/devices?limit=1000'),
  await load('GET /api/v1/devices?limit=10000 (all)', '/api/v1/devices?limit=10000'),
];

sse.destroy();
agent.destroy();
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
fs.rmSync(dir, { recursive: true, force: true });

const load1 = os.loadavg()[0]!;
const f = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : '-');
console.log(
  `agent on a lab with ${DEVICES} active devices; ${CONNECTIONS} connections, ${DURATION_S} s each (autocannon)`,
);
console.log('');
console.log(
  `${'request'.padEnd(40)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'req/s'.padStart(9)} ${'MB/s'.padStart(8)}`,
);
for (const l of loads) {
  console.log(
    `${l.label.padEnd(40)} ${f(l.p50).padStart(8)} ${f(l.p99).padStart(8)} ${f(l.rps, 0).padStart(9)} ${f(l.mbPerS).padStart(8)}`,
  );
}
console.log('goal: p99 <= 20 ms on GET devices');
console.log('');
console.log(
  "event stream (one SSE client), delay from a create's HTTP response to its device-created event:",
);
console.log(
  `${'phase'.padEnd(22)} ${'creates'.padStart(8)} ${'creates/s'.padStart(10)} ${'events'.padStart(7)} ${'lag p50'.padStart(8)} ${'lag p99'.padStart(8)} ${'lag max'.padStart(8)}`,
);
for (const p of [flat, paced]) {
  console.log(
    `${p.label.padEnd(22)} ${String(p.creates).padStart(8)} ${f(p.createsPerS, 0).padStart(10)} ${String(p.events).padStart(7)} ${f(p.lagP50).padStart(8)} ${f(p.lagP99).padStart(8)} ${f(p.lagMax).padStart(8)}`,
  );
}
console.log('goal: every event delivered while creating 1000/s');
console.log(
  `(machine: ${os.cpus().length} CPUs, load average ${load1.toFixed(1)} at the end — other work on the machine skews every figure)`,
);
