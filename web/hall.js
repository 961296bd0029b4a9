// @ts-check
// Hall display: a kiosk nobody touches. Shows the layout the moderator sets (one feed, two side
// by side, or a 2×2 grid) and the question on air. Recovers by itself from network loss, a
// server restart or a publisher that leaves and comes back.
import { api, closedMessage, noAccessMessage, pathPart, showNoAccess, takeToken } from "./lib/auth.js";
import { byId, el, exposeForTests, feedLabel, privacyCard } from "./lib/dom.js";
import { FeedDrawings } from "./lib/drawtool.js";
import { openEventSocket } from "./lib/eventsocket.js";
import { hallFeeds, hallQuestion } from "./lib/hallview.js";
import { FeedPlayer } from "./lib/player.js";
import { QaConnection } from "./lib/qa.js";
import { StrokeOverlay } from "./lib/telestration.js";

const HALL_QUALITY = new URL(location.href).searchParams.get("quality") === "hls" ? "hls" : "high";

const event = pathPart(2);
const token = takeToken();
const tilesBox = byId("tiles", HTMLElement);
const health = byId("health", HTMLElement);
let titles = new Map();
let live = [];                 // live feed paths, "theatre/feed"
let stalled = new Set();       // live feeds whose publisher is reconnecting
let paused = new Set();        // live feeds paused for privacy (the server sends no picture)
let onDemand = new Set();      // feeds pulled on demand: playing one starts it
const playable = (feed) => live.includes(feed) || onDemand.has(feed);
let slots = {};                // the Q&A's on-air slots
let layout = { mode: "single", feeds: [] };
let tiles = [];                // {feed, player, box, state}
let qa = null;
let unhealthySince = 0;
let watchdogTimer = null;
let socket = null;
// the strokes faculty and moderators draw, over the same pictures
// (over HLS the picture is seconds behind the OR: its strokes wait as long)
const drawings = new FeedDrawings((message) => socket?.send(message), (feed) => {
  const player = tiles.find((t) => t.feed === feed)?.player;
  return player?.transport === "hls" ? Math.max(0, (player.quality?.networkMs ?? 0) - 300) : 0;
});

function render() {
  const feeds = hallFeeds(layout, live);
  tilesBox.dataset.mode = layout.mode;
  const same = feeds.length === tiles.length && feeds.every((f, i) => tiles[i].feed === f);
  for (const tile of tiles) tile.player.setLive(playable(tile.feed), stalled.has(tile.feed) || paused.has(tile.feed));
  if (same && (tiles.length || tilesBox.querySelector(".hall-idle"))) return updateTiles();
  for (const tile of tiles) {
    tile.player.stop();
    drawings.detach(tile.overlay);
    tile.overlay.close();
  }
  tiles = feeds.map((feed, index) => {
    const video = el("video", { autoplay: true, playsinline: true, "aria-label": feedLabel(titles, feed) });
    video.muted = index !== 0;  // the hall hears the first tile
    const state = el("div", { className: "tile-state" });
    const box = el("figure", { className: "tile" }, video, el("figcaption", { text: feedLabel(titles, feed) }), state);
    const tile = { feed, box, state, video, player: null, overlay: new StrokeOverlay(video) };
    drawings.attach(tile.overlay, feed);
    // the hall is on the hospital's LAN: the feed as published, never a rendition picked for a slow link
    // ?quality=hls: a hall far away (another city) plays over HLS, through its own network's cache
    tile.player = new FeedPlayer(video, token, { onState: () => updateTiles(), choice: HALL_QUALITY });
    tile.player.play(`${event}/${feed}`, playable(feed));
    video.play().catch(() => { video.muted = true; video.play().catch(() => {}); });
    return tile;
  });
  tilesBox.replaceChildren(...tiles.map((t) => t.box));
  if (!tiles.length) tilesBox.replaceChildren(el("p", { className: "hall-idle", text: "Waiting for an operating room to go live …" }));
  updateTiles();
  showOnAir(slots);  // which question fits depends on what is on screen
}

function updateTiles() {
  for (const tile of tiles) {
    const s = tile.player.state;
    const waiting = s === "waiting" || (!playable(tile.feed) && s !== "live");
    const name = feedLabel(titles, tile.feed);
    const hidden = paused.has(tile.feed);
    tile.video.style.visibility = hidden ? "hidden" : "";
    privacyCard(tile.state, hidden ? name : null);
    if (!hidden) tile.state.textContent = s === "live" ? "" : waiting ? `Waiting for ${name} to go live …`
      : s === "ended" ? "This hall link no longer works; ask the organizer for a new one"
        : stalled.has(tile.feed) ? `${name}: the operating room is reconnecting …` : `${name} reconnecting …`;
    tile.state.hidden = s === "live" && !hidden;
  }
}

function showOnAir(next) {
  slots = next;
  const box = byId("onair", HTMLElement);
  const pick = hallQuestion(slots, tiles.map((t) => t.feed));
  if (!pick) {
    box.hidden = true;
    return;
  }
  const [theatre, q] = pick;
  byId("onair-theatre", HTMLElement).textContent = theatre === "*" ? "all theatres" : titles.get(theatre) || theatre;
  byId("onair-text", HTMLElement).textContent = q.text;
  byId("onair-meta", HTMLElement).textContent = `${q.author} · ${q.votes} vote${q.votes === 1 ? "" : "s"}`;
  box.hidden = false;
}

// Reload only when the page itself is stuck and the server answers (a reload while the server
// is down would leave the browser's error page, which never recovers).
async function watchdog() {
  const ok = tiles.some((t) => t.player.state === "live") || (qa && qa.state === "connected");
  if (ok) {
    unhealthySince = 0;
    health.textContent = "";
    return;
  }
  unhealthySince = unhealthySince || Date.now();
  health.textContent = "reconnecting …";
  if (Date.now() - unhealthySince > 60000) {
    try {
      const r = await fetch("/", { cache: "no-store" });
      if (r.ok) location.reload();
    } catch {
      // still down: keep trying
    }
  }
}

async function start() {
  if (!event) return showNoAccess("The address is incomplete: it should look like /hall/your-event.");
  if (!token) return showNoAccess("Open the hall link you were given: it carries this display's access.");
  let info;
  for (let attempt = 0; ; attempt++) {
    try {
      info = await api(token, `/api/events/${event}`);
      break;
    } catch (error) {
      if (error.status) return showNoAccess(noAccessMessage(error));
      health.textContent = "waiting for the server …";  // a kiosk waits for the server to come back
      await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** attempt, 10000)));
    }
  }
  document.title = `ORcast · ${info.event.title} · hall`;
  titles = new Map(info.event.theatres.map((t) => [t.slug, t.title]));
  const onStreams = (streams) => {
    live = streams.filter((s) => s.live).map((s) => s.path.split("/").slice(1).join("/"));
    stalled = new Set(streams.filter((s) => s.live && s.stalled).map((s) => s.path.split("/").slice(1).join("/")));
    paused = new Set(streams.filter((s) => s.privacy_by).map((s) => s.path.split("/").slice(1).join("/")));
    onDemand = new Set(streams.filter((s) => s.on_demand).map((s) => s.path.split("/").slice(1).join("/")));
    render();
  };
  onStreams(info.streams);
  socket = openEventSocket(event, token, {
    onStreams,
    onMessage: (data) => drawings.onMessage(data),
    onState: (state, again, restarted) => {
      if (state === "connected") drawings.watch(true);
      if (again) [...tiles.map((t) => t.player), qa].forEach((x) => x?.retryNow(restarted));
    },
    onMediaLost: (ids) => tiles.forEach((t) => t.player.sessionsLost(ids)),
    onClosing: (reason, kind) => {
      clearInterval(watchdogTimer);
      for (const tile of tiles) tile.player.drop();
      tiles = [];
      qa?.drop();
      showNoAccess(closedMessage(reason, kind));
    },
  });
  qa = new QaConnection(event, token, {
    onSlots: showOnAir,
    onLayout: (l) => { layout = l; render(); },
  }).start();
  watchdogTimer = setInterval(watchdog, 5000);
}

start();

exposeForTests({
  get tiles() { return tiles.map((t) => ({ feed: t.feed, state: t.player.state, peer: t.player.pc, transport: t.player.transport })); },
  get qa() { return qa; },
  get strokes() { return tiles.map((t) => ({ feed: t.feed, strokes: [...t.overlay.strokes.values()] })); },
});
