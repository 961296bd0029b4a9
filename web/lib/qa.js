// @ts-check
// The Q&A connection: a WebRTC connection to /qa/{event} carrying only the `qa` data channel.
// Keeps the board as the server describes it (snapshot, then deltas), remembers this browser's
// seat so its questions and votes stay its own across reconnects, and reconnects with backoff
// (the base that the WHIP/WHEP clients share).
import { Reconnecting } from "./reconnecting.js";
import { HttpError, negotiate } from "./webrtchttp.js";

const ANSWER_TIMEOUT_MS = 10000;

/**
 * @typedef {object} QaHandlers
 * @property {(state: string, text: string) => void} [onState]
 * @property {(welcome: any) => void} [onWelcome]
 * @property {(questions: Map<number, any>) => void} [onQuestions]
 * @property {(slots: Record<string, any>) => void} [onSlots]
 * @property {(layout: {mode: string, feeds: string[]}) => void} [onLayout]
 * @property {(reason: string) => void} [onEnded]
 */

export class QaConnection extends Reconnecting {
  /** @param {string} event @param {string} token @param {QaHandlers} handlers */
  constructor(event, token, handlers = {}) {
    super(token, handlers.onState);
    this.event = event;
    this.handlers = handlers;
    /** @type {Map<number, any>} */
    this.questions = new Map();
    /** @type {Record<string, any>} */
    this.slots = {};
    this.layout = { mode: "single", feeds: [] };
    this.you = null;
    this.limits = null;
    this.state = "connecting";
    /** @type {Map<string, {resolve: (m: any) => void, reject: (e: Error) => void}>} */
    this._pending = new Map();
    /** @type {Map<number, any> | null} */
    this._building = null;
    this._refs = 0;
    this._wanted = false;
    /** @type {RTCDataChannel | null} */
    this._channel = null;
    this._seatKey = `orcast.seat.${event}`;
  }

  start() {
    this._wanted = true;
    this._connect();
    window.addEventListener("pagehide", () => this.stop());
    return this;
  }

  stop() {
    this._wanted = false;
    clearTimeout(this._timer);
    this._teardown();
  }

  wanted() {
    return this._wanted;
  }

  async _connect() {
    if (!this._wanted) return;
    this._teardown();
    const pc = new RTCPeerConnection();
    const channel = pc.createDataChannel("qa");
    this.pc = pc;
    this._channel = channel;
    this._set("connecting", "");
    channel.onmessage = (message) => this._onMessage(message.data);
    // closed: the server has dropped the session (or will), so no DELETE for it — after a
    // revocation that DELETE would only be refused
    channel.onclose = () => {
      if (pc !== this.pc) return;
      this._session = null;
      this._retry("the Q&A connection closed");
    };
    this._watch(pc, () => {}, () => this._retry("the Q&A connection was lost"));
    try {
      this._session = await negotiate(pc, `/qa/${encodeURIComponent(this.event)}`, this.token);
    } catch (error) {
      if (pc !== this.pc) return;
      if (error instanceof HttpError && [401, 403, 404].includes(error.status)) {
        this._end(error.message);
        return;
      }
      this._retry(error.message, error.retryAfter ? error.retryAfter * 1000 : undefined);
    }
  }

  // Closed for good (a refused link, or the server said so): no reconnect.
  _end(reason) {
    this.stop();
    this._set("ended", reason);
    this.handlers.onEnded?.(reason);
  }

  /** @param {string} reason @param {number} [delay] */
  _retry(reason, delay) {
    this._teardown();
    if (!this._wanted) return;
    this._set("reconnecting", reason);
    this._later(delay ?? this._backoff());
  }

  _teardown() {
    if (this._channel) {
      this._channel.onclose = null;
      this._channel.onmessage = null;
    }
    this._channel = null;
    super._teardown();
    for (const { reject } of this._pending.values()) reject(new Error("the Q&A connection was lost; try again"));
    this._pending.clear();
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
        this._set("connected", "");
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
      this._session = null;
      this._end(m.reason);
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
      }, ANSWER_TIMEOUT_MS);
    });
  }

  // ask, vote, approve … : resolves with the ack, rejects with the server's sentence
  request(type, fields = {}) {
    return this._send({ type, ...fields });
  }
}

// Questions in the order a room wants them: pinned, on air, then by votes, then oldest first.
export function byVotes(a, b) {
  return (b.pinned - a.pinned) || (Number(b.state === "on_air") - Number(a.state === "on_air")) ||
    (b.votes - a.votes) || (a.created_at - b.created_at);
}

export function byTime(a, b) {
  return a.created_at - b.created_at;
}

// The question a theatre's screen shows: its own slot, else the one on air for every theatre.
export function onAirFor(slots, theatre) {
  return (theatre && slots[theatre]) || slots["*"] || null;
}
