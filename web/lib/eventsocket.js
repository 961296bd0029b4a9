// @ts-check
// The event's WebSocket: authenticates with the link's token, reports live feeds, and says
// when the link stops working. Reconnects with backoff, except when the server refused the link.

const FATAL = new Set([4400, 4401, 4403, 4404]);

/**
 * @typedef {object} EventSocketHandlers
 * @property {(hello: any) => void} [onHello]
 * @property {(streams: any[]) => void} [onStreams]
 * @property {(reason: string, kind: string) => void} [onClosing]
 * @property {(state: string, again?: boolean, restarted?: string | null) => void} [onState] `restarted`:
 *   the node (server) whose hello this is came back as a new process: its media sessions are gone
 * @property {(sessions: string[]) => void} [onMediaLost] the server lost these media sessions (a worker died)
 * @property {(data: any) => void} [onMessage] anything else (drawings: lib/drawtool.js)
 */

/** @param {string} event @param {string} token @param {EventSocketHandlers} handlers */
export function openEventSocket(event, token, { onHello, onStreams, onClosing, onState, onMediaLost, onMessage }) {
  let socket = null;
  let delay = 1000;
  let stopped = false;
  let reconnects = -1;
  let server = null;  // the last hello's {node, instance}

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/${encodeURIComponent(event)}`);
    socket.onopen = () => socket.send(JSON.stringify({ type: "auth", token }));
    socket.onmessage = (message) => {
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        return;
      }
      if (data.type === "hello") {
        const again = delay > 1000 || reconnects > 0;
        const next = data.server || null;
        const restarted = next && server && next.node === server.node && next.instance !== server.instance ? next.node : null;
        server = next;
        delay = 1000;
        reconnects += 1;
        onState?.("connected", again || Boolean(restarted), restarted);
        onHello?.(data);
      } else if (data.type === "streams") {
        onStreams?.(data.streams);
      } else if (data.type === "media-lost" && Array.isArray(data.sessions)) {
        onMediaLost?.(data.sessions.filter((id) => typeof id === "string"));
      } else if (data.type === "closing" && data.reconnect) {
        onState?.("reconnecting");  // a server restart: the close that follows is not final
      } else if (data.type === "closing") {
        stopped = true;
        onClosing?.(data.reason, data.kind || "ended");
      } else if (data.type === "error" && data.status && !data.about) {
        stopped = true;
        onClosing?.(data.message, data.status === 401 ? "revoked" : "ended");
      } else {
        onMessage?.(data);
      }
    };
    socket.onclose = (event) => {
      if (stopped || FATAL.has(event.code)) {
        stopped = true;
        return;
      }
      onState?.("reconnecting");
      // short and jittered: a restarted server is found within seconds, not all clients at once
      setTimeout(connect, delay * (0.7 + Math.random() * 0.6));
      delay = Math.min(delay * 2, 3000);
    };
  }

  connect();
  return {
    close() {
      stopped = true;
      socket?.close();
    },
    /** Sent if connected (a drawing made while the server is away is not worth keeping). */
    send(message) {
      if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
    },
  };
}
