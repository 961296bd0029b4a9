// @ts-check
// Viewer (and faculty) page: the event's theatres and feeds with their live state, one main feed
// or a 2×2 multi-view, which theatre is heard, fullscreen, a quality indicator, the Q&A panel,
// and for faculty "speak to OR". Everything reconnects by itself.
import { closedMessage, openEvent, pathPart, showNoAccess, takeToken } from "./lib/auth.js";
import { byId, el, exposeForTests, feedLabel, option, privacyCard, setStatus } from "./lib/dom.js";
import { DrawTool, FeedDrawings } from "./lib/drawtool.js";
import { openEventSocket } from "./lib/eventsocket.js";
import { QA_DEFAULTS, TALKBACK_PREFIX, isFeed, isTalkback } from "./lib/model.js";
import { FeedPlayer } from "./lib/player.js";
import { FeedPublisher } from "./lib/publisher.js";
import { QaConnection, byVotes, onAirFor } from "./lib/qa.js";
import { StrokeOverlay } from "./lib/telestration.js";
import { Thumbnails } from "./lib/thumbnails.js";

const event = pathPart(2);
const token = takeToken();
const video = byId("video", HTMLVideoElement);
const stateBox = byId("state", HTMLElement);
let titles = new Map();
let streams = new Map();       // "theatre/feed" → stream info
let main = null;               // FeedPlayer of the single view
let tiles = [];                // multi-view: {feed, player, video, box}
let mode = "single";
let heard = null;              // theatre whose sound plays (and whose talk-back and on-air question show)
let heardTile = 0;             // multi-view: the tile whose sound plays
let talkbackPlayers = new Map();
let qa = null;
let thumbs = null;
let you = null;
let serverUp = true;
let qualityTimer = null;           // the event's WebSocket is connected: live states are current
let drawings = null;           // FeedDrawings: strokes over the pictures (lib/drawtool.js)
let overlay = null;            // the strokes over the main picture
let drawTool = null;

const theatreOf = (feed) => feed.split("/")[0];
const liveFeeds = () => [...streams.values()].filter((s) => s.live).map((s) => s.feed);
// a feed pulled on demand is not live until someone watches it: playing it starts it
const playable = (feed) => Boolean(streams.get(feed)?.live || streams.get(feed)?.onDemand);

// Which rendition plays, and why, in words.
const RENDITION_NOTE = {
  low: "Low quality, as you chose: less data for a slow connection",
  audio: "Audio only, as you chose: no picture is sent",
  hls: "HLS, as you chose: a few seconds behind the OR, through any network",
};
function showRendition() {
  const choice = byId("quality-choice", HTMLSelectElement).value;
  const note = byId("rendition-note", HTMLElement);
  if (main?.fellBack) {
    note.textContent = "Playing over HLS: WebRTC could not connect on this network (a few seconds behind)";
    note.title = "Your network seems to block the connection live video uses. Pick a quality to try it again.";
  } else if (choice === "auto" && main?.rendition === "low") {
    note.textContent = "Low quality — your connection is slow";
    note.title = `${main.why}. The full picture comes back by itself when the connection allows it.`;
  } else {
    note.textContent = RENDITION_NOTE[choice] || "";
    note.title = "";
  }
}

function mainFeed() {
  return main?.path ? main.path.split("/").slice(1).join("/") : null;
}

// -- single view -------------------------------------------------------------------------
function play(feed) {
  const url = new URL(location.href);
  url.searchParams.set("feed", feed);
  history.replaceState(null, "", url.pathname + url.search);
  main.play(`${event}/${feed}`, playable(feed));
  drawings?.attach(overlay, feed);
  drawTool?.refresh();
  byId("caption", HTMLElement).textContent = feedLabel(titles, feed);
  if (mode === "single") heard = theatreOf(feed);
  renderFeeds();
  syncTalkback();
  if (qa) renderOnAir(qa.slots);
}

function describe(state, feed, text) {
  if (state === "idle" || !feed) return "Pick a feed below.";
  const name = feedLabel(titles, feed);
  if (streams.get(feed)?.privacy) return `${name}: paused for privacy`;
  if (state === "live") return "";
  if (state === "waiting") return `Waiting for ${name} to go live …`;
  if (streams.get(feed)?.stalled) return `${name}: the operating room is reconnecting …`;
  if (state === "stalled") return `${name}: ${text}`;
  if (state === "reconnecting") return `${name} reconnecting …`;
  if (state === "ended") return `This link no longer plays here: ${text}`;
  return `Connecting to ${name} …`;
}

let mainState = { state: "idle", text: "" };
function onMainState(state, text) {
  mainState = { state, text };
  showMainState();
  if (state === "ended") showNoAccess(`${text} Ask the organizer for a new link.`);
}

function showMainState() {
  const feed = mainFeed();
  const paused = Boolean(feed && streams.get(feed)?.privacy);
  privacyCard(stateBox, paused ? feedLabel(titles, feed) : null);
  if (!paused) stateBox.textContent = describe(mainState.state, feed, mainState.text);
  stateBox.hidden = mainState.state === "live" && !paused;
}

// -- multi-view ----------------------------------------------------------------------------
function buildMulti() {
  for (const t of tiles) {
    t.player.stop();
    drawings?.detach(t.overlay);
    t.overlay?.close();
  }
  const picks = liveFeeds().filter((f) => !isTalkback(f));
  const current = mainFeed();
  if (current && !picks.includes(current)) picks.unshift(current);
  const box = byId("multi", HTMLElement);
  tiles = [0, 1, 2, 3].map((i) => {
    const tileVideo = el("video", { autoplay: true, playsinline: true, "aria-label": `Multi-view tile ${i + 1}` });
    tileVideo.muted = true;
    const state = el("div", { className: "tile-state" });
    const select = el("select", { "aria-label": `Feed in tile ${i + 1}` }, option("", "(empty)"),
      [...streams.keys()].filter((f) => !isTalkback(f)).map((f) => option(f, feedLabel(titles, f), f === picks[i])));
    const hear = el("input", { type: "radio", name: "hear", "aria-label": `Hear tile ${i + 1}` });
    const tile = { feed: picks[i] || null, video: tileVideo, state, select, hear, player: null, box: null, overlay: null };
    tile.player = new FeedPlayer(tileVideo, token, {
      choice: byId("quality-choice", HTMLSelectElement).value,
      onState: (s, text) => {
        const paused = Boolean(tile.feed && streams.get(tile.feed)?.privacy);
        privacyCard(state, paused ? feedLabel(titles, tile.feed) : null);
        if (!paused) state.textContent = tile.feed ? describe(s, tile.feed, text) : "";
        state.hidden = (s === "live" && !paused) || !tile.feed;
      },
    });
    select.addEventListener("change", () => setTile(tile, select.value || null));
    hear.addEventListener("change", () => { heardTile = i; applyAudio(); });
    tile.box = el("figure", { className: "tile" }, tileVideo, state,
      el("figcaption", {}, select, el("label", { className: "hear" }, hear, " hear")));
    tile.overlay = new StrokeOverlay(tileVideo);
    setTile(tile, tile.feed);
    return tile;
  });
  box.replaceChildren(...tiles.map((t) => t.box));
  applyAudio();
}

function setTile(tile, feed) {
  tile.feed = feed;
  tile.player.play(feed ? `${event}/${feed}` : null, feed ? playable(feed) : false);
  tile.state.hidden = !feed;
  if (tile.overlay) drawings?.attach(tile.overlay, feed);
  applyAudio();
}

function applyAudio() {
  const soundOn = byId("unmute", HTMLButtonElement).dataset.on === "true";
  if (mode === "single") {
    video.muted = !soundOn;
  } else {
    video.muted = true;
    tiles.forEach((t, i) => {
      t.hear.checked = i === heardTile;
      t.video.muted = !soundOn || i !== heardTile;
    });
    const feed = tiles[heardTile]?.feed;
    if (feed && theatreOf(feed) !== heard) {
      heard = theatreOf(feed);
      syncTalkback();
      if (qa) renderOnAir(qa.slots);
    }
  }
  for (const [feed, p] of talkbackPlayers) p.video.muted = !soundOn || theatreOf(feed) !== heard;
}

function setMode(next) {
  mode = next;
  byId("view-single", HTMLButtonElement).setAttribute("aria-pressed", String(mode === "single"));
  byId("view-multi", HTMLButtonElement).setAttribute("aria-pressed", String(mode === "multi"));
  byId("single", HTMLElement).hidden = mode !== "single";
  byId("multi", HTMLElement).hidden = mode !== "multi";
  if (mode === "multi") {
    main.stop();
    buildMulti();
  } else {
    for (const t of tiles) {
      t.player.stop();
      drawings?.detach(t.overlay);
      t.overlay?.close();
    }
    tiles = [];
    byId("multi", HTMLElement).replaceChildren();  // no picker may start a player after this
    const feed = new URL(location.href).searchParams.get("feed") || liveFeeds().find((f) => !isTalkback(f));
    if (feed) play(feed);
  }
  drawTool?.refresh();  // drawing is on the one-feed view's picture
  applyAudio();
}

// -- feeds and talk-back -------------------------------------------------------------------
function renderFeeds() {
  const groups = new Map();
  for (const [feed, s] of [...streams.entries()].sort()) {
    if (isTalkback(feed)) continue;
    const theatre = theatreOf(feed);
    if (!groups.has(theatre)) groups.set(theatre, []);
    groups.get(theatre).push([feed, s]);
  }
  const items = [...groups.entries()].map(([theatre, feeds]) => el("li", { className: "theatre" },
    el("h3", { text: titles.get(theatre) || theatre }),
    el("div", { className: "thumb-row" }, feeds.map(([feed, s]) => {
      const img = el("img", { alt: "", className: "thumb-img" });
      thumbs?.attach(img, feed, s.live, s.privacy);
      return el("button", {
        className: "thumb", "aria-pressed": String(feed === mainFeed() && mode === "single"),
        "aria-label": `${feedLabel(titles, feed)}, ${!serverUp ? "state unknown" : s.live ? "live" : s.onDemand ? "on demand" : "not live"}`,
        onclick: () => { if (mode !== "single") setMode("single"); play(feed); },
      }, img, el("span", { className: "thumb-label", text: feed.split("/")[1] }),
      el("span", { className: "state", dataset: { live: String(serverUp && s.live), stalled: String(serverUp && s.live && s.stalled) },
        text: !serverUp ? "server unreachable" : s.live && s.stalled ? "reconnecting …" : s.live ? `live · ${s.viewers}`
          : s.onDemand ? "on demand" : "off air" }));
    }))));
  byId("feeds", HTMLElement).replaceChildren(...items);
  if (!items.length) {
    byId("feeds", HTMLElement).replaceChildren(el("li", { className: "empty", text: "No operating room is live yet." }));
  }
}

// Faculty voices into a theatre are part of that theatre: play the talk-back feeds of the theatre heard.
function syncTalkback() {
  const wanted = new Set(liveFeeds().filter((f) => isTalkback(f) && theatreOf(f) === heard && !f.endsWith(myTalkback)));
  for (const [feed, p] of talkbackPlayers) {
    if (!wanted.has(feed)) {
      p.player.stop();
      p.video.remove();
      talkbackPlayers.delete(feed);
    }
  }
  for (const feed of wanted) {
    if (talkbackPlayers.has(feed)) continue;
    const v = el("video", { autoplay: true, playsinline: true, hidden: true, "aria-hidden": "true" });
    document.body.append(v);
    const player = new FeedPlayer(v, token, {});
    player.play(`${event}/${feed}`, true, streams.get(feed)?.video ?? true);
    talkbackPlayers.set(feed, { player, video: v });
  }
  applyAudio();
}

function onStreams(list) {
  const before = mainFeed();
  const next = new Map();
  for (const s of list) {
    const feed = s.path.split("/").slice(1).join("/");
    next.set(feed, { feed, live: s.live, onDemand: Boolean(s.on_demand), stalled: Boolean(s.stalled), viewers: s.viewers,
      video: Boolean(s.video_codec), privacy: Boolean(s.privacy_by) });
  }
  for (const [feed, s] of streams) if (!next.has(feed)) next.set(feed, { ...s, live: false, onDemand: false });
  streams = next;
  if (!before && mode === "single") {
    const wanted = new URL(location.href).searchParams.get("feed");
    const first = isFeed(wanted) ? wanted : liveFeeds().find((f) => !isTalkback(f))
      || [...streams.values()].find((s) => s.onDemand && !isTalkback(s.feed))?.feed;
    if (first) play(first);
    else if (!tiles.length) {
      stateBox.textContent = "Waiting for an operating room to go live …";
      stateBox.hidden = false;
    }
  }
  // paused for privacy: no picture comes (the server sends none), so the players must not
  // reconnect, and the last picture shown before the pause is hidden too
  const held = (feed) => Boolean(streams.get(feed)?.stalled || streams.get(feed)?.privacy);
  if (main.path) main.setLive(playable(mainFeed()), held(mainFeed()));
  video.style.visibility = main.path && streams.get(mainFeed())?.privacy ? "hidden" : "";
  if (main.path) showMainState();
  for (const t of tiles) {
    if (t.feed) t.player.setLive(playable(t.feed), held(t.feed));
    t.video.style.visibility = t.feed && streams.get(t.feed)?.privacy ? "hidden" : "";
  }
  renderFeeds();
  syncTalkback();
}

// -- speak to the OR (faculty) ---------------------------------------------------------------
const myTalkback = `${TALKBACK_PREFIX}-${Math.random().toString(36).slice(2, 8)}`;
let talk = null;
let talkMedia = null;

async function startTalking() {
  const theatre = byId("tb-theatre", HTMLSelectElement).value;
  const status = byId("tb-status", HTMLElement);
  try {
    talkMedia = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true },
      video: byId("tb-camera", HTMLInputElement).checked ? { width: { ideal: 640 }, height: { ideal: 360 } } : false,
    });
  } catch (error) {
    return setStatus(status, `Microphone unavailable: ${error.message}`, "bad");
  }
  talk = new FeedPublisher(token, {
    withLow: false,  // the OR watches a talk-back as sent
    onState: (s, text) => setStatus(status, s === "live" ? `Speaking to ${titles.get(theatre) || theatre}` : `${s} ${text}`,
      s === "live" ? "ok" : s === "failed" || s === "ended" ? "bad" : "warn"),
  });
  talk.start(`${event}/${theatre}/${myTalkback}`, talkMedia, 500);
  byId("tb-start", HTMLButtonElement).disabled = true;
  byId("tb-stop", HTMLButtonElement).disabled = false;
}

function stopTalking() {
  talk?.stop();
  talkMedia?.getTracks().forEach((t) => t.stop());
  talk = null;
  talkMedia = null;
  if (!byId("tb-start", HTMLButtonElement)) return;  // the page was replaced by a notice
  byId("tb-start", HTMLButtonElement).disabled = false;
  byId("tb-stop", HTMLButtonElement).disabled = true;
  setStatus(byId("tb-status", HTMLElement), "Not speaking");
}

// -- Q&A -------------------------------------------------------------------------------------
const STATE_TEXT = { pending: "waiting for a moderator", approved: "approved", on_air: "ON AIR", answered: "answered",
  rejected: "not taken", withdrawn: "withdrawn", merged: "merged" };

function questionItem(q) {
  const vote = q.mine ? null : el("button", {
    className: "vote", "aria-pressed": String(q.voted), disabled: q.state !== "approved" && q.state !== "on_air",
    "aria-label": `${q.voted ? "Remove your vote from" : "Vote for"} question ${q.id}`,
    onclick: () => qa.request(q.voted ? "unvote" : "vote", { question: q.id }).catch((e) => askStatus(e.message, "bad")),
  }, `▲ ${q.votes}`);
  const extra = [];
  if (q.mine && q.state === "rejected" && q.reason) extra.push(el("span", { className: "reason", text: `Moderator: ${q.reason}` }));
  if (q.mine && q.merged_into) extra.push(el("span", { className: "reason", text: `Merged into #${q.merged_into}` }));
  const withdraw = q.mine && (q.state === "pending" || q.state === "approved")
    ? el("button", { className: "link", onclick: () => qa.request("withdraw", { question: q.id }).catch((e) => askStatus(e.message, "bad")) }, "withdraw")
    : null;
  return el("li", { className: "qitem", dataset: { state: q.state } },
    vote || el("span", { className: "votes", text: `▲ ${q.votes}` }),
    el("div", {}, el("p", { className: "qtext", text: q.text }),
      el("div", { className: "qmeta" }, `${q.author}${q.theatre ? ` · ${titles.get(q.theatre) || q.theatre}` : ""} · `,
        el("span", { className: `qstate s-${q.state}`, text: STATE_TEXT[q.state] || q.state }), ...extra, withdraw)));
}

function renderQuestions() {
  const all = [...qa.questions.values()];
  const mine = all.filter((q) => q.mine).sort((a, b) => b.created_at - a.created_at);
  const others = all.filter((q) => !q.mine && (q.state === "approved" || q.state === "on_air" || q.state === "answered")).sort(byVotes);
  byId("mine", HTMLElement).replaceChildren(...(mine.length ? mine.map(questionItem) : [el("li", { className: "empty", text: "You have not asked yet." })]));
  byId("approved", HTMLElement).replaceChildren(...(others.length ? others.map(questionItem) : [el("li", { className: "empty", text: "No approved questions yet." })]));
}

function renderOnAir(slots) {
  const box = byId("onair", HTMLElement);
  const q = onAirFor(slots, heard);
  box.hidden = !q;
  if (q) box.replaceChildren(el("strong", { text: "On air: " }), el("span", { text: q.text }));
}

let askTimer = null;
// the server's limit, from the Q&A welcome (the default until it has arrived)
const askLimit = () => qa?.limits?.text_chars || QA_DEFAULTS.text_chars;

function askStatus(text, kind) {
  const p = byId("ask-status", HTMLElement);
  p.hidden = !text;
  setStatus(p, text, kind);
  clearTimeout(askTimer);
  if (kind === "ok") askTimer = setTimeout(() => { p.hidden = true; }, 6000);  // a confirmation, not a state
}

async function ask(e) {
  e.preventDefault();
  const text = byId("ask-text", HTMLTextAreaElement).value.trim();
  if (!text) return askStatus("Type your question first.", "warn");
  const theatre = byId("ask-theatre", HTMLSelectElement).value || undefined;
  try {
    await qa.request("ask", { text, ...(theatre ? { theatre } : {}), anonymous: byId("ask-anon", HTMLInputElement).checked });
    byId("ask-text", HTMLTextAreaElement).value = "";
    byId("ask-count", HTMLElement).textContent = `0 / ${askLimit()}`;
    askStatus("Sent. A moderator will look at it.", "ok");
  } catch (error) {
    askStatus(error.message, "bad");
  }
}

// -- start -----------------------------------------------------------------------------------
function showQuality() {
  showRendition();
  const box = byId("quality", HTMLElement);
  const tile = mode === "multi" ? tiles[heardTile] : null;
  const q = mode === "multi" ? tile?.player.quality : main?.quality;
  const shown = mode === "multi" ? tile?.feed : mainFeed();
  if (shown && streams.get(shown)?.privacy) {
    box.textContent = "paused for privacy: no picture is sent";
    box.dataset.grade = "fair";
    return;
  }
  if (!q) {
    box.textContent = "";
    delete box.dataset.grade;
    return;
  }
  box.dataset.grade = q.grade;
  const where = tile?.feed ? `${feedLabel(titles, tile.feed)}: ` : "";
  box.textContent = `${where}${q.grade} · ${q.width || "?"}×${q.height || "?"} · ${q.fps.toFixed(0)} fps · ` +
    (q.transport === "hls" ? `HLS, ${(q.networkMs / 1000).toFixed(1)} s behind the live edge` : `network + buffer ${Math.round(q.networkMs)} ms`);
}

async function start() {
  const info = await openEvent(event, token, {
    example: "/watch/your-event",
    missing: "Open the link from your invitation: it carries your access to this course.",
  });
  if (!info) return;
  you = info.you;
  byId("title", HTMLElement).textContent = info.event.title;
  byId("who", HTMLElement).textContent = `${you.name} · ${you.role}`;
  document.title = `ORcast · ${info.event.title}`;
  titles = new Map(info.event.theatres.map((t) => [t.slug, t.title]));
  // ?quality=low in the address (a link for a viewer known to be on a slow connection) presets the menu
  const asked = new URL(location.href).searchParams.get("quality");
  const qualityChoice = byId("quality-choice", HTMLSelectElement);
  if (asked && [...qualityChoice.options].some((o) => o.value === asked)) qualityChoice.value = asked;
  main = new FeedPlayer(video, token, { onState: onMainState, choice: qualityChoice.value });
  showRendition();
  thumbs = new Thumbnails(event, token);
  const conn = byId("conn", HTMLElement);
  const socket = openEventSocket(event, token, {
    onStreams,
    onMessage: (data) => {
      if (!drawings.onMessage(data) && data.type === "error" && data.about) drawTool?.say(data.message);
    },
    onState: (s, again, restarted) => {
      if (s === "connected") drawings.watch(true);
      setStatus(conn, s === "connected" ? "connected" : "server unreachable, reconnecting …", s === "connected" ? "ok" : "warn");
      if (serverUp !== (s === "connected")) {
        serverUp = s === "connected";
        renderFeeds();
      }
      if (again) [main, ...tiles.map((t) => t.player), qa, talk].forEach((x) => x?.retryNow(restarted));
    },
    onMediaLost: (ids) => [main, ...tiles.map((t) => t.player)].forEach((x) => x?.sessionsLost(ids)),
    onClosing: (reason, kind) => {
      socket.close();
      shutdown();
      setStatus(conn, kind === "kicked" ? "removed" : "link no longer valid", "bad");
      showNoAccess(closedMessage(reason, kind));
    },
  });
  // a picture over HLS is seconds behind the OR: its strokes wait as long (less the drawer's own delay)
  drawings = new FeedDrawings((m) => socket.send(m), (feed) => (main?.transport === "hls" && feed === mainFeed()
    ? Math.max(0, (main.quality?.networkMs ?? 0) - 300) : 0));
  overlay = new StrokeOverlay(video);
  drawTool = new DrawTool({ drawings, overlay, toolbar: byId("draw-bar", HTMLElement),
    feed: () => (mode === "single" ? mainFeed() : null),
    lagMs: () => main?.quality?.networkMs ?? 0 });
  onStreams(info.streams);
  byId("view-single", HTMLButtonElement).addEventListener("click", () => setMode("single"));
  byId("view-multi", HTMLButtonElement).addEventListener("click", () => setMode("multi"));
  const unmute = byId("unmute", HTMLButtonElement);
  unmute.addEventListener("click", () => {
    const on = unmute.dataset.on !== "true";
    unmute.dataset.on = String(on);
    unmute.textContent = on ? "Sound off" : "Sound on";
    applyAudio();
  });
  const choice = byId("quality-choice", HTMLSelectElement);
  choice.addEventListener("change", () => {
    // every picture on the page (a 2×2 view is four players); talk-back stays as it is
    for (const player of [main, ...tiles.map((t) => t.player)]) player.choose(choice.value);
    showRendition();
  });
  byId("fullscreen", HTMLButtonElement).addEventListener("click", () => {
    const target = mode === "single" ? document.querySelector(".main-tile") : byId("multi", HTMLElement);
    if (document.fullscreenElement) document.exitFullscreen();
    else target.requestFullscreen().catch(() => {});
  });
  // Q&A
  const canAsk = you.capabilities.includes("ask");
  byId("ask", HTMLFormElement).hidden = !canAsk;
  byId("ask-theatre", HTMLSelectElement).replaceChildren(option("", "any theatre"), ...info.event.theatres.map((t) => option(t.slug, t.title)));
  byId("ask", HTMLFormElement).addEventListener("submit", ask);
  const askText = byId("ask-text", HTMLTextAreaElement);
  askText.addEventListener("input", () => {
    byId("ask-count", HTMLElement).textContent = `${askText.value.length} / ${askLimit()}`;
  });
  qa = new QaConnection(event, token, {
    onQuestions: renderQuestions,
    onSlots: renderOnAir,
    onState: (s) => document.querySelector(".qa").classList.toggle("offline", s !== "connected"),
  }).start();
  // faculty: speak to the OR
  if (you.capabilities.includes("talkback")) {
    const panel = byId("talkback", HTMLElement);
    panel.hidden = false;
    const allowed = you.theatre ? info.event.theatres.filter((t) => t.slug === you.theatre) : info.event.theatres;
    byId("tb-theatre", HTMLSelectElement).replaceChildren(...allowed.map((t) => option(t.slug, t.title)));
    byId("tb-start", HTMLButtonElement).addEventListener("click", startTalking);
    byId("tb-stop", HTMLButtonElement).addEventListener("click", stopTalking);
  }
  window.addEventListener("pagehide", () => { main.stop(); stopTalking(); });
  qualityTimer = setInterval(showQuality, 1000);
}

// The link stopped working: every connection and timer of the page ends (nothing may keep
// asking the server with a dead link, or touch the elements the notice replaced).
function shutdown() {
  clearInterval(qualityTimer);
  main?.drop();
  for (const t of tiles) t.player.drop();
  tiles = [];
  for (const p of talkbackPlayers.values()) p.player.drop();
  talkbackPlayers.clear();
  qa?.drop();
  thumbs?.stop();
  talk?.drop();
  talk = null;
  stopTalking();
}

start();

// A read-only handle for diagnostics and browser tests (see exposeForTests).
exposeForTests({
  get peer() { return main?.pc; },
  get session() { return main?._session; },
  get recoveries() { return main?.recoveries ?? 0; },
  get transport() { return main?.transport; },
  get fellBack() { return main?.fellBack ?? false; },
  get state() { return main?.state; },
  get hlsBehind() { return main?._hls?.behindWallClock ?? null; },
  get path() { return main?.path; },
  get tiles() { return tiles.map((t) => ({ feed: t.feed, state: t.player.state, peer: t.player.pc })); },
  get talk() { return talk; },
  get talkback() { return [...talkbackPlayers.values()].map((p) => p.player.pc); },
  get qa() { return qa; },
  get drawings() { return drawings; },
  get strokes() { return overlay ? [...overlay.strokes.values()] : []; },
  get drawTool() { return drawTool; },
});
