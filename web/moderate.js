// @ts-check
// Moderator desk: the live question queue (sorted by votes or time), approve / reject / edit /
// merge / answered / pin with keyboard shortcuts, on air per theatre, the hall layout, and the
// health of every theatre's feeds.
import { api, closedMessage, openEvent, pathPart, showNoAccess, takeToken } from "./lib/auth.js";
import { ago, byId, el, exposeForTests, feedLabel, option, setStatus } from "./lib/dom.js";
import { hallFeeds, hallQuestion } from "./lib/hallview.js";
import { LAYOUT_TILES } from "./lib/model.js";
import { QaConnection, byTime, byVotes } from "./lib/qa.js";
import { Thumbnails } from "./lib/thumbnails.js";

const event = pathPart(2);
const token = takeToken();
const list = byId("questions", HTMLElement);
const deskStatus = byId("desk-status", HTMLElement);
/** @type {[string, string, (q: any) => boolean][]} key, label, test */
const FILTERS = [
  ["pending", "Pending", (q) => q.state === "pending"],
  ["approved", "Approved", (q) => q.state === "approved" || q.state === "on_air"],
  ["on_air", "On air", (q) => q.state === "on_air"],
  ["answered", "Answered", (q) => q.state === "answered"],
  ["rejected", "Rejected", (q) => q.state === "rejected"],
  ["all", "All", () => true],
];
let filter = "pending";
let selected = null;  // question id
let titles = new Map();
let theatres = [];
let feeds = [];       // "theatre/feed" known to be or have been live
let qa = null;
let live = [];        // live feeds, for the hall preview
let paused = new Set(); // feeds paused for privacy: no still of them is shown
let slots = {};
let thumbs = null;
let lastHealthAt = 0;
const timers = [];

// The selected question stays in the list it was picked from after an action moves it out
// (approve in Pending, then put it on air): it leaves when another is selected.
function visible() {
  const test = FILTERS.find(([key]) => key === filter)[2];
  const sort = byId("sort", HTMLSelectElement).value === "time" ? byTime : byVotes;
  return [...qa.questions.values()].filter((q) => test(q) || q.id === selected).sort(sort);
}

function renderFilters() {
  const box = byId("filters", HTMLElement);
  box.replaceChildren(...FILTERS.map(([key, label, test]) => {
    const count = [...qa.questions.values()].filter(test).length;
    return el("button", { "aria-pressed": String(key === filter), onclick: () => { filter = key; render(); } },
      `${label} `, el("span", { className: "count", text: String(count) }));
  }));
}

function row(q) {
  const moved = !FILTERS.find(([key]) => key === filter)[2](q);
  const badges = [moved && `now ${q.state.replace("_", " ")}`, q.anonymous && "anonymous", q.edited && "edited", q.pinned && "pinned",
    q.merged_into && `merged into #${q.merged_into}`].filter(Boolean);
  return el("li", {
    className: "question", "aria-selected": String(q.id === selected), tabindex: "0",
    dataset: { id: q.id, state: q.state }, onclick: () => select(q.id),
  },
  el("span", { className: "qid", text: `#${q.id}` }),
  el("span", { className: "votes", title: "votes", text: `▲ ${q.votes}` }),
  el("div", { className: "qbody" },
    el("p", { className: "qtext", text: q.text }),
    el("div", { className: "qmeta" },
      `${q.author}${q.theatre ? ` · ${titles.get(q.theatre) || q.theatre}` : ""} · ${ago(q.created_at)} · ${q.state.replace("_", " ")}`,
      ...badges.map((b) => el("span", { className: "badge", text: b })))));
}

function render() {
  if (!qa) return;
  renderFilters();
  const items = visible();
  list.replaceChildren(...items.map(row));
  if (!items.length) list.replaceChildren(el("li", { className: "empty", text: "No questions here." }));
  const q = qa.questions.get(selected);
  byId("sel-text", HTMLElement).textContent = q ? `#${q.id} · ${q.text}` : "Select a question (click, or j/k).";
  byId("sel-text", HTMLElement).classList.toggle("empty", !q);
  if (q && document.activeElement !== byId("edit-text", HTMLTextAreaElement)) {
    byId("edit-text", HTMLTextAreaElement).value = q.text;
  }
  if (q) byId("air-theatre", HTMLSelectElement).value = q.theatre || "*";
}

function select(id) {
  selected = id;
  render();
  list.querySelector(`[data-id="${id}"]`)?.scrollIntoView({ block: "nearest" });
}

function move(step) {
  const items = visible();
  if (!items.length) return;
  const index = items.findIndex((q) => q.id === selected);
  const next = items[Math.max(0, Math.min(items.length - 1, index < 0 ? 0 : index + step))];
  select(next.id);
}

const DONE = { approve: "approved", answered: "marked answered", pin: "pin changed", on_air: "on air",
  off_air: "taken off air", reject: "rejected", merge: "merged", edit: "edit saved", layout: "the hall follows" };

async function act(type, fields = {}) {
  if (!selected && type !== "layout") return setStatus(deskStatus, "Select a question first.", "warn");
  const id = selected;
  try {
    await qa.request(type, type === "layout" ? fields : { question: id, ...fields });
    setStatus(deskStatus, type === "layout" ? `Hall layout: ${DONE.layout}` : `#${id} ${DONE[type] || "done"}`, "ok");
  } catch (error) {
    setStatus(deskStatus, error.message, "bad");
  }
}

const ACTIONS = {
  approve: () => act("approve"),
  answered: () => act("answered"),
  pin: () => act("pin", { pinned: !qa.questions.get(selected)?.pinned }),
  "on-air": () => {
    const theatre = byId("air-theatre", HTMLSelectElement).value;
    return act("on_air", { theatre });
  },
  "off-air": () => act("off_air"),
  reject: () => {
    const reason = byId("reason", HTMLInputElement).value.trim();
    return act("reject", reason ? { reason } : {}).then(() => { byId("reason", HTMLInputElement).value = ""; });
  },
  merge: () => {
    const into = Number(byId("merge-into", HTMLInputElement).value);
    if (!into) return setStatus(deskStatus, "Type the number of the question it duplicates.", "warn");
    return act("merge", { into });
  },
  edit: () => act("edit", { text: byId("edit-text", HTMLTextAreaElement).value }),
};

const KEYS = { a: "approve", d: "answered", p: "pin", o: "on-air", x: "off-air" };

function onKey(e) {
  if (e.target.closest("input, textarea, select") || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "j" || e.key === "ArrowDown") move(1);
  else if (e.key === "k" || e.key === "ArrowUp") move(-1);
  else if (KEYS[e.key]) ACTIONS[KEYS[e.key]]();
  else if (e.key === "r") byId("reason", HTMLInputElement).focus();
  else if (e.key === "m") byId("merge-into", HTMLInputElement).focus();
  else if (e.key === "e") byId("edit-text", HTMLTextAreaElement).focus();
  else return;
  e.preventDefault();
}

function renderSlots(next) {
  slots = next;
  renderPreview();
  const items = theatres.concat([{ slug: "*", title: "All theatres" }]).map((t) => {
    const q = slots[t.slug];
    return el("li", {}, el("strong", { text: t.title }), " ",
      q ? el("span", { text: `#${q.id} ${q.text}` }) : el("span", { className: "empty", text: "nothing on air" }),
      q ? el("button", { onclick: () => qa.request("off_air", { question: q.id }).catch((er) => setStatus(deskStatus, er.message, "bad")) }, "Take off") : null);
  });
  byId("slots", HTMLElement).replaceChildren(...items);
}

function renderLayout(layout) {
  renderPreview();
  byId("layout-mode", HTMLSelectElement).value = layout.mode;
  const box = byId("layout-feeds", HTMLElement);
  // feeds seen live, then the usual names for every theatre (a feed may be chosen before it is live)
  const usual = theatres.flatMap((t) => ["endoscope", "room", "overhead"].map((name) => `${t.slug}/${name}`));
  const choices = [...new Set([...feeds, ...layout.feeds, ...usual])];
  box.replaceChildren(...[0, 1, 2, 3].map((i) => {
    const select = el("select", { "aria-label": `Hall tile ${i + 1}` }, option("", "(automatic)"),
      choices.map((f) => option(f, feedLabel(titles, f), layout.feeds[i] === f)));
    return el("label", {}, `Tile ${i + 1} `, select);
  }));
}

function applyLayout(e) {
  e.preventDefault();
  const mode = byId("layout-mode", HTMLSelectElement).value;
  const tiles = LAYOUT_TILES[mode];
  const chosen = [...document.querySelectorAll("#layout-feeds select")].filter((s) => s instanceof HTMLSelectElement).slice(0, tiles).map((s) => s.value).filter(Boolean);
  act("layout", { mode, feeds: chosen });
}

const STATE_TEXT = (s) => (!s.live ? (s.on_demand ? "on demand (idle)" : "off air") : s.stalled ? "reconnecting" : "live");

// The privacy pause, as on the technician's console: every viewer and the hall see a card
// instead of the picture at once, and the recording has a gap
function privacyButton(s) {
  const [, t, f] = s.path.split("/");
  const paused = Boolean(s.privacy_by);
  return el("button", {
    className: "privacy", "aria-pressed": String(paused),
    "aria-label": `${paused ? "Resume" : "Privacy pause"} ${feedLabel(titles, `${t}/${f}`)}`,
    title: paused ? `paused by ${s.privacy_by}` : "Hide this feed from everyone at once (the recording has a gap)",
    onclick: async () => {
      try {
        await api(token, `/api/events/${event}/privacy/${t}/${f}`, { method: "POST", body: { paused: !paused } });
        setStatus(deskStatus, `${feedLabel(titles, `${t}/${f}`)}: ${paused ? "resumed" : "paused for privacy"}`, "ok");
      } catch (error) {
        setStatus(deskStatus, `Privacy: ${error.message}`, "bad");
      }
      refreshHealth();
    },
  }, paused ? "Resume" : "Privacy");
}

async function refreshHealth() {
  const table = byId("health", HTMLElement);
  try {
    const { streams } = await api(token, `/api/events/${event}/streams`);
    lastHealthAt = Date.now();
    live = [];
    paused = new Set();
    for (const s of streams) {
      const feed = s.path.split("/").slice(1).join("/");
      if (!feeds.includes(feed)) feeds.push(feed);
      if (s.live) live.push(feed);
      if (s.privacy_by) paused.add(feed);
    }
    table.classList.remove("stale");
    byId("health-note", HTMLElement).hidden = true;
    table.replaceChildren(...streams.map((s) => el("tr", {},
      el("td", { text: feedLabel(titles, s.path.split("/").slice(1).join("/")) }),
      el("td", { className: s.live && !s.stalled ? "ok" : "warn", text: STATE_TEXT(s) }),
      el("td", { text: String(s.viewers) }),
      el("td", { text: s.live ? `${(s.bitrate_in_bps / 1e6).toFixed(1)} Mbit/s` : "–" }),
      el("td", { text: s.recording === "recording" ? "● REC" : s.recording }),
      el("td", {}, privacyButton(s)))));
    renderPreview();
  } catch (error) {
    // what the table shows is no longer known: say since when, never keep showing "live"
    table.classList.add("stale");
    const note = byId("health-note", HTMLElement);
    note.hidden = false;
    note.textContent = error.status ? `Theatres: ${error.message}`
      : `The server cannot be reached; these states are from ${lastHealthAt ? new Date(lastHealthAt).toLocaleTimeString() : "before"} and may be out of date.`;
    for (const cell of table.querySelectorAll("td:nth-child(2)")) {
      cell.className = "warn";
      cell.textContent = "unknown";
    }
  }
}

// A small picture of the hall: the layout's tiles with each feed's still, and the question the
// hall would show under them (the same rules as the hall's own page).
function renderPreview() {
  const box = byId("hall-preview", HTMLElement);
  if (!box || !qa) return;
  const layout = qa.layout;
  const shown = hallFeeds(layout, live);
  const tiles = shown.map((feed) => {
    const img = el("img", { alt: "", className: "preview-img" });
    thumbs?.attach(img, feed, live.includes(feed), paused.has(feed));
    const note = paused.has(feed) ? " (paused for privacy)" : live.includes(feed) ? "" : " (waiting)";
    return el("figure", { className: "preview-tile" }, img, el("figcaption", { text: `${feedLabel(titles, feed)}${note}` }));
  });
  const pick = hallQuestion(slots, shown);
  const grid = el("div", { className: "preview-tiles", dataset: { mode: layout.mode } },
    tiles.length ? tiles : [el("p", { className: "empty", text: "Waiting for an operating room to go live …" })]);
  const band = pick
    ? el("div", { className: "preview-band" }, el("strong", { text: `Question for ${pick[0] === "*" ? "all theatres" : titles.get(pick[0]) || pick[0]}: ` }),
      el("span", { text: pick[1].text }))
    : el("div", { className: "preview-band empty", text: "No question on air for what the hall shows." });
  box.replaceChildren(grid, band);
}

// Words for the Q&A connection's state that a moderator can act on.
function qaStateText(state, detail) {
  if (state === "connected") return "Q&A live";
  if (state === "ended") return `Q&A stopped: ${detail}`;
  const network = !detail || /fetch|network|load failed|connection/i.test(detail);
  return network ? "Q&A: the server cannot be reached; trying again …" : `Q&A: reconnecting (${detail})`;
}

async function start() {
  const info = await openEvent(event, token, {
    example: "/moderate/your-event",
    missing: "Open the moderator link you were given: it carries your access to this course.",
  });
  if (!info) return;
  if (!info.you.capabilities.includes("moderate")) {
    return showNoAccess(`A ${info.you.role} link cannot moderate; the moderator desk needs a moderator link.`);
  }
  byId("title", HTMLElement).textContent = `${info.event.title} · moderator desk`;
  byId("who", HTMLElement).textContent = `${info.you.name} · ${info.you.role}`;
  document.title = `ORcast · ${info.event.title} · moderate`;
  theatres = info.event.theatres;
  titles = new Map(theatres.map((t) => [t.slug, t.title]));
  byId("air-theatre", HTMLSelectElement).replaceChildren(option("*", "all theatres"),
    ...theatres.map((t) => option(t.slug, t.title)));
  for (const [id, run] of Object.entries(ACTIONS)) {
    byId(id, HTMLButtonElement).addEventListener("click", (e) => { e.preventDefault(); run(); });
  }
  byId("sort", HTMLSelectElement).addEventListener("change", render);
  byId("layout-form", HTMLFormElement).addEventListener("submit", applyLayout);
  document.addEventListener("keydown", onKey);
  const qaState = byId("qa-state", HTMLElement);
  qa = new QaConnection(event, token, {
    onQuestions: render,
    onSlots: renderSlots,
    onLayout: renderLayout,
    onState: (state, detail) => setStatus(qaState, qaStateText(state, detail), state === "connected" ? "ok" : "warn"),
    onEnded: (reason) => {
      timers.forEach(clearInterval);
      thumbs?.stop();
      qa?.drop();
      showNoAccess(closedMessage(reason, /revoked/.test(reason) ? "revoked" : /expired/.test(reason) ? "expired"
        : /removed/.test(reason) ? "kicked" : "ended"));
    },
  }).start();
  thumbs = new Thumbnails(event, token);
  renderSlots({});
  await refreshHealth();
  renderLayout(qa.layout);
  timers.push(setInterval(refreshHealth, 2000), setInterval(render, 30000));  // ages ("3 min ago")
}

start();

exposeForTests({ get qa() { return qa; }, get selected() { return selected; } });
