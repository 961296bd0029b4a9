// Organiser page: mint role links, see live sessions, kick, revoke.
import { api, noAccessMessage, showNoAccess, takeToken } from "./lib/auth.js";
import { setStatus } from "./lib/webrtchttp.js";

const token = takeToken();
const eventSelect = document.getElementById("event");
const status = document.getElementById("status");
let events = [];

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  return td;
}

function button(text, onClick) {
  const td = document.createElement("td");
  td.className = "actions";
  const b = document.createElement("button");
  b.textContent = text;
  b.addEventListener("click", onClick);
  td.append(b);
  return td;
}

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
  const theatre = document.querySelector("#mint [name=theatre]");
  theatre.replaceChildren(new Option("any", ""), ...(current()?.theatres || []).map((t) => new Option(t.title, t.slug)));
}

function renderTheatres() {
  const event = current();
  document.getElementById("theatres").replaceChildren(...(event?.theatres || []).map((t) => {
    const li = document.createElement("li");
    li.textContent = `${t.title} (${t.slug})`;
    return li;
  }));
  document.getElementById("recordings-link").href = event ? `/recordings/${event.slug}` : "/recordings";
}

async function download(format) {
  const event = current();
  try {
    const response = await fetch(`/api/events/${event.slug}/questions?format=${format}`,
      { headers: { Authorization: `Bearer ${token}` } });
    if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error || response.statusText);
    const name = (response.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/)?.[1] || `questions.${format}`;
    const url = URL.createObjectURL(await response.blob());
    const a = Object.assign(document.createElement("a"), { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 5000);
    setStatus(status, `Downloaded ${name}`, "ok");
  } catch (error) {
    setStatus(status, `Export failed: ${error.message}`, "bad");
  }
}

async function refresh() {
  const event = current();
  renderTheatres();
  if (!event) return;
  try {
    const [{ sessions }, { tokens }] = await Promise.all([
      api(token, `/api/events/${event.slug}/sessions`),
      api(token, `/api/events/${event.slug}/tokens`),
    ]);
    const sessionRows = sessions.map((s) => {
      const tr = document.createElement("tr");
      tr.append(cell(s.kind), cell(s.name), cell(s.role), cell(s.path || ""), cell(s.state),
        cell(`${Math.round(s.seconds)} s`),
        button("Kick", () => act(api(token, `/api/events/${event.slug}/sessions/${s.id}`, { method: "DELETE" }),
          () => `Closed ${s.name}'s ${s.kind} session`)));
      return tr;
    });
    document.getElementById("sessions").replaceChildren(...sessionRows);
    const tokenRows = tokens.slice().reverse().map((t) => {
      const tr = document.createElement("tr");
      tr.append(cell(t.name), cell(t.role), cell(t.theatre || "any"),
        cell(new Date(t.expires_at * 1000).toLocaleString()), cell(t.state), cell(String(t.live_sessions)),
        t.state === "valid"
          ? button("Revoke", () => act(api(token, `/api/events/${event.slug}/tokens/${t.jti}`, { method: "DELETE" }),
            (r) => `Revoked ${t.name}'s link; ${r.closed_sessions} session(s) closed`))
          : cell(""));
      return tr;
    });
    document.getElementById("tokens").replaceChildren(...tokenRows);
  } catch (error) {
    setStatus(status, error.message, "bad");
  }
}

document.getElementById("mint").addEventListener("submit", (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  const body = { role: form.get("role"), name: form.get("name"), ttl: form.get("ttl") || undefined };
  if (form.get("theatre")) body.theatre = form.get("theatre");
  if (form.get("max_sessions")) body.max_sessions = Number(form.get("max_sessions"));
  act(api(token, `/api/events/${current().slug}/tokens`, { method: "POST", body }), (r) => {
    document.getElementById("minted").hidden = false;
    document.getElementById("link").value = r.link;
    return `Minted a ${r.role} link for ${r.name}; send it only to them`;
  });
});

document.getElementById("copy").addEventListener("click", async () => {
  const link = document.getElementById("link");
  link.select();
  try {
    await navigator.clipboard.writeText(link.value);
    setStatus(status, "Link copied", "ok");
  } catch {
    setStatus(status, "Copy blocked by the browser: the link is selected, press Ctrl+C", "warn");
  }
});

document.getElementById("revoke-all").addEventListener("click", () => {
  const event = current();
  if (!confirm(`Every link of ${event.title} stops working now, including organiser links of this event. Continue?`)) return;
  act(api(token, `/api/events/${event.slug}/revoke-all`, { method: "POST" }),
    (r) => `All links revoked; ${r.closed_sessions} session(s) closed`);
});

document.getElementById("create").addEventListener("submit", (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  const theatres = String(form.get("theatres") || "").split(",").map((t) => t.trim()).filter(Boolean);
  act(api(token, "/api/events", { method: "POST", body: { slug: form.get("slug"), title: form.get("title"), theatres } })
    .then(async (r) => { await loadEvents(r.event.slug); return r; }),
  (r) => `Created ${r.event.title}`);
});

document.getElementById("add-theatre").addEventListener("submit", (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  const body = { slug: form.get("slug"), ...(form.get("title") ? { title: form.get("title") } : {}) };
  act(api(token, `/api/events/${current().slug}/theatres`, { method: "POST", body })
    .then(async (r) => { await loadEvents(current().slug); e.target.reset(); return r; }),
  () => `Added theatre ${body.slug}`);
});

document.getElementById("export-csv").addEventListener("click", () => download("csv"));
document.getElementById("export-json").addEventListener("click", () => download("json"));

eventSelect.addEventListener("change", () => loadEvents(eventSelect.value).then(refresh));

async function start() {
  if (!token) return showNoAccess("Open the organiser link you were given (or mint one with `orcast token --role organizer`).");
  let me;
  try {
    ({ you: me } = await api(token, "/api/me"));
    if (me.role !== "organizer") return showNoAccess(`This is the organiser page; a ${me.role} link cannot open it.`);
    await loadEvents(me.event === "*" ? undefined : me.event);
  } catch (error) {
    return showNoAccess(noAccessMessage(error));
  }
  document.getElementById("who").textContent = `${me.name} · organiser${me.event === "*" ? " of every event" : ""}`;
  document.getElementById("create-panel").hidden = me.event !== "*";
  setStatus(status, events.length ? "Ready" : "No event yet: create one", events.length ? "ok" : "warn");
  refresh();
  setInterval(refresh, 3000);
}

start();
