// The agent's event stream (server-sent events): the "live" pill, the
// event log, and a (coalesced) reload for every change. The kinds to
// listen for are the server's own list, bundled from src/agent.
import { RESET_EVENT, STREAM_EVENT_KINDS, type StreamEventData } from '../../agent/event-kinds.js';
import { API } from './api.js';
import { byId, h } from './dom.js';
import { scheduleReload } from './store.js';
import { token } from './token.js';

/** Entries kept in the event log. */
const LOG_ENTRIES = 50;

/** A log line for a frame: "12:34:56 device-created mdpy mdpy-hd <uuid>". */
function logLine(kind: string, data: string): string {
  if (kind === RESET_EVENT) return `${kind} (events were missed: reloaded)`;
  let e: StreamEventData;
  try {
    e = JSON.parse(data) as StreamEventData;
  } catch {
    return kind; // every frame carries JSON today; log the kind regardless
  }
  const what = [
    'parent' in e ? e.parent : undefined,
    'type' in e ? e.type : undefined,
    'uuid' in e ? e.uuid : undefined,
  ].filter((s) => s !== undefined && s !== '');
  return [e.time.slice(11, 19), kind, ...what].join(' ');
}

export function connectEvents(): EventSource {
  const live = byId('live', HTMLElement);
  const log = byId('events', HTMLOListElement);
  // Beyond loopback the agent wants the token for reads too, and EventSource
  // cannot send headers: only then does the token go into the stream's URL.
  const loopback = /^(localhost|127\.[0-9.]+|\[::1\])$/.test(location.hostname);
  const query = !loopback && token() !== '' ? `?access_token=${encodeURIComponent(token())}` : '';
  const es = new EventSource(`${API}/events${query}`);
  es.onopen = () => {
    live.textContent = 'live';
    live.className = 'pill on';
  };
  es.onerror = () => {
    live.textContent = 'reconnecting';
    live.className = 'pill off';
  };
  for (const kind of STREAM_EVENT_KINDS) {
    es.addEventListener(kind, (msg: MessageEvent<string>) => {
      log.prepend(h('li', {}, logLine(kind, msg.data)));
      while (log.childElementCount > LOG_ENTRIES) log.lastElementChild?.remove();
      scheduleReload(true);
    });
  }
  return es;
}
