// @ts-check
// Plays one feed into a <video> over WHEP and keeps it playing: waits while the feed is not live,
// reconnects with backoff when the network or the server drops, and watches the picture itself:
// a player that has had no new picture (or, audio-only, no sound) for 3 s while its feed is live
// says so and reconnects. The watchdog runs on its own timer, so every page that plays a feed —
// viewer, hall, the console's talk-back — is covered without doing anything.
import { HlsPlayback } from "./hlsplayback.js";
import { Reconnecting } from "./reconnecting.js";
import { HttpError, negotiate } from "./webrtchttp.js";

const NO_PICTURE_MS = 3000;
const NO_PICTURE_HLS_MS = 8000;  // HLS buffers: a short wait for a part is not a frozen player
// WebRTC that has not connected after this long, on a page where it never has: the network blocks
// UDP (and there is no TURN): the player falls back to HLS, which any network that loads the page passes
const FALLBACK_MS = 5000;
const HLS_START_MS = 15000;  // an HLS player that has not started playing by then starts again
// a picture still this long: is this player's session still there? (its server may have died:
// in a cluster the page need not wait for NO_PICTURE_MS, nor ICE's half a minute)
const PROBE_MS = 1000;
const SAMPLE_MS = 1000;

export class FeedPlayer extends Reconnecting {
  // onState(state, text): state is idle, connecting, live, waiting, reconnecting, stalled or ended
  /**
   * @param {HTMLVideoElement} video @param {string} token
   * @param {{onState?: (state: string, text: string) => void, audio?: boolean, choice?: string}} [options]
   */
  constructor(video, token, { onState, audio = true, choice = "auto" } = {}) {
    super(token, onState);
    this.video = video;
    this.audio = audio;
    this.path = null;
    this.quality = null;
    this.choice = choice;      // the rendition asked for: auto, high, low, audio (?quality=), or hls
    this.transport = "webrtc"; // what plays now: webrtc, or hls (asked for, or fallen back to)
    this.fellBack = false;     // WebRTC could not connect on this page: HLS from now on
    this._everConnected = false;
    /** @type {HlsPlayback | null} */
    this._hls = null;
    this._fallbackTimer = null;
    this._hlsSince = 0;
    this.rendition = null;     // what the server says it sends: high, low or audio
    this.why = "";             // … and why (auto: "the connection is slow: …")
    this.live = true;          // the page says whether the feed is live (from the event's WebSocket)
    this.sourceStalled = false; // … and whether its publisher has gone silent (the OR reconnects)
    this.recoveries = 0;       // reconnects made by the watchdog (diagnostics, tests)
    this._last = { decoded: 0, at: 0 };
    this._progress = null;     // {count, at}: when the picture (or sound) last moved on
    this._seenHeight = 0;      // the picture's height when the rendition was last asked for
    this._tick = null;
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
    clearInterval(this._tick);
    this._tick = path ? setInterval(() => this.sample(), SAMPLE_MS) : null;
    if (!path) this._set("idle", "");
    else if (!live) this._set("waiting", "waiting to go live …");
    else this._connect();
  }

  // `stalled`: the feed is live but its publisher sent nothing lately (the server says so)
  setLive(live, stalled = false) {
    const was = this.live;
    this.live = live;
    if (stalled !== this.sourceStalled) {
      this.sourceStalled = stalled;
      this._progress = null;  // the picture stopping is the OR's, not this player's
      if (stalled && this.state === "live") this._set("stalled", "the OR is reconnecting …");
    }
    if (live && !was && this.path && !this.pc) {
      clearTimeout(this._timer);
      this._connect();
    }
  }

  stop() {
    this.play(null);
  }

  // Asks for another rendition. On a connection that is up, the server switches on the target's
  // next keyframe (no reconnect); otherwise the next connection asks for it.
  /** @param {string} choice auto, high, low or audio */
  async choose(choice) {
    const was = this.choice;
    this.choice = choice;
    if (choice === "hls" || this.transport === "hls" || was === "hls") {
      // another transport: a new connection (asked for WebRTC again after a fallback: it is tried again)
      this.fellBack = false;
      if (this.path && this.live) this._reconnectNow();
      return;
    }
    const session = this._session;
    if (!session || !this.pc || this.pc.connectionState !== "connected") return;
    const headers = { "Content-Type": "application/json" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    try {
      const response = await fetch(`${session}/quality`, { method: "POST", headers, body: JSON.stringify({ quality: choice }) });
      const answer = response.ok ? await response.json() : null;
      if (answer) {
        this.rendition = choice === "auto" ? "high" : choice;  // from the target's next keyframe
        this.why = "";
        return;
      }
    } catch {
      // the connection's own watch notices a server that is gone
    }
    if (session === this._session) this._reconnectNow();  // the switch was refused: a new connection asks
  }

  wanted() {
    return Boolean(this.path);
  }

  _teardown() {
    super._teardown();
    clearTimeout(this._fallbackTimer);
    if (this._hls) this._hls.stop();
    this._hls = null;
    this._progress = null;
    this._seenHeight = 0;
    this.quality = null;
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
    if (this.choice === "hls" || this.fellBack) return this._connectHls();
    this.transport = "webrtc";
    const pc = new RTCPeerConnection();
    this.pc = pc;
    if (!this._audioOnly) pc.addTransceiver("video", { direction: "recvonly" });
    if (this.audio || this._audioOnly) pc.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    this.video.srcObject = stream;
    pc.ontrack = (e) => stream.addTrack(e.track);
    this._watch(pc, () => {
      this._everConnected = true;
      this._set(this.sourceStalled ? "stalled" : "live", this.sourceStalled ? "the OR is reconnecting …" : "");
    }, () => this._retry("reconnecting", "connection lost, reconnecting …", this._backoff()));
    this._set("connecting", "connecting …");
    try {
      const query = this.choice === "auto" ? "" : `?quality=${encodeURIComponent(this.choice)}`;
      this._session = await negotiate(pc, `/whep/${target}${query}`, this.token);
      this.rendition = this.choice === "auto" ? "high" : this.choice;
      clearTimeout(this._fallbackTimer);
      this._fallbackTimer = setTimeout(() => {
        if (pc !== this.pc || pc.connectionState === "connected" || this._everConnected) return;
        this.fellBack = true;
        this._reconnectNow();
      }, FALLBACK_MS);
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

  // LL-HLS instead of WebRTC: a few seconds behind the OR, but through any cache and any network.
  async _connectHls() {
    const target = this.path;
    this.transport = "hls";
    this.rendition = "hls";
    this.why = this.fellBack ? "WebRTC could not connect (this network may block it): playing over HLS, a few seconds behind" : "";
    const failed = (error) => {
      if (playback !== this._hls) return;
      if (error.final) {
        this._teardown();
        this._set("ended", error.message);
      } else {
        this._retry("reconnecting", `${error.message}; retrying`, this._backoff());
      }
    };
    const playback = new HlsPlayback(this.video, target, this.token, failed);
    this._hls = playback;
    this._hlsSince = performance.now();
    this._set("connecting", "connecting (HLS) …");
    await playback.start().catch(failed);
  }

  _sampleHls() {
    const video = this.video;
    const now = performance.now();
    const frames = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality().totalVideoFrames : 0;
    const moved = Math.round(video.currentTime * 10);  // tenths of a second played
    if (this.state === "connecting" && moved > 0 && !video.paused) this._set("live", "");
    if (this.state === "connecting" && now - this._hlsSince > HLS_START_MS) {
      this.recoveries += 1;
      return this._retry("reconnecting", "HLS did not start; retrying", this._backoff());
    }
    this._checkProgress(moved, now);
    const fps = this._last.at ? ((frames - this._last.decoded) * 1000) / (now - this._last.at) : 0;
    this._last = { decoded: frames, at: now };
    if (!video.videoWidth) return this.quality = null;
    const behind = this._hls?.latency;
    const networkMs = behind != null ? behind * 1000 : 0;
    const grade = fps < 8 ? "poor" : fps < 15 ? "fair" : "good";
    this.quality = { width: video.videoWidth, height: video.videoHeight, fps, decoded: frames, lost: 0, loss: 0, networkMs,
      grade, transport: "hls" };
    return this.quality;
  }

  // Once a second (its own timer): measures quality and notices a picture that does not come.
  async sample() {
    if (this._hls) return this._sampleHls();
    const pc = this.pc;
    if (!pc || pc.connectionState !== "connected") {
      this._progress = null;
      return this.quality = null;
    }
    let video = null;
    let audio = null;
    let rtt = null;
    for (const s of (await pc.getStats()).values()) {
      if (s.type === "inbound-rtp" && s.kind === "video") video = s;
      if (s.type === "inbound-rtp" && s.kind === "audio") audio = s;
      if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) rtt = s.currentRoundTripTime;
    }
    if (pc !== this.pc) return null;
    const now = performance.now();
    this._checkProgress(this._audioOnly ? audio?.packetsReceived || 0 : video?.framesDecoded || 0, now);
    if (!video) return this.quality = null;
    const decoded = video.framesDecoded || 0;
    const fps = this._last.at ? ((decoded - this._last.decoded) * 1000) / (now - this._last.at) : 0;
    const buffer = video.jitterBufferEmittedCount ? (video.jitterBufferDelay / video.jitterBufferEmittedCount) * 1000 : 0;
    const received = (video.packetsReceived || 0) + (video.packetsLost || 0);
    const loss = received ? (video.packetsLost || 0) / received : 0;
    this._last = { decoded, at: now };
    // auto: the first picture, or the server moved this viewer (the picture's size changed): ask which rendition, and why
    if (this.choice === "auto" && video.frameHeight && video.frameHeight !== this._seenHeight) {
      this._seenHeight = video.frameHeight;
      this._askRendition();
    }
    // What this page can measure is the delay the network and the player add (half the round
    // trip plus the jitter buffer); the camera, encoder and relay add more. Named as such.
    const networkMs = (rtt !== null ? (rtt * 1000) / 2 : 0) + buffer;
    // Graded on what a viewer sees: a smooth picture (20 fps from a 25 fps camera is fine), loss, delay.
    const grade = fps < 8 || loss > 0.05 || networkMs > 800 ? "poor" : fps < 15 || loss > 0.01 || networkMs > 300 ? "fair" : "good";
    this.quality = { width: video.frameWidth, height: video.frameHeight, fps, decoded, lost: video.packetsLost || 0, loss, networkMs, grade };
    return this.quality;
  }

  async _askRendition() {
    const session = this._session;
    if (!session) return;
    const headers = this.token ? { Authorization: `Bearer ${this.token}` } : {};
    try {
      const response = await fetch(`${session}/quality`, { headers });
      const answer = response.ok ? await response.json() : null;
      if (answer && session === this._session && !answer.reconnect) {
        this.rendition = answer.rendition;
        this.why = answer.why || "";
      }
    } catch {
      // the connection's own watch notices a server that is gone
    }
  }

  // The server says the session is gone (its node died: 404 from another node of the cluster,
  // 502-504 from a balancer): a new connection now, on whichever server answers. No answer in
  // time proves nothing (a slow link is slow for this request too): the watchdog decides then.
  async _probeSession() {
    const session = this._session;
    if (!session) return;
    const headers = this.token ? { Authorization: `Bearer ${this.token}` } : {};
    let gone = false;
    try {
      const response = await fetch(`${session}/quality`, { headers, signal: AbortSignal.timeout(3000) });
      gone = [404, 502, 503, 504].includes(response.status);
    } catch {
      gone = false;
    }
    if (gone && session === this._session && this.wanted()) {
      this.recoveries += 1;
      this._session = null;  // nothing there to DELETE
      this._retry("stalled", "the server lost this connection; reconnecting …", 0);
    }
  }

  _checkProgress(count, now) {
    if (!this._progress || count !== this._progress.count) {
      const first = !this._progress;
      this._progress = { count, at: now, probed: false };
      if (!first && this.state === "stalled" && !this.sourceStalled) this._set("live", "");
      return;
    }
    const still = now - this._progress.at;
    if (!this.live || this.sourceStalled || this.state === "connecting") return;
    if (still >= PROBE_MS && !this._progress.probed) {
      this._progress.probed = true;
      this._probeSession();
    }
    if (still < (this.transport === "hls" ? NO_PICTURE_HLS_MS : NO_PICTURE_MS)) return;
    const what = this._audioOnly ? "No sound" : count ? "Picture frozen" : "No picture";
    this.recoveries += 1;
    this._retry("stalled", `${what} for ${Math.round(still / 1000)} s; reconnecting …`, this._backoff());
  }
}
