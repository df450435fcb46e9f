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

/** What a frame's data says, for the log: "parent type uuid", whatever of it the event has. */
function describe(data: string): { time: string; what: string } {
  let e: Partial<StreamEventData> & { parent?: string; type?: string; uuid?: string } = {};
  try {
    e = JSON.parse(data) as typeof e;
  } catch {
    // a frame without JSON (none is sent today) is still logged by its kind
  }
  return {
    time: (e.time ?? '').slice(11, 19),
    what: [e.parent, e.type, e.uuid].filter((s) => s !== undefined && s !== '').join(' '),
  };
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
      const { time, what } = kind === RESET_EVENT ? { time: '', what: '' } : describe(msg.data);
      log.prepend(h('li', {}, `${time} ${kind} ${what}`));
      while (log.childElementCount > LOG_ENTRIES) log.lastElementChild?.remove();
      scheduleReload(true);
    });
  }
  return es;
}
