// @ts-check
// Recordings: start/stop recording (technician, moderator, organizer) and the library:
// list, play and seek in the browser, download, delete (organizer).
import { api, noAccessMessage, pathPart, showNoAccess, takeToken } from "./lib/auth.js";
import { byId, el, exposeForTests, feedLabel, setStatus } from "./lib/dom.js";
import { isRecording } from "./lib/model.js";
import { LASER_FADE_MS, StrokeOverlay } from "./lib/telestration.js";

const token = takeToken();
const $ = (id) => byId(id, HTMLElement);
const status = $("status");
const eventSelect = byId("event", HTMLSelectElement);
const theatreSelect = byId("theatre", HTMLSelectElement);
const player = byId("player", HTMLVideoElement);
let me = null;
let events = [];
let refreshTimer = null;

const cell = (text) => el("td", { text: text ?? "" });
const actionButton = (text, onclick, label) => el("button", { onclick, "aria-label": label }, text);
const actions = (...buttons) => el("td", { className: "actions" }, buttons);
const emptyRow = (span, text) => el("tr", {}, el("td", { className: "empty", colspan: String(span), text }));

// 3725 → "1:02:05": a recording's length as a player shows it
function clock(seconds) {
  const s = Math.round(seconds || 0);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}:${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}` : `${m}:${String(r).padStart(2, "0")}`;
}

function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "kB", "MB", "GB", "TB"];
  const i = Math.min(units.length - 1, Math.floor(Math.log10(n) / 3));
  return `${(n / 10 ** (i * 3)).toFixed(i ? 1 : 0)} ${units[i]}`;
}

// People read local times and the theatres' names, not UTC with milliseconds and stream paths.
const when = (iso) => new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
function titlesOf(slug) {
  return new Map((events.find((e) => e.slug === slug)?.theatres || []).map((t) => [t.slug, t.title]));
}
const feedName = (path) => feedLabel(titlesOf(path.split("/")[0]), path.split("/").slice(1).join("/"));

const can = (capability) => me && me.capabilities.includes(capability);
const eventSlug = () => eventSelect.value;

async function act(promise, done) {
  try {
    setStatus(status, done(await promise), "ok");
  } catch (error) {
    setStatus(status, error.message, "bad");
  }
  refresh();
}

function record(action, theatre, feed) {
  const body = { action };
  if (theatre) body.theatre = theatre;
  if (feed) body.feed = feed;
  const what = feed ? `${theatre}/${feed}` : theatre || "the whole event";
  return act(api(token, `/api/events/${eventSlug()}/recording`, { method: "POST", body }),
    () => `Recording ${action === "start" ? "started" : "stopped"} for ${what}.`);
}

async function refreshControl() {
  if (!can("record")) return;
  const state = await api(token, `/api/events/${eventSlug()}/recording`);
  $("control-panel").hidden = false;
  const low = state.free_bytes < state.min_free_bytes;
  $("disk").textContent = `${bytes(state.free_bytes)} free for recordings` +
    (low ? ` — below the minimum of ${bytes(state.min_free_bytes)}: recording cannot start` : "") +
    (state.event_records ? " · this event records every feed that goes live" : "");
  const rows = state.feeds.map((f) => {
    const [, theatre, feed] = f.path.split("/");
    const stateText = f.error ? `${f.state}: ${f.error}` : f.state;
    const on = isRecording(f.state);
    return el("tr", { dataset: { state: f.state } },
      cell(feedName(f.path)), cell(stateText), cell(f.file || ""), cell(clock(f.duration_s)), cell(bytes(f.size_bytes)),
      actions(on ? actionButton("Stop", () => record("stop", theatre, feed), `Stop recording ${f.path}`)
        : actionButton("Record", () => record("start", theatre, feed), `Record ${feedName(f.path)}`)));
  });
  $("feeds").replaceChildren(...(rows.length ? rows : [emptyRow(6, "No feed is live.")]));
  const event = events.find((e) => e.slug === eventSlug());
  const theatres = me.theatre ? [me.theatre] : (event?.theatres || []).map((t) => t.slug);
  const buttons = [];
  if (!me.theatre) {
    buttons.push(actionButton("Record whole event", () => record("start")),
      actionButton("Stop whole event", () => record("stop")));
  }
  for (const t of theatres) {
    buttons.push(actionButton(`Record ${t}`, () => record("start", t)), actionButton(`Stop ${t}`, () => record("stop", t)));
  }
  $("scope-buttons").replaceChildren(...buttons);
}

// A recording is one or more segments (cut every recording.segment_minutes, or where the
// feed reconnected): they play one after the other, as one recording.
let playing = null;  // {rec, index, start}
const overlay = new StrokeOverlay(player);
let annotations = { recording: null, items: [], fadeS: 8 };

// The strokes drawn on the live picture, each at its second in the recording
async function loadAnnotations(rec) {
  if (annotations.recording === rec.id) return;
  annotations = { recording: rec.id, items: [], fadeS: 8 };
  try {
    const [e, t, f] = rec.path.split("/");
    const got = await api(token, `/api/recordings/${e}/${t}/${f}/${rec.id}/annotations`);
    annotations = { recording: rec.id, items: got.annotations.sort((a, b) => a.t - b.t), fadeS: got.fade_s };
  } catch (error) {
    $("strokes-note").textContent = `Drawings could not be loaded: ${error.message}`;
    return;
  }
  const n = annotations.items.filter((a) => a.type === "stroke").length;
  $("strokes-note").textContent = n ? `${n} drawing${n === 1 ? "" : "s"} on this recording` : "Nothing was drawn on this recording";
  showStrokes();
}

/** The strokes on screen at second `at` of the recording, as the live pages showed them. */
function strokesAt(items, at, fadeS) {
  const shown = [];
  for (const s of items) {
    if (s.type !== "stroke" || s.t > at) continue;
    const removed = items.find((o) => o.t >= s.t && o.t <= at && ((o.type === "undo" && o.id === s.id) ||
      (o.type === "clear" && o.t > s.t)));
    if (removed) continue;
    const pinOp = items.filter((o) => o.type === "pin" && o.id === s.id && o.t <= at).pop();
    const pinned = pinOp ? pinOp.pinned : s.pinned;
    const drawn = Math.max(0.001, (s.ended_at || s.started_at) - s.started_at);
    const since = at - s.t;
    const fade = s.kind === "laser" ? LASER_FADE_MS / 1000 : fadeS;
    const left = drawn + fade - since;
    if (!pinned && left <= 0) continue;
    const part = Math.min(1, since / drawn);
    const points = s.kind === "free" || s.kind === "laser" ? s.points.slice(0, Math.max(1, Math.ceil(s.points.length * part))) : s.points;
    shown.push({ ...s, points, alpha: pinned ? 1 : Math.min(1, left / (s.kind === "laser" ? fade : 1)) });
  }
  return shown;
}

function showStrokes() {
  if (!playing) return;
  overlay.showStill(strokesAt(annotations.items, playing.start + player.currentTime, annotations.fadeS));
}

function followPlayback() {
  showStrokes();
  if (!player.paused && !player.ended) requestAnimationFrame(followPlayback);
}

function play(rec, index = 0) {
  const start = rec.segments.slice(0, index).reduce((sum, s) => sum + (s.duration_s || 0), 0);
  playing = { rec, index, start };
  $("player-panel").hidden = false;
  loadAnnotations(rec);
  $("player-title").textContent = `${feedName(rec.path)} · ${when(rec.started_at)}` +
    (rec.segments.length > 1 ? ` · part ${index + 1} of ${rec.segments.length} (from ${clock(start)})` : "");
  player.src = rec.segments[index].url;
  player.dataset.file = rec.segments[index].file;
  player.dataset.part = String(index);
  const items = rec.segments.map((s, i) => el("li", {},
    el("button", { onclick: () => play(rec, i), "aria-label": `Play segment ${i + 1}`, "aria-pressed": String(i === index) },
      `${i + 1}: ${clock(s.duration_s)}${s.start_reason !== "start" ? ` (${s.start_reason})` : ""}`),
    " ",
    el("a", { href: `${s.url}${s.url.includes("?") ? "&" : "?"}download=1`, download: true }, "download")));
  $("segments").replaceChildren(...items);
  player.play().catch(() => {});
}

async function refreshLibrary() {
  const query = new URLSearchParams({ event: eventSlug() });
  if (theatreSelect.value) query.set("theatre", theatreSelect.value);
  const { recordings } = await api(token, `/api/recordings?${query}`);
  const rows = recordings.map((rec) => {
    const buttons = [actionButton("Play", () => play(rec), `Play ${feedName(rec.path)} ${when(rec.started_at)}`)];
    if (can("admin") && rec.state !== "recording") {
      buttons.push(actionButton("Delete", () => {
        if (!confirm(`Delete the recording of ${feedName(rec.path)} from ${when(rec.started_at)}? This cannot be undone.`)) return;
        const [e, t, f] = rec.path.split("/");
        act(api(token, `/api/recordings/${e}/${t}/${f}/${rec.id}`, { method: "DELETE" }), () => "Recording deleted.");
      }, `Delete ${feedName(rec.path)} ${when(rec.started_at)}`));
    }
    return el("tr", { dataset: { recording: rec.id } },
      cell(feedName(rec.path)), cell(when(rec.started_at)), cell(clock(rec.duration_s)),
      cell(bytes(rec.size_bytes)), cell(rec.codecs.join(" + ")), cell(rec.width ? `${rec.width}×${rec.height}` : ""),
      cell(rec.state), cell(String(rec.segments.length)), actions(...buttons));
  });
  $("library").replaceChildren(...(rows.length ? rows : [emptyRow(9, "No recordings yet.")]));
}

async function refresh() {
  clearTimeout(refreshTimer);
  try {
    await Promise.all([refreshControl(), refreshLibrary()]);
    if (status.dataset.kind !== "bad" && status.dataset.kind !== "ok") setStatus(status, "Up to date.", "info");
  } catch (error) {
    setStatus(status, error.message, "bad");
  }
  refreshTimer = setTimeout(refresh, 3000);
}

async function main() {
  if (!token) {
    showNoAccess("Open the link you were given (it ends in #token=…).");
    return;
  }
  try {
    ({ you: me } = await api(token, "/api/me"));
    if (!can("library")) throw new Error(`A ${me.role} link cannot see recordings; ask the organizer for a technician, moderator or organizer link.`);
    ({ events } = await api(token, "/api/events"));
  } catch (error) {
    showNoAccess(error.status ? noAccessMessage(error) : error.message);
    return;
  }
  $("who").textContent = `${me.name} · ${me.role}${me.theatre ? ` · ${me.theatre}` : ""}`;
  eventSelect.replaceChildren(...events.map((e) => new Option(`${e.title} (${e.slug})`, e.slug)));
  const wanted = pathPart(2);
  if (wanted && events.some((e) => e.slug === wanted)) eventSelect.value = wanted;
  const fillTheatres = () => {
    const event = events.find((e) => e.slug === eventSlug());
    const theatres = me.theatre ? [me.theatre] : (event?.theatres || []).map((t) => t.slug);
    const names = titlesOf(eventSlug());
    theatreSelect.replaceChildren(new Option("all", ""), ...theatres.map((t) => new Option(names.get(t) || t, t)));
  };
  fillTheatres();
  eventSelect.addEventListener("change", () => { fillTheatres(); refresh(); });
  theatreSelect.addEventListener("change", refresh);
  player.addEventListener("play", followPlayback);
  player.addEventListener("seeked", showStrokes);
  player.addEventListener("timeupdate", showStrokes);
  byId("show-strokes", HTMLInputElement).addEventListener("change", (e) => overlay.setHidden(!(/** @type {HTMLInputElement} */ (e.target)).checked));
  player.addEventListener("ended", () => {
    if (playing && playing.index + 1 < playing.rec.segments.length) play(playing.rec, playing.index + 1);
  });
  refresh();
}

main();

// A read-only handle for diagnostics and browser tests (see exposeForTests).
exposeForTests({
  get annotations() { return annotations; },
  get strokes() { return [...overlay.strokes.values()]; },
});
