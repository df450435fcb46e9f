import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import { HOST_EVENT_KINDS, RESET_EVENT, type StreamEventData } from '../event-kinds.js';
import type { StampedEvent } from '../hub.js';
import { route, type Route } from '../route.js';
import type { AgentContext } from '../server.js';

/** Bytes one client may have waiting (in the agent and its socket's buffer) before it is dropped. */
export const STREAM_BUFFER_LIMIT = 1024 * 1024;

/** A comment line now and then keeps proxies and idle timers from closing a quiet stream. */
const HEARTBEAT_MS = 15_000;

/** Frames by event: built once, however many clients are sent it. */
const frames = new WeakMap<StampedEvent, string>();

function frame(e: StampedEvent): string {
  let text = frames.get(e);
  if (text === undefined) {
    const data: StreamEventData = { ...e.event, time: e.time };
    text = `id: ${e.id}\nevent: ${e.event.kind}\ndata: ${JSON.stringify(data)}\n\n`;
    frames.set(e, text);
  }
  return text;
}

const EventsQuery = z.object({
  since: z.coerce
    .number()
    .int()
    .min(0)
    .optional()
    .describe('replay events after this id (as Last-Event-ID)'),
  access_token: z
    .string()
    .optional()
    .describe('the agent token, where reads need it (EventSource cannot send headers)'),
});

/**
 * GET /api/v1/events: server-sent events. Each event is `event: <kind>`
 * with the JSON object as data and its number as `id`, so a reconnecting
 * EventSource resumes where it left off (Last-Event-ID). When the events it
 * missed have left the agent's ring, it gets one `reset` event: reload.
 * Frames written in one turn of the event loop go out in one write, which
 * keeps a burst of a thousand creates a second cheap for every client.
 */
export function eventRoutes(ctx: AgentContext): Route[] {
  return [
    route({
      method: 'GET',
      path: '/events',
      tag: 'events',
      summary: 'stream of host changes (text/event-stream)',
      description: `Event kinds: ${HOST_EVENT_KINDS.join(', ')}; and \`${RESET_EVENT}\` when events were missed.`,
      query: EventsQuery,
      queryToken: true,
      handler({ query, req, reply }) {
        const lastHeader = req.headers['last-event-id'];
        const lastText = Array.isArray(lastHeader) ? lastHeader[0] : lastHeader;
        const last =
          lastText !== undefined && /^\d+$/.test(lastText) ? Number(lastText) : query.since;

        reply.hijack();
        const res: ServerResponse = reply.raw;
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache, no-transform',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
        });
        // Backpressure: what the socket has not taken yet (res.writableLength)
        // plus what waits here may not pass the client's bound. A client
        // that falls that far behind is disconnected; its EventSource
        // reconnects with Last-Event-ID and is replayed what it missed, or
        // told to reload. Fifty clients that never read therefore hold at
        // most fifty bounds of memory (issue 12; test/security/event-stream).
        const limit = ctx.options.streamBufferLimit ?? STREAM_BUFFER_LIMIT;
        let pending = '';
        let flushScheduled = false;
        let congested = false;
        const flush = (): void => {
          flushScheduled = false;
          if (pending === '' || res.destroyed || congested) return;
          const ok = res.write(pending);
          pending = '';
          if (!ok) {
            congested = true;
            res.once('drain', () => {
              congested = false;
              flush();
            });
          }
        };
        const push = (text: string): void => {
          if (res.destroyed) return;
          pending += text;
          if (res.writableLength + pending.length > limit) {
            pending = '';
            ctx.metrics.streamDropped++;
            res.destroy();
            return;
          }
          if (!flushScheduled) {
            flushScheduled = true;
            setImmediate(flush);
          }
        };
        const buffered = (): number => res.writableLength + pending.length;
        ctx.streams.add(buffered);

        push(`retry: 2000\n: mdevkit agent, last event ${ctx.hub.lastId}\n\n`);
        if (last !== undefined) {
          const missed = ctx.hub.since(last);
          const replay = missed?.map(frame).join('');
          // Missed more than the ring holds, or more than half the bound: reload.
          if (replay === undefined || replay.length > limit / 2)
            push(`id: ${ctx.hub.lastId}\nevent: ${RESET_EVENT}\ndata: {}\n\n`);
          else push(replay);
        }
        const off = ctx.hub.subscribe((e) => push(frame(e)));
        ctx.metrics.streamClients++;
        const heartbeat = setInterval(() => push(': keep-alive\n\n'), HEARTBEAT_MS);
        heartbeat.unref();
        const done = (): void => {
          off();
          clearInterval(heartbeat);
          ctx.streams.delete(buffered);
          ctx.metrics.streamClients--;
        };
        res.once('close', done);
        return reply;
      },
    }),
  ];
}
