// @ts-check
// Sends a MediaStream as one feed over WHIP and keeps it on air: reconnects with backoff when
// the network or the server drops, until stop() is called.
import { Reconnecting } from "./reconnecting.js";
import { HttpError, negotiate } from "./webrtchttp.js";

export class FeedPublisher extends Reconnecting {
  // onState(state, text): state is idle, connecting, live, reconnecting, failed or ended
  /** @param {string} token @param {{onState?: (state: string, text: string) => void}} [options] */
  constructor(token, { onState } = {}) {
    super(token, onState);
    this.path = null;
    this.stream = null;
    this.kbps = 0;
    this._wanted = false;
    this._last = { bytes: 0, at: 0 };
  }

  start(path, stream, kbps) {
    this.path = path;
    this.stream = stream;
    this.kbps = kbps;
    this._wanted = true;
    this._delay = 1000;
    this._connect();
  }

  stop() {
    this._wanted = false;
    clearTimeout(this._timer);
    this._teardown();
    this._set("idle", "");
  }

  wanted() {
    return this._wanted;
  }

  _retry(text, delay) {
    this._teardown();
    if (!this._wanted) return;
    const wait = delay ?? this._backoff();
    this._set("reconnecting", `${text}; retrying in ${Math.round(wait / 1000)} s`);
    this._later(wait);
  }

  async _connect() {
    this._teardown();
    const pc = new RTCPeerConnection();
    this.pc = pc;
    for (const track of this.stream.getTracks()) {
      const sender = pc.addTransceiver(track, { direction: "sendonly" }).sender;
      if (track.kind === "video") {
        const params = sender.getParameters();
        if (this.kbps) params.encodings = [{ maxBitrate: this.kbps * 1000 }];
        // surgery needs detail: under congestion drop frames, not resolution (each resolution
        // change would also start a new recording segment)
        params.degradationPreference = "maintain-resolution";
        sender.setParameters(params).catch(() => {});
      }
    }
    this._watch(pc, () => this._set("live", ""), () => this._retry("connection lost", 0));
    this._set("connecting", "connecting …");
    try {
      this._session = await negotiate(pc, `/whip/${this.path}`, this.token);
    } catch (error) {
      if (pc !== this.pc) return;
      if (error instanceof HttpError && [400, 401, 403, 404, 415, 422].includes(error.status)) {
        // the server refused this feed: retrying would not help; say why
        this._wanted = false;
        this._teardown();
        this._set(error.status === 401 ? "ended" : "failed", error.message);
      } else {
        this._retry(error.message, error.retryAfter ? error.retryAfter * 1000 : undefined);
      }
    }
  }

  // bitrate, fps, loss and RTT of the video being sent (once a second from the page)
  async sample() {
    const pc = this.pc;
    if (!pc || pc.connectionState !== "connected") return null;
    let out = null;
    let remote = null;
    for (const s of (await pc.getStats()).values()) {
      if (s.type === "outbound-rtp" && s.kind === "video") out = s;
      if (s.type === "remote-inbound-rtp" && s.kind === "video") remote = s;
    }
    if (!out) return null;
    const now = performance.now();
    const kbps = this._last.at ? ((out.bytesSent - this._last.bytes) * 8) / (now - this._last.at) : 0;
    this._last = { bytes: out.bytesSent, at: now };
    return {
      kbps, fps: out.framesPerSecond || 0, width: out.frameWidth, height: out.frameHeight,
      loss: remote?.fractionLost ?? 0, rttMs: remote?.roundTripTime !== undefined ? remote.roundTripTime * 1000 : null,
      limitation: out.qualityLimitationReason || "none",
    };
  }
}
