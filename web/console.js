// @ts-check
// Technician console: one card per camera (feed name, camera, microphone, quality preset,
// preview, go live / stop), live health per feed, recording state and toggle, the question on
// air for this theatre shown large, and the faculty's talk-back played out loud. Every feed
// reconnects by itself with backoff when the network or the server drops.
import { api, closedMessage, openEvent, pathPart, showNoAccess, takeToken } from "./lib/auth.js";
import { byId, el, exposeForTests, option, setStatus } from "./lib/dom.js";
import { FeedDrawings } from "./lib/drawtool.js";
import { openEventSocket } from "./lib/eventsocket.js";
import { isRecording, isSlug, isTalkback } from "./lib/model.js";
import { FeedPlayer } from "./lib/player.js";
import { FeedPublisher } from "./lib/publisher.js";
import { QaConnection, onAirFor } from "./lib/qa.js";
import { StrokeOverlay } from "./lib/telestration.js";

const event = pathPart(2);
const fixedTheatre = pathPart(3);
const token = takeToken();
const theatreSelect = byId("theatre", HTMLSelectElement);
const NAMES = ["endoscope", "room", "overhead", "camera-4"];
const cards = [];
let streams = new Map();   // "theatre/feed" → stream info
let canRecord = false;
let devices = { video: [], audio: [] };
const talkback = new Map();
let qa = null;
let healthTimer = null;
let drawings = null;       // strokes faculty draw, over each card's preview

const theatre = () => theatreSelect.value;

async function listDevices() {
  try {
    const all = await navigator.mediaDevices.enumerateDevices();
    devices = { video: all.filter((d) => d.kind === "videoinput"), audio: all.filter((d) => d.kind === "audioinput") };
  } catch {
    devices = { video: [], audio: [] };
  }
  for (const card of cards) fillDevices(card);
}

function fillDevices(card) {
  const keep = (select) => select.value;
  const [cam, mic] = [keep(card.camera), keep(card.mic)];
  card.camera.replaceChildren(...devices.video.map((d, i) => option(d.deviceId, d.label || `Camera ${i + 1}`, d.deviceId === cam)));
  if (!cam && devices.video[cards.indexOf(card)]) card.camera.value = devices.video[cards.indexOf(card)].deviceId;
  card.mic.replaceChildren(option("", "no microphone", mic === ""),
    ...devices.audio.map((d, i) => option(d.deviceId, d.label || `Microphone ${i + 1}`, d.deviceId === mic)));
  // the first camera takes the first microphone until the technician chooses otherwise
  if (mic === "" && cards.indexOf(card) === 0 && !card.touched) card.mic.value = devices.audio[0]?.deviceId || "";
}

// Opens the card's camera; "Go live" waits for an opening under way (a quality just changed),
// else it would send the old camera's tracks, stopped a moment later.
function openMedia(card) {
  card.opening = reopenMedia(card);
  return card.opening;
}

async function reopenMedia(card) {
  card.media?.getTracks().forEach((t) => t.stop());
  card.media = null;
  const [width, height] = card.quality.value.split("x").map(Number);
  const video = { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: 30 } };
  if (card.camera.value) video.deviceId = { exact: card.camera.value };
  const audio = card.mic.value ? { deviceId: { exact: card.mic.value } } : false;
  card.media = await navigator.mediaDevices.getUserMedia({ video, audio });
  card.preview.srcObject = card.media;
  showCapture(card, width, height);
  return Number(card.quality.value.split("x")[2]);
}

// What the camera really gives, next to what the preset asked for: a camera that cannot do
// 1080p30 gives less without an error, and the technician must know before going live.
function showCapture(card, width, height) {
  const track = card.media?.getVideoTracks()[0];
  const got = track?.getSettings?.() || {};
  card.asked = { width, height };
  if (!got.width) return setText(card.capture, "");
  const fps = Math.round(got.frameRate || 0);
  const short = got.width < width || got.height < height || (fps && fps < 25);
  setText(card.capture, short
    ? `This camera gives ${got.width}×${got.height}${fps ? ` at ${fps} fps` : ""}, not the ${width}×${height} at 30 fps asked for: ` +
      "it offers no more (check its cable or USB port, or choose a lower quality)."
    : `Camera: ${got.width}×${got.height}${fps ? ` at ${fps} fps` : ""}.`, short ? "warn" : "info");
}

function setText(node, text, kind = "info") {
  node.textContent = text;
  node.dataset.kind = kind;
  node.hidden = !text;
}

// A passing message about an action (recording requested …): it never hides the feed's state.
function notice(card, text, kind) {
  setText(card.notice, text, kind);
  clearTimeout(card.noticeTimer);
  if (kind !== "bad") card.noticeTimer = setTimeout(() => setText(card.notice, ""), 5000);
}

function addCard() {
  if (cards.length >= NAMES.length) return;
  const node = /** @type {HTMLElement} */ (byId("card", HTMLTemplateElement).content.firstElementChild.cloneNode(true));
  const q = (sel) => node.querySelector(sel);
  const card = {
    node, feed: q(".feed"), camera: q(".camera"), mic: q(".mic"), quality: q(".quality"), preview: q(".preview"),
    start: q(".start"), stop: q(".stop"), record: q(".record"), privacy: q(".privacy"), remove: q(".remove"),
    status: q(".feed-status"), paused: false,
    health: q(".feed-health"), badge: q(".onair-badge"), capture: q(".capture"), notice: q(".card-notice"),
    media: null, opening: null, publisher: null, path: null, touched: false, asked: null, noticeTimer: null,
    overlay: null,
  };
  const used = new Set(cards.map((c) => c.feed.value));
  card.feed.value = NAMES.find((n) => !used.has(n));
  card.publisher = new FeedPublisher(token, {
    onState: (state, text) => {
      const labels = { live: `Live on ${card.path}`, connecting: "Connecting …", idle: "Not live" };
      setStatus(card.status, labels[state] || `${state === "reconnecting" ? "Reconnecting" : "Stopped"}: ${text}`,
        state === "live" ? "ok" : state === "failed" || state === "ended" ? "bad" : state === "idle" ? "info" : "warn");
      showBadge(card, state);
      if (state === "failed" || state === "ended") setButtons(card, false);
    },
  });
  card.start.addEventListener("click", () => goLive(card));
  card.overlay = new StrokeOverlay(card.preview);  // what faculty draw shows on the OR's own screen too
  card.stop.addEventListener("click", () => stopCard(card));
  card.remove.addEventListener("click", () => removeCard(card));
  card.record.addEventListener("click", () => toggleRecording(card));
  card.privacy.addEventListener("click", () => togglePrivacy(card));
  for (const select of [card.camera, card.mic, card.quality]) {
    select.addEventListener("change", async () => {
      card.touched = true;
      if (card.publisher.state !== "idle") return setStatus(card.status, "Stop the feed to change its camera or quality", "warn");
      try { await openMedia(card); } catch (error) { setStatus(card.status, `Camera: ${error.message}`, "bad"); }
    });
  }
  cards.push(card);
  byId("cards", HTMLElement).append(node);
  fillDevices(card);
  openMedia(card).then(listDevices).catch((error) => setStatus(card.status, `Camera: ${error.message}`, "bad"));
}

// The big, unmistakable state of a card: LIVE (red, as on a studio camera), RECONNECTING, OFF AIR.
function showBadge(card, state) {
  const kind = state === "live" ? "live" : ["connecting", "reconnecting"].includes(state) ? "warn" : "off";
  card.badge.dataset.kind = kind;
  card.badge.textContent = kind === "live" ? "LIVE" : kind === "warn" ? (state === "connecting" ? "CONNECTING" : "RECONNECTING") : "OFF AIR";
  card.node.dataset.state = kind;
}

// One click hides the feed from everyone at once (the server drops its pictures); again resumes it.
async function togglePrivacy(card) {
  if (!card.path) return;
  const [, t, name] = card.path.split("/");
  const paused = !card.paused;
  try {
    await api(token, `/api/events/${event}/privacy/${t}/${name}`, { method: "POST", body: { paused } });
    showPrivacy(card, paused);
    notice(card, paused ? "Paused for privacy: nobody sees this feed, nothing is recorded" : "Resumed", paused ? "warn" : "ok");
  } catch (error) {
    notice(card, `Privacy: ${error.message}`, "bad");
  }
}

function showPrivacy(card, paused) {
  card.paused = paused;
  card.privacy.textContent = paused ? "Resume" : "Privacy";
  card.privacy.setAttribute("aria-pressed", String(paused));
  card.node.dataset.privacy = String(paused);
}

function setButtons(card, live) {
  card.privacy.disabled = !live;
  card.start.disabled = live;
  card.stop.disabled = !live;
  card.feed.disabled = live;
  card.remove.disabled = live;
}

async function goLive(card) {
  const feed = card.feed.value.trim();
  if (!isSlug(feed)) return setStatus(card.status, "A feed name is lower-case letters, digits and '-', like endoscope or room", "bad");
  if (cards.some((c) => c !== card && c.path === `${event}/${theatre()}/${feed}`)) {
    return setStatus(card.status, "Another card already sends this feed name", "bad");
  }
  setButtons(card, true);
  try {
    await card.opening?.catch(() => {});  // its error was shown; opened again below
    const kbps = card.media ? Number(card.quality.value.split("x")[2]) : await openMedia(card);
    card.path = `${event}/${theatre()}/${feed}`;
    card.publisher.start(card.path, card.media, kbps);
  } catch (error) {
    setButtons(card, false);
    setStatus(card.status, `Could not open the camera: ${error.message}`, "bad");
  }
}

function stopCard(card) {
  card.publisher.stop();
  setButtons(card, false);
}

function removeCard(card) {
  stopCard(card);
  card.media?.getTracks().forEach((t) => t.stop());
  drawings?.detach(card.overlay);
  card.node.remove();
  cards.splice(cards.indexOf(card), 1);
}

async function toggleRecording(card) {
  const feed = card.feed.value.trim();
  const info = streams.get(`${theatre()}/${feed}`);
  const action = info && isRecording(info.recording) ? "stop" : "start";
  try {
    await api(token, `/api/events/${event}/recording`, { method: "POST", body: { action, theatre: theatre(), feed } });
    notice(card, action === "start" ? "Recording requested: ● REC shows when the server records" : "Recording stopped", "ok");
  } catch (error) {
    notice(card, `Recording: ${error.message}`, "bad");
  }
}

async function showHealth() {
  for (const card of cards) {
    const live = card.path && card.publisher.state === "live" ? card.path.split("/").slice(1).join("/") : null;
    drawings?.attach(card.overlay, live);
    const info = card.path ? streams.get(card.path.split("/").slice(1).join("/")) : null;
    const s = await card.publisher.sample();
    const parts = [];
    if (s) {
      parts.push(`sending ${s.width || "?"}×${s.height || "?"}`, `${s.fps.toFixed(0)} fps`, `${(s.kbps / 1000).toFixed(2)} Mbit/s`,
        `loss ${(s.loss * 100).toFixed(1)} %`);
      if (s.rttMs !== null) parts.push(`RTT ${s.rttMs.toFixed(0)} ms`);
      // a second, smaller encode of this camera: what viewers on weak links get
      if (card.publisher.sendsLow && card.publisher.lowActive) parts.push("+ low rendition for weak links");
      // the browser sends less than the camera gives when the network or the CPU cannot keep up
      const why = { bandwidth: "the network", cpu: "this computer's CPU" }[s.limitation];
      if (why) parts.push(`lowered for ${why}`);
    }
    if (info && card.publisher.state === "live") parts.push(`${info.viewers} watching`);
    card.health.textContent = parts.join(" · ");
    const recording = info?.recording || "off";
    card.record.hidden = !canRecord || !card.path;
    card.record.textContent = isRecording(recording) ? "Stop recording" : "Record";
    card.record.dataset.state = recording;
    if (recording === "recording") card.health.append(el("span", { className: "rec", text: " ● REC" }));
    if (recording === "failed") card.health.append(el("span", { className: "bad", text: " recording failed" }));
  }
}

// Faculty voices: the theatre's talk-back feeds, played out loud with their camera if any, each
// with who speaks, a level meter and a mute. The players watch their own picture and sound.
function syncTalkback() {
  const wanted = [...streams.values()].filter((s) => s.live && s.theatre === theatre() && isTalkback(s.feed));
  const keep = new Set(wanted.map((s) => s.feed));
  for (const [feed, entry] of talkback) {
    if (!keep.has(feed)) {
      entry.player.stop();
      entry.meter?.stop();
      entry.box.remove();
      talkback.delete(feed);
    }
  }
  const box = byId("talkback", HTMLElement);
  for (const s of wanted) {
    let known = talkback.get(s.feed);
    if (known && known.hasVideo !== Boolean(s.video_codec)) {
      // the feed changed (a camera added or dropped): play it anew
      known.player.stop();
      known.meter?.stop();
      known.box.remove();
      talkback.delete(s.feed);
      known = undefined;
    }
    if (known) {
      known.who.textContent = s.publisher_name || "Faculty";
      known.player.setLive(true, s.stalled);
      continue;
    }
    const hasVideo = Boolean(s.video_codec);
    const video = el("video", { autoplay: true, playsinline: true, "aria-label": `Talk-back from ${s.publisher_name || "faculty"}` });
    video.hidden = !hasVideo;
    const who = el("strong", { text: s.publisher_name || "Faculty" });
    const state = el("span", { className: "tb-state", text: "connecting …" });
    const level = el("meter", { className: "tb-level", min: "0", max: "1", value: "0", "aria-label": "Voice level" });
    const mute = el("button", { className: "tb-mute", "aria-pressed": "false" }, "Mute");
    mute.addEventListener("click", () => {
      video.muted = !video.muted;
      mute.setAttribute("aria-pressed", String(video.muted));
      mute.textContent = video.muted ? "Unmute" : "Mute";
    });
    const figure = el("figure", { className: `tb-tile${hasVideo ? "" : " tb-audio"}` }, video,
      el("figcaption", {}, el("span", { className: "tb-speaking", text: "Speaking: " }), who, state),
      el("div", { className: "tb-controls" }, level, mute));
    const player = new FeedPlayer(video, token, {
      choice: "high",  // the console is on the hospital's LAN: talk-back as sent, never switched down
      onState: (st, text) => { state.textContent = st === "live" ? "" : ` · ${text || st}`; },
    });
    player.play(`${event}/${s.feed}`, true, hasVideo);
    video.play().catch(() => {});
    const entry = { player, box: figure, who, hasVideo, meter: levelMeter(video, level) };
    talkback.set(s.feed, entry);
    box.append(figure);
  }
  box.querySelector(".empty")?.toggleAttribute("hidden", talkback.size > 0);
}

// A level meter on what a <video> plays (WebAudio reads the received stream; nothing is sent).
function levelMeter(video, meter) {
  let context = null;
  let timer = null;
  const attach = () => {
    const stream = video.srcObject;
    if (!stream || !stream.getAudioTracks().length) return false;
    try {
      context = new AudioContext();
      const analyser = context.createAnalyser();
      analyser.fftSize = 512;
      context.createMediaStreamSource(stream).connect(analyser);
      const data = new Float32Array(analyser.fftSize);
      timer = setInterval(() => {
        analyser.getFloatTimeDomainData(data);
        let sum = 0;
        for (const x of data) sum += x * x;
        meter.value = Math.min(1, Math.sqrt(sum / data.length) * 4);
      }, 100);
      return true;
    } catch {
      return true;  // no WebAudio: no meter, the sound still plays
    }
  };
  const waiter = setInterval(() => { if (attach()) clearInterval(waiter); }, 500);
  return { stop() { clearInterval(waiter); clearInterval(timer); context?.close().catch(() => {}); } };
}

function onStreams(list) {
  streams = new Map(list.map((s) => {
    const [, t, name] = s.path.split("/");
    return [`${t}/${name}`, { ...s, feed: `${t}/${name}`, theatre: t, name }];
  }));
  // each card encodes its low rendition only while someone watches it
  for (const card of cards) {
    const info = card.path ? streams.get(card.path.split("/").slice(1).join("/")) : null;
    card.publisher.wantLow(Boolean(info?.low_wanted));
    if (info && Boolean(info.privacy_by) !== card.paused) showPrivacy(card, Boolean(info.privacy_by));  // set elsewhere too
  }
  syncTalkback();
}

function showOnAir(slots) {
  const q = onAirFor(slots, theatre());
  byId("onair", HTMLElement).hidden = !q;
  if (!q) return;
  byId("onair-text", HTMLElement).textContent = q.text;
  byId("onair-meta", HTMLElement).textContent = `${q.author} · ${q.votes} vote${q.votes === 1 ? "" : "s"}`;
}

async function start() {
  const info = await openEvent(event, token, {
    example: "/console/your-event/or1",
    missing: "Open the technician link you were given: it carries your access to this theatre.",
  });
  if (!info) return;
  const you = info.you;
  if (!you.capabilities.includes("publish")) {
    return showNoAccess(`A ${you.role} link cannot send feeds; the technician console needs a technician link.` +
      (you.capabilities.includes("talkback") ? " Faculty speak to the OR from the viewer page." : ""));
  }
  canRecord = you.capabilities.includes("record");
  byId("title", HTMLElement).textContent = `${info.event.title} · console`;
  byId("who", HTMLElement).textContent = `${you.name} · ${you.role}`;
  document.title = `ORcast · ${info.event.title} · console`;
  const theatres = you.theatre ? info.event.theatres.filter((t) => t.slug === you.theatre) : info.event.theatres;
  if (fixedTheatre && !theatres.some((t) => t.slug === fixedTheatre)) theatres.push({ slug: fixedTheatre, title: fixedTheatre });
  theatreSelect.replaceChildren(...theatres.map((t) => option(t.slug, t.title)));
  if (fixedTheatre) {
    theatreSelect.value = fixedTheatre;
    theatreSelect.disabled = true;
  }
  theatreSelect.addEventListener("change", () => { syncTalkback(); if (qa) showOnAir(qa.slots); });
  byId("add", HTMLButtonElement).addEventListener("click", addCard);
  const conn = byId("conn", HTMLElement);
  const socket = openEventSocket(event, token, {
    onStreams,
    onMessage: (data) => drawings.onMessage(data),
    onState: (s, again, restarted) => {
      if (s === "connected") drawings.watch(true);
      setStatus(conn, s === "connected" ? "server connected" : "server reconnecting …", s === "connected" ? "ok" : "warn");
      if (again) [...cards.map((c) => c.publisher), ...[...talkback.values()].map((t) => t.player), qa].forEach((x) => x?.retryNow(restarted));
    },
    onMediaLost: (ids) => [...talkback.values()].forEach((t) => t.player.sessionsLost(ids)),
    onClosing: (reason, kind) => {
      socket.close();
      clearInterval(healthTimer);
      for (const card of cards) { card.publisher.drop(); setButtons(card, false); }
      for (const entry of talkback.values()) { entry.player.drop(); entry.meter?.stop(); }
      talkback.clear();
      qa?.drop();
      setStatus(conn, kind === "kicked" ? "removed" : "link no longer valid", "bad");
      showNoAccess(closedMessage(reason, kind));
    },
  });
  drawings = new FeedDrawings((m) => socket.send(m));
  onStreams(info.streams);
  qa = new QaConnection(event, token, { onSlots: showOnAir }).start();
  navigator.mediaDevices?.addEventListener?.("devicechange", listDevices);
  window.addEventListener("pagehide", () => cards.forEach(stopCard));
  addCard();
  healthTimer = setInterval(showHealth, 1000);
}

start();

// A read-only handle for diagnostics and browser tests (see exposeForTests).
exposeForTests({
  get peers() { return cards.map((c) => c.publisher.pc); },
  get peer() { return cards[0]?.publisher.pc; },
  get feeds() { return cards.map((c) => ({ path: c.path, state: c.publisher.state, lowActive: c.publisher.lowActive })); },
  get talkback() { return [...talkback.values()].map((t) => t.player.pc); },
  get strokes() { return cards.map((c) => ({ path: c.path, strokes: c.overlay ? [...c.overlay.strokes.values()] : [] })); },
});
