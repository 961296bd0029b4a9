// @ts-check
// Plays a feed's LL-HLS into a <video>: for large audiences and networks that block UDP. The page
// asks the server, with its link, for the feed's signed HLS address (shared by every viewer, so
// caches can serve it), plays it with hls.js (from /static/vendor/, never from the internet) or,
// where the browser has no Media Source Extensions but plays HLS itself (iPhone Safari), natively;
// asks for a new address before the old one expires or when the server refuses it (a link of the
// event was revoked), and reports what fails.

const HLS_MODULE = "/static/vendor/hls.min.mjs";
const RENEW_BEFORE_S = 60;     // a new address this long before the old one expires

/** @type {Promise<any> | null} */
let hlsModule = null;

// hls.js, loaded on first use (most viewers never need it)
function loadHls() {
  const url = HLS_MODULE;  // a variable: the type checker does not look for the vendored file
  hlsModule = hlsModule || import(url).then((m) => m.default).catch(() => {
    hlsModule = null;
    throw new Error("this server has no HLS player installed (./scripts/demo.sh or ./scripts/test.sh installs hls.js)");
  });
  return hlsModule;
}

export class HlsError extends Error {
  /** @param {string} message @param {boolean} final the link cannot play (revoked, no access) */
  constructor(message, final) {
    super(message);
    this.final = final;
  }
}

export class HlsPlayback {
  /**
   * @param {HTMLVideoElement} video @param {string} path event/theatre/feed @param {string} token
   * @param {(error: HlsError) => void} onError told when playback cannot go on by itself
   */
  constructor(video, path, token, onError) {
    this.video = video;
    this.path = path;
    this.token = token;
    this.onError = onError;
    this.hls = null;
    this.native = false;
    this.url = null;
    this._renew = null;
    this._closed = false;
  }

  async start() {
    const url = await this._address();
    if (this._closed) return;
    const video = this.video;
    video.srcObject = null;
    const Hls = await loadHls().catch((error) => {
      if (video.canPlayType("application/vnd.apple.mpegurl")) return null;  // the browser's own HLS
      throw new HlsError(error.message, true);
    });
    if (this._closed) return;
    if (Hls && Hls.isSupported()) {
      // the worker would need blob: scripts, which the pages' CSP refuses; fMP4 needs no transmuxing
      // starts on the full picture (as on a good connection) and moves to the low one if the network is slow
      const hls = new Hls({ lowLatencyMode: true, enableWorker: false, backBufferLength: 30, liveDurationInfinity: true,
        abrEwmaDefaultEstimate: 3_000_000 });
      this.hls = hls;
      hls.on(Hls.Events.ERROR, (_event, data) => {
        if (!data.fatal || hls !== this.hls) return;
        const status = data.response?.code;
        if (status === 403) this._renewNow();  // the address changed (a link was revoked): ask again
        else this.onError(new HlsError(`HLS: ${data.details}`, false));
      });
      hls.loadSource(url);
      hls.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      this.native = true;
      video.src = url;
    } else {
      throw new HlsError("this browser plays neither WebRTC here nor HLS", true);
    }
    video.play().catch(() => {});
  }

  // The signed address (the same for every viewer of the feed now), and a timer for the next one.
  async _address() {
    const [event, theatre, feed] = this.path.split("/");
    const headers = this.token ? { Authorization: `Bearer ${this.token}` } : {};
    const response = await fetch(`/api/events/${event}/hls/${theatre}/${feed}`, { headers });
    if (!response.ok) {
      const text = await response.json().then((b) => b.error).catch(() => response.statusText);
      throw new HlsError(text, [401, 403].includes(response.status));
    }
    const { url, expires_at: expiresAt } = await response.json();
    this.url = url;
    clearTimeout(this._renew);
    const wait = Math.max(10, expiresAt - Date.now() / 1000 - RENEW_BEFORE_S) * 1000;
    this._renew = setTimeout(() => this._renewNow(), wait);
    return url;
  }

  async _renewNow() {
    try {
      const url = await this._address();
      if (this._closed) return;
      if (this.hls) this.hls.loadSource(url);
      else if (this.native) this.video.src = url;
    } catch (error) {
      if (!this._closed) this.onError(error instanceof HlsError ? error : new HlsError(String(error), false));
    }
  }

  // Seconds behind the live edge as the player sees it (hls.js), else null.
  get latency() {
    return this.hls && Number.isFinite(this.hls.latency) ? this.hls.latency : null;
  }

  // Seconds from the picture's arrival at the server (its PROGRAM-DATE-TIME) to now, for the
  // picture on screen: glass to glass, less the camera's and encoder's share. Else null.
  get behindWallClock() {
    const date = this.hls?.playingDate;
    return date ? (Date.now() - date.getTime()) / 1000 : null;
  }

  stop() {
    this._closed = true;
    clearTimeout(this._renew);
    if (this.hls) this.hls.destroy();
    this.hls = null;
    if (this.native || this.video.src) {
      this.video.removeAttribute("src");
      this.video.load();
    }
  }
}
