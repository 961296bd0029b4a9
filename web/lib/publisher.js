// @ts-check
// Sends a MediaStream as one feed over WHIP and keeps it on air: reconnects with backoff when
// the network or the server drops, until stop() is called.
import { Reconnecting } from "./reconnecting.js";
import { HttpError, negotiate } from "./webrtchttp.js";

// The feed's low rendition, sent by the console itself so that the server encodes nothing:
// viewers on weak links (or who pick "Low") get it. The server takes the second video track
// of a WHIP session as the feed's low rendition (aiortc receives no RID simulcast).
export const LOW = { width: 640, height: 360, maxBitrate: 500_000, maxFramerate: 30 };

/** How much smaller than the camera the low rendition is (1: the camera is small enough already).
 * @param {MediaStreamTrack} track */
export function lowScale(track) {
  // a camera that has not delivered its first frame yet has no size in its settings (Chromium):
  // what was asked for is then the best guess
  const got = track.getSettings?.() || {};
  const asked = track.getConstraints?.() || {};
  const size = (/** @type {number | undefined} */ value, /** @type {ConstrainULong | undefined} */ wanted) =>
    value || (typeof wanted === "number" ? wanted : wanted?.exact || wanted?.ideal || 0);
  return Math.max(size(got.width, asked.width) / LOW.width, size(got.height, asked.height) / LOW.height, 1);
}

export class FeedPublisher extends Reconnecting {
  // onState(state, text): state is idle, connecting, live, reconnecting, failed or ended;
  // withLow: also send the feed's low rendition (a talk-back, watched in the OR only, does not)
  /** @param {string} token @param {{onState?: (state: string, text: string) => void, withLow?: boolean}} [options] */
  constructor(token, { onState, withLow = true } = {}) {
    super(token, onState);
    this.withLow = withLow;
    this.path = null;
    this.stream = null;
    this.kbps = 0;
    this._wanted = false;
    this._last = { bytes: 0, at: 0 };
    /** @type {RTCRtpSender | null} */
    this._video = null;
    /** @type {MediaStreamTrack | null} */
    this._lowTrack = null;
    /** @type {RTCRtpSender | null} */
    this._lowSender = null;
    this.sendsLow = false;   // this connection has the low rendition's track
    this.lowActive = false;  // and encodes it now (while the server says someone watches it)
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
    const video = this.stream.getVideoTracks()[0];
    for (const track of [video, ...this.stream.getAudioTracks()].filter(Boolean)) {
      const sender = pc.addTransceiver(track, { direction: "sendonly" }).sender;
      if (track.kind === "video") {
        this._video = sender;
        const params = sender.getParameters();
        if (this.kbps) params.encodings = [{ maxBitrate: this.kbps * 1000 }];
        // surgery needs detail: under congestion drop frames, not resolution (each resolution
        // change would also start a new recording segment)
        params.degradationPreference = "maintain-resolution";
        sender.setParameters(params).catch(() => {});
      }
    }
    // the low rendition: a second video track of the same camera, after the feed's own
    const scale = video && this.withLow ? lowScale(video) : 1;
    this.sendsLow = scale > 1;
    if (this.sendsLow) {
      this._lowTrack = video.clone();
      // it starts paused: encoding it costs this computer CPU, so it runs only while someone
      // watches the low rendition (the server's feed list says so: wantLow)
      this._lowSender = pc.addTransceiver(this._lowTrack, {
        direction: "sendonly",
        sendEncodings: [{
          active: this.lowActive, scaleResolutionDownBy: scale, maxBitrate: LOW.maxBitrate,
          maxFramerate: LOW.maxFramerate,
        }],
      }).sender;
      this._setLow(this.lowActive);
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

  _teardown() {
    super._teardown();
    this._lowTrack?.stop();
    this._lowTrack = null;
    this._lowSender = null;
    this._video = null;
  }

  /** Encode the low rendition (someone watches it) or pause it. @param {boolean} wanted */
  wantLow(wanted) {
    if (wanted === this.lowActive) return;
    this.lowActive = wanted;
    this._setLow(wanted);
  }

  /** @param {boolean} active */
  _setLow(active) {
    const sender = this._lowSender;
    if (!sender) return;
    const params = sender.getParameters();
    if (!params.encodings?.length) return;  // before negotiation: sendEncodings apply
    params.encodings[0].active = active;
    // one size for the low rendition (Chromium would start it at a quarter of it while its
    // bandwidth estimate ramps up)
    params.degradationPreference = "maintain-resolution";
    sender.setParameters(params).catch(() => {});
  }

  // bitrate, fps, loss and RTT of the feed's video being sent (once a second from the page)
  async sample() {
    const pc = this.pc;
    const sender = this._video;
    if (!pc || !sender || pc.connectionState !== "connected") return null;
    let out = null;
    let remote = null;
    for (const s of (await sender.getStats()).values()) {
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
