// Plays one feed into a <video> over WHEP and keeps it playing: waits while the feed is not live,
// reconnects with backoff when the network or the server drops, notices a frozen picture.
import { Reconnecting } from "./reconnecting.js";
import { HttpError, negotiate } from "./webrtchttp.js";

const STALL_MS = 2500;

export class FeedPlayer extends Reconnecting {
  // onState(state, text): state is idle, connecting, live, waiting, reconnecting, stalled or ended
  constructor(video, token, { onState, audio = true } = {}) {
    super(token, onState);
    this.video = video;
    this.audio = audio;
    this.path = null;
    this._last = { decoded: 0, at: 0 };
    this._stalledSince = 0;
    this.quality = null;
    this.live = true;  // the page says whether the feed is live (from the event's WebSocket)
  }

  // `live` false: wait without asking the server until setLive(true); `video` false: audio only
  play(path, live = true, video = true) {
    this.live = live;
    if (path === this.path && (this.pc || this.state === "waiting")) return;
    this.path = path;
    this._audioOnly = !video;
    this._delay = 1000;
    this._teardown();
    clearTimeout(this._timer);
    if (!path) this._set("idle", "");
    else if (!live) this._set("waiting", "waiting to go live …");
    else this._connect();
  }

  setLive(live) {
    const was = this.live;
    this.live = live;
    if (live && !was && this.path && !this.pc) {
      clearTimeout(this._timer);
      this._connect();
    }
  }

  stop() {
    this.play(null);
  }

  wanted() {
    return Boolean(this.path);
  }

  _retry(state, text, delay) {
    this._teardown();
    if (!this.live) return this._set("waiting", "waiting to go live …");
    this._set(state, text);
    this._later(delay);
  }

  async _connect() {
    const target = this.path;
    if (!target) return;
    const pc = new RTCPeerConnection();
    this.pc = pc;
    if (!this._audioOnly) pc.addTransceiver("video", { direction: "recvonly" });
    if (this.audio || this._audioOnly) pc.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    this.video.srcObject = stream;
    pc.ontrack = (e) => stream.addTrack(e.track);
    this._watch(pc, () => this._set("live", ""),
      () => this._retry("reconnecting", "connection lost, reconnecting …", this._backoff()));
    this._set("connecting", "connecting …");
    try {
      this._session = await negotiate(pc, `/whep/${target}`, this.token);
    } catch (error) {
      if (pc !== this.pc) return;
      if (error instanceof HttpError && [401, 403].includes(error.status)) {
        this._teardown();
        this._set("ended", error.message);
      } else if (error instanceof HttpError && error.status === 409) {
        this._teardown();
        this._set("waiting", "waiting to go live …");
        // the event's WebSocket says when it goes live; poll slowly in case it does not
        this._later(Math.max(10, error.retryAfter || 2) * 1000);
      } else {
        const delay = error.retryAfter ? error.retryAfter * 1000 : this._backoff();
        this._retry("reconnecting", `${error.message}; retrying in ${Math.round(delay / 1000)} s`, delay);
      }
    }
  }

  // Called about once a second by the page: measures quality and notices a frozen picture.
  async sample() {
    const pc = this.pc;
    if (!pc || pc.connectionState !== "connected") return this.quality = null;
    let video = null;
    let rtt = null;
    for (const s of (await pc.getStats()).values()) {
      if (s.type === "inbound-rtp" && s.kind === "video") video = s;
      if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) rtt = s.currentRoundTripTime;
    }
    if (!video) return this.quality = null;
    const now = performance.now();
    const decoded = video.framesDecoded || 0;
    const fps = this._last.at ? ((decoded - this._last.decoded) * 1000) / (now - this._last.at) : 0;
    const buffer = video.jitterBufferEmittedCount ? (video.jitterBufferDelay / video.jitterBufferEmittedCount) * 1000 : 0;
    if (decoded === this._last.decoded && this._last.at) {
      this._stalledSince = this._stalledSince || now;
      if (now - this._stalledSince > STALL_MS && this.state === "live") this._set("stalled", "picture frozen, reconnecting …");
    } else {
      this._stalledSince = 0;
      if (this.state === "stalled") this._set("live", "");
    }
    this._last = { decoded, at: now };
    // glass-to-glass is not measurable here; network RTT/2 + jitter buffer is the part we add
    const latency = (rtt !== null ? (rtt * 1000) / 2 : 0) + buffer;
    this.quality = {
      width: video.frameWidth, height: video.frameHeight, fps, decoded, lost: video.packetsLost || 0,
      latencyMs: latency, grade: latency < 300 && fps > 20 ? "good" : latency < 800 && fps > 10 ? "fair" : "poor",
    };
    return this.quality;
  }
}
