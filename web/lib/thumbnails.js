// @ts-check
// Still pictures of the event's feeds (GET /api/events/{event}/thumbnails/{theatre}/{feed}),
// refreshed every 10 s while a feed is live. Fetched with the link's token (an <img src> cannot
// send it) and shown from blob: URLs.

const REFRESH_MS = 10000;

export class Thumbnails {
  constructor(event, token) {
    this.event = event;
    this.token = token;
    this.urls = new Map();     // feed → blob URL
    this.images = new Map();   // feed → Set of <img>
    this.live = new Set();
    this.fetchedAt = new Map();
    this._timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  // The page's link stopped working: no more requests (each would be a 401).
  stop() {
    clearInterval(this._timer);
    this.live.clear();
    this.stopped = true;
  }

  // A feed paused for privacy: its last still goes from every picture on the page (it may show
  // what the pause is hiding), and nothing is fetched until it is resumed.
  forget(feed) {
    this.live.delete(feed);
    const url = this.urls.get(feed);
    this.urls.delete(feed);
    for (const img of this.images.get(feed) || []) img.removeAttribute("src");
    if (url) URL.revokeObjectURL(url);
  }

  // Show `feed`'s picture in `img` (now if there is one, and on every refresh); none while `paused`.
  attach(img, feed, live, paused = false) {
    if (paused) {
      this.forget(feed);
      this.images.get(feed)?.add(img) ?? this.images.set(feed, new Set([img]));
      return;
    }
    if (live) this.live.add(feed);
    else this.live.delete(feed);
    if (!this.images.has(feed)) this.images.set(feed, new Set());
    this.images.get(feed).add(img);
    if (this.urls.has(feed)) img.src = this.urls.get(feed);
    if (live && !(Date.now() - (this.fetchedAt.get(feed) || 0) < REFRESH_MS)) this.fetch(feed);
  }

  refresh() {
    for (const feed of this.live) this.fetch(feed);
  }

  async fetch(feed) {
    if (this.stopped) return;
    this.fetchedAt.set(feed, Date.now());
    try {
      const r = await fetch(`/api/events/${this.event}/thumbnails/${feed}`, {
        headers: { Authorization: `Bearer ${this.token}` }, cache: "no-store",
      });
      if (r.status === 401 || r.status === 403) return this.stop();  // the link no longer works
      if (!r.ok || r.status === 204) return;  // 204: live, its first still comes with a keyframe
      const url = URL.createObjectURL(await r.blob());
      const old = this.urls.get(feed);
      this.urls.set(feed, url);
      const images = [...(this.images.get(feed) || [])].filter((img) => img.isConnected);
      this.images.set(feed, new Set(images));
      for (const img of images) img.src = url;
      if (old) setTimeout(() => URL.revokeObjectURL(old), 1000);
    } catch {
      // offline for a moment: the next refresh tries again
    }
  }
}
