// The Q&A connection: a WebRTC connection to /qa/{event} carrying only the `qa` data channel.
// Keeps the board as the server describes it (snapshot, then deltas), remembers this browser's
// seat so its questions and votes stay its own across reconnects, and reconnects with backoff.
import { HttpError, leave, negotiate } from "./webrtchttp.js";

const MAX_DELAY_MS = 5000;

export class QaConnection {
  constructor(event, token, handlers = {}) {
    this.event = event;
    this.token = token;
    this.handlers = handlers;
    this.questions = new Map();
    this.slots = {};
    this.layout = { mode: "single", feeds: [] };
    this.you = null;
    this.limits = null;
    this.state = "connecting";
    this._pending = new Map();
    this._building = null;
    this._refs = 0;
    this._delay = 1000;
    this._stopped = false;
    this._pc = null;
    this._channel = null;
    this._session = null;
    this._seatKey = `orcast.seat.${event}`;
  }

  start() {
    this._connect();
    window.addEventListener("pagehide", () => this.stop());
    return this;
  }

  stop() {
    this._stopped = true;
    this._teardown();
  }

  // The server closed this page for good (revoked, kicked): it has ended the session itself,
  // so close without a DELETE (which the dead link would get a 401 for).
  drop() {
    this._session = null;
    this.stop();
  }

  // The server is reachable again: do not wait out the backoff.
  retryNow() {
    const lost = this._pc && this._pc.connectionState !== "connected" && this.state !== "connecting";
    if (!this._stopped && (this.state === "reconnecting" || lost)) {
      clearTimeout(this._timer);
      this._delay = 1000;
      this._connect();
    }
  }

  _setState(state, detail = "") {
    this.state = state;
    this.handlers.onState?.(state, detail);
  }

  async _connect() {
    if (this._stopped) return;
    this._teardown();
    const pc = new RTCPeerConnection();
    const channel = pc.createDataChannel("qa");
    this._pc = pc;
    this._channel = channel;
    this._setState("connecting");
    channel.onmessage = (message) => this._onMessage(message.data);
    // closed or failed: the server has dropped the session (or will), so no DELETE for it —
    // after a revocation that DELETE would only be refused
    channel.onclose = () => pc === this._pc && this._lost("the Q&A connection closed");
    pc.onconnectionstatechange = () => {
      if (pc === this._pc && (pc.connectionState === "failed" || pc.connectionState === "closed")) {
        this._lost("the Q&A connection was lost");
      } else if (pc === this._pc && pc.connectionState === "disconnected") {
        setTimeout(() => pc === this._pc && pc.connectionState === "disconnected" &&
          this._retry("the Q&A connection was lost", 0), 3000);
      }
    };
    try {
      this._session = await negotiate(pc, `/qa/${encodeURIComponent(this.event)}`, this.token);
    } catch (error) {
      if (pc !== this._pc) return;
      if (error instanceof HttpError && [401, 403, 404].includes(error.status)) {
        this._stopped = true;
        this._teardown();
        this._setState("ended", error.message);
        this.handlers.onEnded?.(error.message);
        return;
      }
      this._retry(error.message, error.retryAfter ? error.retryAfter * 1000 : undefined);
    }
  }

  _lost(reason) {
    this._session = null;
    this._retry(reason);
  }

  _retry(reason, delay) {
    if (this._stopped) return;
    this._teardown();
    const wait = delay ?? this._delay;
    this._delay = Math.min(this._delay * 2, MAX_DELAY_MS);
    this._setState("reconnecting", reason);
    for (const { reject } of this._pending.values()) reject(new Error("the Q&A connection was lost; try again"));
    this._pending.clear();
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._connect(), wait);
  }

  _teardown() {
    if (this._channel) this._channel.onclose = null;
    leave(this._pc, this._session, this.token);
    this._pc = null;
    this._channel = null;
    this._session = null;
  }

  _onMessage(raw) {
    let m;
    try {
      m = JSON.parse(raw);
    } catch {
      return;
    }
    if (m.type === "welcome") {
      this.you = m.you;
      this.limits = m.limits;
      const saved = localStorage.getItem(this._seatKey);
      if (saved && saved !== m.seat) {
        this._send({ type: "hello", seat: saved }).catch(() => localStorage.setItem(this._seatKey, m.seat));
      } else {
        localStorage.setItem(this._seatKey, m.seat);
      }
      this.handlers.onWelcome?.(m);
    } else if (m.type === "snapshot") {
      if (m.part === 1) this._building = new Map();
      for (const q of m.questions) this._building?.set(q.id, q);
      if (m.part === m.parts && this._building) {
        this.questions = this._building;
        this._building = null;
        this.slots = m.on_air;
        this.layout = m.layout;
        this._delay = 1000;
        this._setState("connected");
        this._changed();
        this.handlers.onSlots?.(this.slots);
        this.handlers.onLayout?.(this.layout);
      }
    } else if (m.type === "question") {
      this.questions.set(m.question.id, m.question);
      this._changed();
    } else if (m.type === "removed") {
      this.questions.delete(m.question);
      this._changed();
    } else if (m.type === "votes") {
      for (const [id, count] of Object.entries(m.votes)) {
        const q = this.questions.get(Number(id));
        if (q) q.votes = count;
      }
      this._changed();
    } else if (m.type === "on_air") {
      this.slots = m.slots;
      this.handlers.onSlots?.(this.slots);
    } else if (m.type === "layout") {
      this.layout = m.layout;
      this.handlers.onLayout?.(this.layout);
    } else if (m.type === "closing" && !m.reconnect) {
      // closed for good by the server (revoked, kicked): no reconnect, no DELETE of its session
      this.drop();
      this._setState("ended", m.reason);
      this.handlers.onEnded?.(m.reason);
    }
    if ((m.type === "ack" || m.type === "error") && this._pending.has(m.ref)) {
      const { resolve, reject } = this._pending.get(m.ref);
      this._pending.delete(m.ref);
      if (m.type === "ack") resolve(m);
      else reject(Object.assign(new Error(m.message), { code: m.code }));
    }
  }

  _changed() {
    this.handlers.onQuestions?.(this.questions);
  }

  _send(message) {
    const channel = this._channel;
    if (!channel || channel.readyState !== "open") {
      return Promise.reject(new Error("the Q&A is reconnecting; try again in a moment"));
    }
    const ref = `${++this._refs}`;
    return new Promise((resolve, reject) => {
      this._pending.set(ref, { resolve, reject });
      channel.send(JSON.stringify({ ...message, ref }));
      setTimeout(() => {
        if (this._pending.delete(ref)) reject(new Error("no answer from the server; try again"));
      }, 10000);
    });
  }

  // ask, vote, approve … : resolves with the ack, rejects with the server's sentence
  request(type, fields = {}) {
    return this._send({ type, ...fields });
  }
}

// Questions in the order a room wants them: pinned, on air, then by votes, then oldest first.
export function byVotes(a, b) {
  return (b.pinned - a.pinned) || ((b.state === "on_air") - (a.state === "on_air")) ||
    (b.votes - a.votes) || (a.created_at - b.created_at);
}

export function byTime(a, b) {
  return a.created_at - b.created_at;
}

// The question a theatre's screen shows: its own slot, else the one on air for every theatre.
export function onAirFor(slots, theatre) {
  return (theatre && slots[theatre]) || slots["*"] || null;
}
