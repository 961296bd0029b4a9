// @ts-check
// What a WHIP, WHEP or Q&A connection that must stay up has in common: its state for the page, the
// session URL to DELETE, backoff, and telling a lost connection from a slow one.
import { leave } from "./webrtchttp.js";

const MAX_DELAY_MS = 5000;
const SILENCE_MS = 3000;  // ICE calls a dead server "failed" only after ~30 s
const STALE_CONNECTING_MS = 3000;  // an attempt older than this when the server comes back is given up

export class Reconnecting {
  /** @param {string} token @param {(state: string, text: string) => void} [onState] */
  constructor(token, onState) {
    this.token = token;
    this.onState = onState || (() => {});
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    this.state = "idle";
    /** @type {string | null} the session URL to DELETE */
    this._session = null;
    this._delay = 1000;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._timer = null;
    this._connectingSince = 0;
  }

  // Subclasses: wanted() says whether the connection should exist; _connect() makes it;
  // stop() ends it for good.
  wanted() {
    return false;
  }

  /** @returns {void | Promise<void>} */
  _connect() {
    throw new Error("a Reconnecting connection implements _connect()");
  }

  stop() {
    throw new Error("a Reconnecting connection implements stop()");
  }

  // The server closed this page for good (revoked, kicked): it has ended the session itself,
  // so close without a DELETE (which the dead link would get a 401 for). Subclasses stop().
  drop() {
    this._session = null;
    this.stop();
  }

  // The server is reachable again (its WebSocket is back): do not wait out the backoff.
  // An attempt still "connecting" for a while was made to the server that went away (its ICE
  // would take half a minute to fail): it is given up too; a fresh one is left to finish.
  // `restarted`: the server (in a cluster, that node) came back as a new process, so every
  // session it held is gone; a connection whose session was there comes back now instead of
  // when ICE notices (~10 s for a publisher: the OR's picture).
  retryNow(restarted = null) {
    if (restarted && this._session && this.wanted() &&
        (!this._session.includes("~") || this._session.endsWith(`~${restarted}`))) {
      this._session = null;
      this._reconnectNow();
      return;
    }
    const stale = this.state === "connecting" && Date.now() - this._connectingSince > STALE_CONNECTING_MS;
    const lost = this.pc && this.pc.connectionState !== "connected" && (this.state !== "connecting" || stale);
    if (this.wanted() && (lost || (this._timer && ["reconnecting", "stalled"].includes(this.state)))) {
      this._reconnectNow();
    }
  }

  // The server says these sessions are gone (the process that held them died): if this
  // connection's is one, come back now, without a DELETE the server could only refuse.
  /** @param {string[]} ids */
  sessionsLost(ids) {
    // in a cluster a session URL ends in "{id}~{node}"
    const mine = this._session && ids.some((id) => this._session.endsWith(`/${id}`) || this._session.includes(`/${id}~`));
    if (!mine || !this.wanted()) return;
    this._session = null;
    this._reconnectNow();
  }

  _reconnectNow() {
    clearTimeout(this._timer);
    this._delay = 1000;
    this._teardown();
    this._connect();
  }

  _set(state, text) {
    if (state === "connecting" && this.state !== "connecting") this._connectingSince = Date.now();
    this.state = state;
    this.onState(state, text);
  }

  _teardown() {
    leave(this.pc, this._session, this.token);
    this.pc = null;
    this._session = null;
  }

  _backoff() {
    const delay = this._delay;
    this._delay = Math.min(this._delay * 2, MAX_DELAY_MS);
    return delay;
  }

  _later(delay) {
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this.wanted() && this._connect(), delay);
  }

  // Follows `pc`: `onUp` when connected, `onLost` when it failed, closed or went silent.
  _watch(pc, onUp, onLost) {
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      if (pc.connectionState === "connected") {
        this._delay = 1000;
        onUp();
      } else if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        this._session = null;  // the server dropped it (or will): a DELETE could only be refused
        onLost();
      } else if (pc.connectionState === "disconnected") {
        setTimeout(() => pc === this.pc && pc.connectionState === "disconnected" && onLost(), SILENCE_MS);
      }
    };
  }
}
