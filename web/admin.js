// @ts-check
// Organizer page: mint role links, see live sessions, kick, revoke.
import { api, noAccessMessage, showNoAccess, takeToken } from "./lib/auth.js";
import { byId, duration, el, setStatus } from "./lib/dom.js";

const token = takeToken();
const eventSelect = byId("event", HTMLSelectElement);
const status = byId("status", HTMLElement);
let events = [];
const openDetails = new Set();

const cell = (text) => el("td", { text: text ?? "" });
const button = (text, onclick) => el("td", { className: "actions" }, el("button", { onclick }, text));

function current() {
  return events.find((e) => e.slug === eventSelect.value);
}

async function act(promise, done) {
  try {
    const result = await promise;
    setStatus(status, done(result), "ok");
  } catch (error) {
    setStatus(status, error.message, "bad");
  }
  refresh();
}

async function loadEvents(select) {
  ({ events } = await api(token, "/api/events"));
  eventSelect.replaceChildren(...events.map((e) => new Option(`${e.title} (${e.slug})`, e.slug)));
  if (select) eventSelect.value = select;
  const theatre = byId("mint", HTMLFormElement).elements.namedItem("theatre");
  if (!(theatre instanceof HTMLSelectElement)) throw new Error("the link form has no theatre list; reload the page");
  theatre.replaceChildren(new Option("any", ""), ...(current()?.theatres || []).map((t) => new Option(t.title, t.slug)));
  const sourceTheatre = byId("add-source", HTMLFormElement).elements.namedItem("theatre");
  if (!(sourceTheatre instanceof HTMLSelectElement)) throw new Error("the camera form has no theatre list; reload the page");
  sourceTheatre.replaceChildren(...(current()?.theatres || []).map((t) => new Option(t.title, t.slug)));
}

function renderTheatres() {
  const event = current();
  byId("theatres", HTMLElement).replaceChildren(...(event?.theatres || []).map((t) => el("li", { text: `${t.title} (${t.slug})` })));
  byId("recordings-link", HTMLAnchorElement).href = event ? `/recordings/${event.slug}` : "/recordings";
}

async function download(format, what = "questions") {
  const event = current();
  try {
    const response = await fetch(`/api/events/${event.slug}/${what}?format=${format}`,
      { headers: { Authorization: `Bearer ${token}` } });
    if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error || response.statusText);
    const name = (response.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/)?.[1] || `${what}.${format}`;
    const url = URL.createObjectURL(await response.blob());
    const a = el("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 5000);
    setStatus(status, `Downloaded ${name}`, "ok");
  } catch (error) {
    setStatus(status, `Export failed: ${error.message}`, "bad");
  }
}

// A person is a link: a viewer page alone holds a WebSocket, a Q&A connection and one media
// connection per feed it shows, so connections are grouped under the link that opened them.
function groupByLink(sessions) {
  const groups = new Map();
  for (const s of sessions) {
    const key = s.jti || s.id;  // a guest of a public event has no link
    if (!groups.has(key)) groups.set(key, { jti: s.jti, name: s.name || "guest", role: s.role, theatre: s.theatre, items: [] });
    groups.get(key).items.push(s);
  }
  return [...groups.values()].sort((a, b) => a.role.localeCompare(b.role) || a.name.localeCompare(b.name));
}

const KIND_WORDS = { publisher: "sending", viewer: "watching", qa: "Q&A", websocket: "live updates" };

function summary(items) {
  const counts = new Map();
  for (const s of items) {
    const word = KIND_WORDS[s.kind] || s.kind;
    counts.set(word, [...(counts.get(word) || []), s.path ? s.path.split("/").slice(1).join("/") : null]);
  }
  return [...counts.entries()].map(([word, paths]) => {
    const feeds = paths.filter(Boolean);
    return feeds.length ? `${word} ${feeds.join(", ")}` : paths.length > 1 ? `${word} ×${paths.length}` : word;
  }).join(" · ");
}

function personRow(event, group) {
  const longest = Math.max(...group.items.map((s) => s.seconds));
  const shared = group.items.filter((s) => s.kind === "websocket").length > 1;
  const key = group.jti || group.items[0].id;
  const details = el("details", {
    open: openDetails.has(key),  // the table is rebuilt every 3 s: keep what the organizer opened
    ontoggle: (e) => (e.currentTarget.open ? openDetails.add(key) : openDetails.delete(key)),
  }, el("summary", { text: summary(group.items) }),
    el("ul", { className: "conn-list" }, group.items.map((s) =>
      el("li", { text: `${KIND_WORDS[s.kind] || s.kind}${s.path ? ` ${s.path}` : ""} · ${s.state} · ${duration(s.seconds)}${s.node ? ` · node ${s.node}` : ""}` }))));
  const kick = el("button", {
    disabled: !group.jti,
    title: group.jti ? "End this link's pages now" : "A guest has no link to kick",
    onclick: () => {
      const pages = group.items.filter((s) => s.kind === "websocket").length;
      if (shared && !confirm(`${group.name}'s link is open on ${pages} pages (a shared link?). Kick ends all of them. Continue?`)) return;
      act(api(token, `/api/events/${event.slug}/links/${group.jti}/connections`, { method: "DELETE" }),
        (r) => `${group.name} removed: ${r.pages} page(s), ${r.sessions} connection(s) closed. Revoke the link to keep them out.`);
    },
  }, "Kick");
  return el("tr", {}, el("td", { text: group.name }), el("td", { text: `${group.role}${group.theatre ? ` (${group.theatre})` : ""}` }),
    el("td", {}, details, shared ? el("span", { className: "badge", text: "shared link" }) : null),
    el("td", { text: duration(longest) }), el("td", { className: "actions" }, kick));
}

function sourceRow(event, s) {
  const feed = s.path.split("/").slice(1).join("/");
  const shown = s.state === "idle" ? "idle (on demand: pulled when someone watches)"
    : s.on_demand && s.stops_in_s != null ? `${s.state} (on demand: nobody watches, stops in ${Math.ceil(s.stops_in_s)} s)`
      : s.on_demand ? `${s.state} (on demand)` : s.state;
  const state = s.error && s.state !== "live" ? `${shown}: ${s.error}` : shown;
  return el("tr", {},
    cell(feed), cell(s.url), el("td", { className: ["live", "idle"].includes(s.state) ? "ok" : "warn", text: state }),
    cell(s.transcoding || "none"),
    s.origin === "config" ? cell("in the config file")
      : button("Stop pulling", () => act(api(token, `/api/events/${event.slug}/sources/${feed}`, { method: "DELETE" }),
        () => `Stopped pulling ${feed}`)));
}

async function refresh() {
  const event = current();
  renderTheatres();
  if (!event) return;
  try {
    const [{ sessions, nodes_unreachable: unreachable }, { tokens }, { sources }] = await Promise.all([
      api(token, `/api/events/${event.slug}/sessions`),
      api(token, `/api/events/${event.slug}/tokens`),
      api(token, `/api/events/${event.slug}/sources`),
    ]);
    byId("sources", HTMLElement).replaceChildren(...(sources.length ? sources.map((s) => sourceRow(event, s))
      : [el("tr", {}, el("td", { className: "empty", colspan: "5", text: "No pulled feed." }))]));
    byId("sessions", HTMLElement).replaceChildren(...(sessions.length
      ? groupByLink(sessions).map((g) => personRow(event, g))
      : [el("tr", {}, el("td", { className: "empty", colspan: "5", text: "Nobody is connected." }))]));
    const tokenRows = tokens.slice().reverse().map((t) => el("tr", {},
      cell(t.name), cell(t.role), cell(t.theatre || "any"),
      cell(new Date(t.expires_at * 1000).toLocaleString()), cell(t.state), cell(String(t.live_sessions)),
      t.state === "valid"
        ? button("Revoke", () => act(api(token, `/api/events/${event.slug}/tokens/${t.jti}`, { method: "DELETE" }),
          (r) => `Revoked ${t.name}'s link; ${r.closed_sessions} session(s) closed`))
        : cell("")));
    byId("tokens", HTMLElement).replaceChildren(...tokenRows);
    if (unreachable?.length) {
      setStatus(status, `Node ${unreachable.join(", ")} did not answer: its connections are not listed (it may have died)`, "bad");
    }
  } catch (error) {
    setStatus(status, error.message, "bad");
  }
}

byId("mint", HTMLFormElement).addEventListener("submit", (e) => {
  e.preventDefault();
  const form = new FormData(byId("mint", HTMLFormElement));
  const body = { role: form.get("role"), name: form.get("name"), ttl: form.get("ttl") || undefined };
  if (form.get("theatre")) body.theatre = form.get("theatre");
  if (form.get("max_sessions")) body.max_sessions = Number(form.get("max_sessions"));
  act(api(token, `/api/events/${current().slug}/tokens`, { method: "POST", body }), (r) => {
    byId("minted", HTMLElement).hidden = false;
    byId("link", HTMLInputElement).value = r.link;
    return `Minted a ${r.role} link for ${r.name}; send it only to them`;
  });
});

const addSource = byId("add-source", HTMLFormElement);
addSource.addEventListener("submit", (e) => {
  e.preventDefault();
  const form = new FormData(addSource);
  const body = { theatre: form.get("theatre"), feed: form.get("feed"), url: form.get("url") };
  if (form.get("token")) body.token = form.get("token");
  if (form.get("on_demand")) body.on_demand = true;
  act(api(token, `/api/events/${current().slug}/sources`, { method: "POST", body })
    .then((r) => { addSource.reset(); return r; }),
  (r) => r.source.on_demand ? `${r.source.path} is pulled from ${r.source.url} whenever someone watches`
    : `Pulling ${r.source.path} from ${r.source.url}`);
});

byId("copy", HTMLButtonElement).addEventListener("click", async () => {
  const link = byId("link", HTMLInputElement);
  link.select();
  try {
    await navigator.clipboard.writeText(link.value);
    setStatus(status, "Link copied", "ok");
  } catch {
    setStatus(status, "Copy blocked by the browser: the link is selected, press Ctrl+C", "warn");
  }
});

byId("revoke-all", HTMLButtonElement).addEventListener("click", () => {
  const event = current();
  if (!confirm(`Every link of ${event.title} stops working now, including organizer links of this event. Continue?`)) return;
  act(api(token, `/api/events/${event.slug}/revoke-all`, { method: "POST" }),
    (r) => `All links revoked; ${r.closed_sessions} session(s) closed`);
});

byId("create", HTMLFormElement).addEventListener("submit", (e) => {
  e.preventDefault();
  const form = new FormData(byId("create", HTMLFormElement));
  const theatres = String(form.get("theatres") || "").split(",").map((t) => t.trim()).filter(Boolean);
  const body = { slug: form.get("slug"), title: form.get("title"), theatres, viewers_draw: form.get("viewers_draw") === "on",
    stroke_fade_s: Number(form.get("stroke_fade_s") || 8) };
  act(api(token, "/api/events", { method: "POST", body })
    .then(async (r) => { await loadEvents(r.event.slug); return r; }),
  (r) => `Created ${r.event.title}`);
});

const addTheatre = byId("add-theatre", HTMLFormElement);
addTheatre.addEventListener("submit", (e) => {
  e.preventDefault();
  const form = new FormData(addTheatre);
  const body = { slug: form.get("slug"), ...(form.get("title") ? { title: form.get("title") } : {}) };
  act(api(token, `/api/events/${current().slug}/theatres`, { method: "POST", body })
    .then(async (r) => { await loadEvents(current().slug); addTheatre.reset(); return r; }),
  () => `Added theatre ${body.slug}`);
});

byId("export-csv", HTMLButtonElement).addEventListener("click", () => download("csv"));
byId("export-json", HTMLButtonElement).addEventListener("click", () => download("json"));
byId("export-annotations-csv", HTMLButtonElement).addEventListener("click", () => download("csv", "annotations"));
byId("export-annotations-json", HTMLButtonElement).addEventListener("click", () => download("json", "annotations"));

eventSelect.addEventListener("change", () => loadEvents(eventSelect.value).then(refresh));

async function start() {
  if (!token) return showNoAccess("Open the organizer link you were given (or mint one with `orcast token --role organizer`).");
  let me;
  try {
    ({ you: me } = await api(token, "/api/me"));
    if (me.role !== "organizer") return showNoAccess(`This is the organizer page; a ${me.role} link cannot open it.`);
    await loadEvents(me.event === "*" ? undefined : me.event);
  } catch (error) {
    return showNoAccess(noAccessMessage(error));
  }
  byId("who", HTMLElement).textContent = `${me.name} · organizer${me.event === "*" ? " of every event" : ""}`;
  byId("create-panel", HTMLElement).hidden = me.event !== "*";
  setStatus(status, events.length ? "Ready" : "No event yet: create one", events.length ? "ok" : "warn");
  refresh();
  setInterval(refresh, 3000);
}

start();
