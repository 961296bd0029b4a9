// Moderator desk: the live question queue (sorted by votes or time), approve / reject / edit /
// merge / answered / pin with keyboard shortcuts, on air per theatre, the hall layout, and the
// health of every theatre's feeds.
import { api, openEvent, pathPart, showNoAccess, takeToken } from "./lib/auth.js";
import { ago, el, feedLabel, option } from "./lib/dom.js";
import { QaConnection, byTime, byVotes } from "./lib/qa.js";
import { setStatus } from "./lib/webrtchttp.js";

const event = pathPart(2);
const token = takeToken();
const list = document.getElementById("questions");
const deskStatus = document.getElementById("desk-status");
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

function visible() {
  const test = FILTERS.find(([key]) => key === filter)[2];
  const sort = document.getElementById("sort").value === "time" ? byTime : byVotes;
  return [...qa.questions.values()].filter(test).sort(sort);
}

function renderFilters() {
  const box = document.getElementById("filters");
  box.replaceChildren(...FILTERS.map(([key, label, test]) => {
    const count = [...qa.questions.values()].filter(test).length;
    return el("button", { "aria-pressed": String(key === filter), onclick: () => { filter = key; render(); } },
      `${label} `, el("span", { className: "count", text: String(count) }));
  }));
}

function row(q) {
  const badges = [q.anonymous && "anonymous", q.edited && "edited", q.pinned && "pinned",
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
  document.getElementById("sel-text").textContent = q ? `#${q.id} · ${q.text}` : "Select a question (click, or j/k).";
  document.getElementById("sel-text").classList.toggle("empty", !q);
  if (q && document.activeElement !== document.getElementById("edit-text")) {
    document.getElementById("edit-text").value = q.text;
  }
  if (q) document.getElementById("air-theatre").value = q.theatre || "*";
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

async function act(type, fields = {}) {
  if (!selected && type !== "layout") return setStatus(deskStatus, "Select a question first.", "warn");
  try {
    await qa.request(type, type === "layout" ? fields : { question: selected, ...fields });
    setStatus(deskStatus, `${type.replace("_", " ")}: done`, "ok");
  } catch (error) {
    setStatus(deskStatus, error.message, "bad");
  }
}

const ACTIONS = {
  approve: () => act("approve"),
  answered: () => act("answered"),
  pin: () => act("pin", { pinned: !qa.questions.get(selected)?.pinned }),
  "on-air": () => {
    const theatre = document.getElementById("air-theatre").value;
    return act("on_air", { theatre });
  },
  "off-air": () => act("off_air"),
  reject: () => {
    const reason = document.getElementById("reason").value.trim();
    return act("reject", reason ? { reason } : {}).then(() => { document.getElementById("reason").value = ""; });
  },
  merge: () => {
    const into = Number(document.getElementById("merge-into").value);
    if (!into) return setStatus(deskStatus, "Type the number of the question it duplicates.", "warn");
    return act("merge", { into });
  },
  edit: () => act("edit", { text: document.getElementById("edit-text").value }),
};

const KEYS = { a: "approve", d: "answered", p: "pin", o: "on-air", x: "off-air" };

function onKey(e) {
  if (e.target.closest("input, textarea, select") || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "j" || e.key === "ArrowDown") move(1);
  else if (e.key === "k" || e.key === "ArrowUp") move(-1);
  else if (KEYS[e.key]) ACTIONS[KEYS[e.key]]();
  else if (e.key === "r") document.getElementById("reason").focus();
  else if (e.key === "m") document.getElementById("merge-into").focus();
  else if (e.key === "e") document.getElementById("edit-text").focus();
  else return;
  e.preventDefault();
}

function renderSlots(slots) {
  const items = theatres.concat([{ slug: "*", title: "All theatres" }]).map((t) => {
    const q = slots[t.slug];
    return el("li", {}, el("strong", { text: t.title }), " ",
      q ? el("span", { text: `#${q.id} ${q.text}` }) : el("span", { className: "empty", text: "nothing on air" }),
      q ? el("button", { onclick: () => qa.request("off_air", { question: q.id }).catch((er) => setStatus(deskStatus, er.message, "bad")) }, "Take off") : null);
  });
  document.getElementById("slots").replaceChildren(...items);
}

function renderLayout(layout) {
  document.getElementById("layout-mode").value = layout.mode;
  const box = document.getElementById("layout-feeds");
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
  const mode = document.getElementById("layout-mode").value;
  const tiles = { single: 1, side: 2, grid: 4 }[mode];
  const chosen = [...document.querySelectorAll("#layout-feeds select")].slice(0, tiles).map((s) => s.value).filter(Boolean);
  act("layout", { mode, feeds: chosen });
}

async function refreshHealth() {
  try {
    const { streams } = await api(token, `/api/events/${event}/streams`);
    for (const s of streams) {
      const feed = s.path.split("/").slice(1).join("/");
      if (!feeds.includes(feed)) feeds.push(feed);
    }
    document.getElementById("health").replaceChildren(...streams.map((s) => el("tr", {},
      el("td", { text: feedLabel(titles, s.path.split("/").slice(1).join("/")) }),
      el("td", { className: s.live ? "ok" : "warn", text: s.live ? "live" : "reconnecting" }),
      el("td", { text: String(s.viewers) }),
      el("td", { text: `${(s.bitrate_in_bps / 1e6).toFixed(1)} Mbit/s` }),
      el("td", { text: s.recording === "recording" ? "● REC" : s.recording }))));
  } catch (error) {
    setStatus(deskStatus, `Theatre health: ${error.message}`, "warn");
  }
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
  document.getElementById("title").textContent = `${info.event.title} · moderator desk`;
  document.getElementById("who").textContent = `${info.you.name} · ${info.you.role}`;
  document.title = `ORcast · ${info.event.title} · moderate`;
  theatres = info.event.theatres;
  titles = new Map(theatres.map((t) => [t.slug, t.title]));
  document.getElementById("air-theatre").replaceChildren(option("*", "all theatres"),
    ...theatres.map((t) => option(t.slug, t.title)));
  for (const [id, run] of Object.entries(ACTIONS)) {
    document.getElementById(id).addEventListener("click", (e) => { e.preventDefault(); run(); });
  }
  document.getElementById("sort").addEventListener("change", render);
  document.getElementById("layout-form").addEventListener("submit", applyLayout);
  document.addEventListener("keydown", onKey);
  const qaState = document.getElementById("qa-state");
  qa = new QaConnection(event, token, {
    onQuestions: render,
    onSlots: renderSlots,
    onLayout: renderLayout,
    onState: (state, detail) => setStatus(qaState, state === "connected" ? "Q&A live" : `Q&A ${state} ${detail}`,
      state === "connected" ? "ok" : "warn"),
    onEnded: (reason) => showNoAccess(`The Q&A refused this link: ${reason}`),
  }).start();
  renderSlots({});
  await refreshHealth();
  renderLayout(qa.layout);
  setInterval(refreshHealth, 2000);
  setInterval(render, 30000);  // ages ("3 min ago")
}

start();

window.orcast = { get qa() { return qa; }, get selected() { return selected; } };
