// @ts-check
// The event's WebSocket: authenticates with the link's token, reports live feeds, and says
// when the link stops working. Reconnects with backoff, except when the server refused the link.

const FATAL = new Set([4400, 4401, 4403, 4404]);

/**
 * @typedef {object} EventSocketHandlers
 * @property {(hello: any) => void} [onHello]
 * @property {(streams: any[]) => void} [onStreams]
 * @property {(reason: string, kind: string) => void} [onClosing]
 * @property {(state: string, again?: boolean) => void} [onState]
 * @property {(sessions: string[]) => void} [onMediaLost] the server lost these media sessions (a worker died)
 * @property {(data: any) => void} [onMessage] anything else (drawings: lib/drawtool.js)
 */

/** @param {string} event @param {string} token @param {EventSocketHandlers} handlers */
export function openEventSocket(event, token, { onHello, onStreams, onClosing, onState, onMediaLost, onMessage }) {
  let socket = null;
  let delay = 1000;
  let stopped = false;
  let reconnects = -1;

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
        delay = 1000;
        reconnects += 1;
        onState?.("connected", again);
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
