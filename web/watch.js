// Watches an event: lists its theatres' feeds, plays one over WHEP, switches without reload,
// and reconnects by itself when the server or network drops.
import { api, noAccessMessage, pathPart, showNoAccess, takeToken } from "./lib/auth.js";
import { openEventSocket } from "./lib/eventsocket.js";
import { HttpError, hangUp, negotiate, setStatus } from "./lib/webrtchttp.js";

const video = document.getElementById("video");
const status = document.getElementById("status");
const stats = document.getElementById("stats");
const feedList = document.getElementById("feeds");

const event = pathPart(2);
const token = takeToken();
let path = null;            // event/theatre/feed being played
let pc = null;
let sessionUrl = null;
let retryDelay = 1000;
let retryTimer = null;
let lastDecoded = 0;
let lastStatsAt = 0;
let stalledSince = 0;
let ended = false;
const known = new Map();    // path → {live, theatre title}
let theatreTitles = new Map();

document.getElementById("unmute").addEventListener("click", () => {
  video.muted = !video.muted;
  document.getElementById("unmute").textContent = video.muted ? "Unmute" : "Mute";
});

function label(p) {
  const [, theatre, feed] = p.split("/");
  return `${theatreTitles.get(theatre) || theatre} · ${feed}`;
}

function renderFeeds() {
  feedList.replaceChildren();
  for (const [p, info] of [...known.entries()].sort()) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.textContent = label(p);
    button.setAttribute("aria-pressed", String(p === path));
    const state = document.createElement("span");
    state.className = "state";
    state.dataset.live = String(info.live);
    state.textContent = info.live ? `live · ${info.viewers} watching` : "off air";
    button.append(state);
    button.addEventListener("click", () => play(p));
    li.append(button);
    feedList.append(li);
  }
}

function onStreams(streams) {
  for (const info of known.values()) info.live = false;
  for (const s of streams) known.set(s.path, { live: s.live, viewers: s.viewers });
  if (!path) {
    const wanted = new URLSearchParams(location.search).get("feed");
    const first = streams.find((s) => s.live);
    if (wanted && /^[a-z0-9-]+\/[a-z0-9-]+$/.test(wanted)) play(`${event}/${wanted}`);
    else if (first) play(first.path);
    else setStatus(status, "Waiting for an operating room to go live …", "warn");
  }
  renderFeeds();
}

function end(message) {
  ended = true;
  teardown();
  showNoAccess(message);
}

function scheduleReconnect(message, delayMs) {
  setStatus(status, message, "warn");
  teardown();
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, delayMs);
}

function teardown() {
  if (pc) {
    pc.onconnectionstatechange = null;
    pc.close();
  }
  hangUp(sessionUrl, token);
  pc = null;
  sessionUrl = null;
}

function play(newPath) {
  if (newPath === path && pc) return;
  path = newPath;
  const url = new URL(location.href);
  url.searchParams.set("feed", newPath.split("/").slice(1).join("/"));
  history.replaceState(null, "", url.pathname + url.search);
  retryDelay = 1000;
  teardown();
  clearTimeout(retryTimer);
  renderFeeds();
  connect();
}

async function connect() {
  if (ended || !path) return;
  const peer = new RTCPeerConnection();
  const target = path;
  pc = peer;
  peer.addTransceiver("video", { direction: "recvonly" });
  peer.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  video.srcObject = stream;
  peer.ontrack = (e) => stream.addTrack(e.track);
  peer.onconnectionstatechange = () => {
    if (peer !== pc) return;
    if (peer.connectionState === "connected") {
      setStatus(status, `Live · ${label(target)}`, "ok");
      retryDelay = 1000;
    } else if (peer.connectionState === "failed" || peer.connectionState === "closed") {
      scheduleReconnect(`${label(target)}: connection lost, reconnecting …`, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    }
  };
  try {
    setStatus(status, `Connecting to ${label(target)} …`);
    sessionUrl = await negotiate(peer, `/whep/${target}`, token);
  } catch (error) {
    if (peer !== pc) return;
    if (error instanceof HttpError && (error.status === 401 || error.status === 403)) {
      end(`${error.message}`);
    } else if (error instanceof HttpError && error.status === 409) {
      scheduleReconnect(`Waiting for ${label(target)} to go live …`, (error.retryAfter || 2) * 1000);
    } else {
      const delay = error.retryAfter ? error.retryAfter * 1000 : retryDelay;
      retryDelay = Math.min(retryDelay * 2, 10000);
      scheduleReconnect(`Cannot play ${label(target)}: ${error.message}. Retrying in ${Math.round(delay / 1000)} s …`, delay);
    }
  }
}

async function showStats() {
  if (!pc) return;
  const report = await pc.getStats();
  for (const s of report.values()) {
    if (s.type !== "inbound-rtp" || s.kind !== "video") continue;
    const now = performance.now();
    const decoded = s.framesDecoded || 0;
    const fps = lastStatsAt ? ((decoded - lastDecoded) * 1000) / (now - lastStatsAt) : 0;
    const delay = s.jitterBufferEmittedCount ? (s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000 : 0;
    stats.textContent = `${s.frameWidth || "?"}×${s.frameHeight || "?"} · ${fps.toFixed(0)} fps · ` +
      `buffer ${delay.toFixed(0)} ms · lost ${s.packetsLost || 0}`;
    if (pc.connectionState === "connected") {
      if (decoded === lastDecoded) {
        stalledSince = stalledSince || now;
        if (now - stalledSince > 2000) setStatus(status, `${label(path)} is reconnecting …`, "warn");
      } else {
        stalledSince = 0;
        setStatus(status, `Live · ${label(path)}`, "ok");
      }
    }
    lastDecoded = decoded;
    lastStatsAt = now;
  }
}

async function start() {
  if (!event) return showNoAccess("The address is incomplete: it should look like /watch/your-event.");
  if (!token) return showNoAccess("Open the link from your invitation: it carries your access to this course.");
  let info;
  try {
    info = await api(token, `/api/events/${event}`);
  } catch (error) {
    return showNoAccess(noAccessMessage(error));
  }
  document.getElementById("title").textContent = info.event.title;
  document.getElementById("who").textContent = `${info.you.name} · ${info.you.role}`;
  document.title = `ORcast · ${info.event.title}`;
  theatreTitles = new Map(info.event.theatres.map((t) => [t.slug, t.title]));
  onStreams(info.streams);
  openEventSocket(event, token, {
    onStreams,
    onClosing: (reason) => end(`This link no longer works here: ${reason}. Ask the organiser for a new one.`),
  });
  window.addEventListener("pagehide", teardown);
  setInterval(showStats, 1000);
}

start();

// A read-only handle for diagnostics and browser tests (getStats from the console).
window.orcast = { get peer() { return pc; }, get path() { return path; } };
