// @ts-check
// Drawing on the live picture over the event socket: FeedDrawings routes the server's strokes
// to the overlays showing each feed (and tells the server which feeds the page shows);
// DrawTool is the toolbar and the pointer handling of a person who may draw.
import { el } from "./dom.js";

const COLOR_NAMES = { "#ffd400": "yellow", "#00e676": "green", "#00b0ff": "blue", "#ff4081": "pink", "#ffffff": "white" };
const KIND_LABELS = { free: "Pen", arrow: "Arrow", circle: "Circle", laser: "Pointer" };
const SEND_EVERY_MS = 40;   // points go out in batches: ~25 messages a second while drawing
const MAX_BATCH = 64;       // the server's limit per message

export class FeedDrawings {
  /**
   * @param {(message: object) => void} send
   * @param {(feed: string) => number} [delayMs] how much later than a WebRTC page this page shows
   *   the feed's picture (HLS: seconds): its strokes wait as long, to land on the same picture
   */
  constructor(send, delayMs = () => 0) {
    this.send = send;
    this.delayMs = delayMs;
    /** @type {Map<string, number>} feed → when its last delayed change shows (changes keep their order) */
    this.due = new Map();
    /** @type {Map<import("./telestration.js").StrokeOverlay, string | null>} */
    this.views = new Map();
    /** @type {Map<string, {mayDraw: boolean, fadeS: number, palette: string[], kinds: string[]}>} */
    this.feeds = new Map();
    /** @type {Set<(feed: string) => void>} */
    this.listeners = new Set();
    this.lastWatch = "";
  }

  /** Show `feed`'s strokes on `overlay` (null: none). */
  attach(overlay, feed) {
    if (this.views.get(overlay) === feed && this.views.has(overlay)) return;
    this.views.set(overlay, feed);
    overlay.clear();
    const twin = [...this.views].find(([o, f]) => o !== overlay && f === feed)?.[0];
    if (twin) overlay.reset([...twin.strokes.values()].map((s) => ({ ...s })), this.feeds.get(feed)?.fadeS);
    this.watch();
  }

  detach(overlay) {
    this.views.delete(overlay);
    this.watch();
  }

  /** Tell the server the feeds shown (again after a reconnect: `force`). */
  watch(force = false) {
    const feeds = [...new Set([...this.views.values()].filter((f) => f))].sort();
    const key = feeds.join(",");
    if (!force && key === this.lastWatch) return;
    this.lastWatch = key;
    this.send({ type: "watch", feeds });
  }

  overlaysOf(feed) {
    return [...this.views].filter(([, f]) => f === feed).map(([o]) => o);
  }

  /** A message from the event socket; true if it was about drawing. */
  onMessage(data) {
    if (data.type === "drawing" && typeof data.feed === "string") {
      this.feeds.set(data.feed, { mayDraw: Boolean(data.may_draw), fadeS: data.fade_s, palette: data.palette || [], kinds: data.kinds || [] });
      for (const o of this.overlaysOf(data.feed)) o.reset(data.strokes, data.fade_s);
      for (const listener of this.listeners) listener(data.feed);
      return true;
    }
    if (data.type === "draw" && typeof data.feed === "string") {
      const show = () => { for (const o of this.overlaysOf(data.feed)) o.apply(data); };
      const at = Math.max(performance.now() + (this.delayMs(data.feed) || 0), this.due.get(data.feed) || 0);
      if (at <= performance.now()) show();
      else {
        this.due.set(data.feed, at);
        setTimeout(show, at - performance.now());
      }
      return true;
    }
    if (data.type === "drawn" && typeof data.feed === "string") {
      for (const o of this.overlaysOf(data.feed)) o.rename(`mine:${data.id}`, data.stroke);
      return true;
    }
    return false;
  }
}

export class DrawTool {
  /**
   * @param {object} options
   * @param {FeedDrawings} options.drawings
   * @param {import("./telestration.js").StrokeOverlay} options.overlay
   * @param {HTMLElement} options.toolbar  where the tool's buttons go
   * @param {() => string | null} options.feed  the feed under the overlay
   * @param {() => number} options.lagMs  how long the picture on screen has been on its way
   */
  constructor({ drawings, overlay, toolbar, feed, lagMs }) {
    this.drawings = drawings;
    this.overlay = overlay;
    this.toolbar = toolbar;
    this.feed = feed;
    this.lagMs = lagMs;
    this.on = false;
    this.kind = "free";
    this.color = "#ffd400";
    this.width = 2;
    this.count = 0;
    /** @type {{id: string, feed: string, pending: number[][], timer: number} | null} */
    this.current = null;
    this.buildToolbar();
    drawings.listeners.add(() => this.refresh());
    const canvas = overlay.canvas;
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    canvas.addEventListener("pointerup", (e) => this.up(e));
    canvas.addEventListener("pointercancel", (e) => this.up(e));
    this.refresh();
  }

  buildToolbar() {
    this.toggle = el("button", { type: "button", "aria-pressed": "false", onclick: () => this.setOn(!this.on) }, "Draw");
    const kinds = Object.entries(KIND_LABELS).map(([kind, label]) => el("button", {
      type: "button", dataset: { kind }, "aria-pressed": String(kind === this.kind),
      onclick: () => { this.kind = kind; this.mark(); },
    }, label));
    const swatches = Object.entries(COLOR_NAMES).map(([color, name]) => el("button", {
      type: "button", className: "swatch", dataset: { color }, title: name, "aria-label": `Colour ${name}`,
      "aria-pressed": String(color === this.color),
      onclick: () => { this.color = color; this.mark(); },
    }));
    this.widthSelect = el("select", { "aria-label": "Line width", onchange: () => { this.width = Number(this.widthSelect.value); } },
      [el("option", { value: "1" }, "thin"), el("option", { value: "2", selected: true }, "medium"), el("option", { value: "3" }, "thick")]);
    this.pin = el("input", { type: "checkbox", "aria-label": "Keep strokes (pin)" });
    this.tools = el("span", { className: "draw-tools", hidden: true }, [
      ...kinds, ...swatches, this.widthSelect, el("label", {}, [this.pin, " keep"]),
      el("button", { type: "button", onclick: () => this.op("undo") }, "Undo"),
      el("button", { type: "button", onclick: () => this.op("clear") }, "Clear"),
    ]);
    this.note = el("span", { className: "draw-note", role: "status", "aria-live": "polite" });
    this.toolbar.replaceChildren(this.toggle, this.tools, this.note);
  }

  mark() {
    for (const b of this.tools.querySelectorAll("[data-kind]")) b.setAttribute("aria-pressed", String(/** @type {HTMLElement} */ (b).dataset.kind === this.kind));
    for (const b of this.tools.querySelectorAll("[data-color]")) b.setAttribute("aria-pressed", String(/** @type {HTMLElement} */ (b).dataset.color === this.color));
  }

  /** Shown only where the server says this link may draw on the feed under it. */
  refresh() {
    const feed = this.feed();
    const allowed = Boolean(feed && this.drawings.feeds.get(feed)?.mayDraw);
    this.toolbar.hidden = !allowed;
    if (!allowed && this.on) this.setOn(false);
  }

  setOn(on) {
    this.on = on;
    this.toggle.setAttribute("aria-pressed", String(on));
    this.tools.hidden = !on;
    this.overlay.canvas.classList.toggle("drawing", on);
  }

  say(text) {
    this.note.textContent = text;
  }

  op(op) {
    const feed = this.feed();
    if (feed) this.drawings.send({ type: "draw", feed, op });
  }

  down(e) {
    const feed = this.feed();
    if (!this.on || !feed || e.button > 0) return;
    const p = this.overlay.toPicture(e.clientX, e.clientY);
    if (!p) return;
    e.preventDefault();
    this.overlay.canvas.setPointerCapture(e.pointerId);
    const id = `s${Date.now().toString(36)}${++this.count}`;
    const pinned = this.pin.checked && this.kind !== "laser";
    this.current = { id, feed, pending: [], timer: 0 };
    const stroke = { id: `mine:${id}`, kind: this.kind, color: this.color, width: this.width, points: [p], pinned, ended: false };
    this.overlay.apply({ op: "begin", stroke });
    this.drawings.send({ type: "draw", feed, op: "begin", id, kind: this.kind, color: this.color, width: this.width,
      points: [p], pinned, lag: Math.round(Math.min(3000, Math.max(0, this.lagMs()))) });
  }

  move(e) {
    const c = this.current;
    if (!c) return;
    const p = this.overlay.toPicture(e.clientX, e.clientY);
    if (!p) return;
    const line = this.kind === "arrow" || this.kind === "circle";
    if (line) c.pending = [p];
    else c.pending.push(p);
    const local = this.overlay.strokes.get(`mine:${c.id}`) || this.overlay.strokes.get(this.serverId(c));
    if (local) this.overlay.apply(line ? { op: "add", id: local.id, points: [], replace: [local.points[0], p] }
      : { op: "add", id: local.id, points: [p] });
    if (!c.timer) c.timer = window.setTimeout(() => this.flush(false), SEND_EVERY_MS);
  }

  up(e) {
    const c = this.current;
    if (!c) return;
    this.move(e);
    this.flush(true);
    const local = this.overlay.strokes.get(`mine:${c.id}`) || this.overlay.strokes.get(this.serverId(c));
    if (local) this.overlay.apply({ op: "add", id: local.id, points: [], end: true, replace: local.points });
    this.current = null;
  }

  serverId(c) {
    return [...this.overlay.strokes.keys()].find((k) => k.endsWith(`.${c.id}`)) || "";
  }

  flush(end) {
    const c = this.current;
    if (!c) return;
    clearTimeout(c.timer);
    c.timer = 0;
    do {
      const points = c.pending.splice(0, MAX_BATCH);
      const last = end && !c.pending.length;
      if (points.length || last) this.drawings.send({ type: "draw", feed: c.feed, op: "add", id: c.id, points, end: last });
    } while (c.pending.length);
  }
}
