import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import { HOST_EVENT_KINDS, RESET_EVENT, type StreamEventData } from '../event-kinds.js';
import type { StampedEvent } from '../hub.js';
import { route, type Route } from '../route.js';
import type { AgentContext } from '../server.js';

/** A comment line now and then keeps proxies and idle timers from closing a quiet stream. */
const HEARTBEAT_MS = 15_000;

function frame(e: StampedEvent): string {
  const data: StreamEventData = { ...e.event, time: e.time };
  return `id: ${e.id}\nevent: ${e.event.kind}\ndata: ${JSON.stringify(data)}\n\n`;
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
        let pending = '';
        let flushScheduled = false;
        const flush = (): void => {
          flushScheduled = false;
          if (pending === '' || res.destroyed) return;
          res.write(pending);
          pending = '';
        };
        const push = (text: string): void => {
          pending += text;
          if (!flushScheduled) {
            flushScheduled = true;
            setImmediate(flush);
          }
        };

        push(`retry: 2000\n: mdevkit agent, last event ${ctx.hub.lastId}\n\n`);
        if (last !== undefined) {
          const missed = ctx.hub.since(last);
          if (missed === undefined)
            push(`id: ${ctx.hub.lastId}\nevent: ${RESET_EVENT}\ndata: {}\n\n`);
          else for (const e of missed) push(frame(e));
        }
        const off = ctx.hub.subscribe((e) => push(frame(e)));
        ctx.metrics.streamClients++;
        const heartbeat = setInterval(() => push(': keep-alive\n\n'), HEARTBEAT_MS);
        heartbeat.unref();
        const done = (): void => {
          off();
          clearInterval(heartbeat);
          ctx.metrics.streamClients--;
        };
        res.once('close', done);
        return reply;
      },
    }),
  ];
}
