// @ts-check
// Building DOM nodes. Text is only ever set as text (textContent), never parsed as HTML: questions,
// names and titles come from other people.

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "className") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// The page's element #id, checked to be what the script expects (a renamed id in the HTML fails
// here, loudly, instead of as "undefined" somewhere later).
/**
 * @template {Element} T
 * @param {string} id @param {{new (): T, name: string}} type
 * @returns {T}
 */
export function byId(id, type) {
  const node = document.getElementById(id);
  if (!(node instanceof type)) throw new Error(`this page has no ${type.name} #${id}; reload it (an old copy?)`);
  return node;
}

export function option(value, text, selected = false) {
  const node = el("option", { value }, text);
  node.selected = selected;
  return node;
}

// "or1/endoscope" → "OR 1 · endoscope", with the event's theatre titles
export function feedLabel(titles, feed) {
  const [theatre, name] = feed.split("/");
  return `${titles.get(theatre) || theatre} · ${name}`;
}

// 45 → "45 s", 607 → "10 min", 7500 → "2 h 05 min"
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

export function ago(seconds) {
  const s = Math.max(0, Math.round(Date.now() / 1000 - seconds));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

// A status line: its words, and its kind (info, ok, warn, bad) for the colour.
export function setStatus(element, text, kind = "info") {
  element.textContent = text;
  element.dataset.kind = kind;
}

// Diagnostics and browser tests read a page's connections through window.orcast; it exists only
// when asked for (sessionStorage "orcast.testHooks" = "1"), never on an ordinary page.
export function exposeForTests(hooks) {
  try {
    if (sessionStorage.getItem("orcast.testHooks") === "1") /** @type {any} */ (window).orcast = hooks;
  } catch {
    // storage blocked: no hooks
  }
}

/** The still card a feed paused for privacy shows instead of its picture (the server sends none),
 * or back to a plain state line (`name` null). */
export function privacyCard(box, name) {
  box.classList.toggle("privacy-card", Boolean(name));
  if (name) {
    box.replaceChildren(el("strong", { text: "Paused for privacy" }),
      el("small", { text: `${name} · the picture comes back when the operating room resumes` }));
  }
}
