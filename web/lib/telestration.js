// @ts-check
// Strokes over a video picture: a canvas laid over the <video>, in the picture's own
// coordinates (fractions of the picture, 0..1), so a stroke sits on the same anatomy on any
// window size, letterboxed or fullscreen. StrokeOverlay shows strokes (live from the event
// socket, or a recording's at a moment); DrawTool lets a person draw them.

export const WIDTH_FRACTION = [0, 0.004, 0.007, 0.011];  // of the picture's height, for widths 1-3
export const LASER_FADE_MS = 1500;
const FADE_OUT_MS = 1000;  // the last second of a stroke's time: it fades out

/**
 * @typedef {object} ShownStroke
 * @property {string} id
 * @property {string} kind  free | arrow | circle | laser
 * @property {string} color
 * @property {number} width
 * @property {number[][]} points
 * @property {boolean} [pinned]
 * @property {number | null} [endedAt]  performance.now() when it ended (null: being drawn)
 * @property {number} [lastAt]          when its last point came (a laser fades from there)
 * @property {number} [alpha]           a recording's playback gives it directly
 */

/** Where the picture is inside a <video> box (object-fit: contain letterboxes it). */
export function pictureRect(video) {
  const boxW = video.clientWidth, boxH = video.clientHeight;
  const vw = video.videoWidth || 16, vh = video.videoHeight || 9;
  const scale = Math.min(boxW / vw, boxH / vh);
  const w = vw * scale, h = vh * scale;
  return { x: (boxW - w) / 2, y: (boxH - h) / 2, w, h };
}

export class StrokeOverlay {
  /** @param {HTMLVideoElement} video */
  constructor(video) {
    this.video = video;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "strokes";
    this.canvas.setAttribute("aria-hidden", "true");
    video.insertAdjacentElement("afterend", this.canvas);
    /** @type {Map<string, ShownStroke>} */
    this.strokes = new Map();
    this.fadeMs = 8000;
    this.hidden = false;
    this.frame = 0;
    this.fallback = 0;
    this.resize = new ResizeObserver(() => this.redraw());
    this.resize.observe(video);
    video.addEventListener("loadedmetadata", () => this.redraw());
    video.addEventListener("resize", () => this.redraw());
  }

  /** The whole board of a feed (a `drawing` message). */
  reset(strokes, fadeS) {
    if (typeof fadeS === "number") this.fadeMs = fadeS * 1000;
    this.strokes.clear();
    const now = performance.now();
    for (const s of strokes || []) {
      const ended = s.ended ? now - (s.age || 0) * 1000 : null;
      this.strokes.set(s.id, { ...s, endedAt: ended, lastAt: ended ?? now });
    }
    this.redraw();
  }

  clear() {
    this.strokes.clear();
    this.redraw();
  }

  /** One change (a `draw` message, or the drawer's own stroke as it is drawn). */
  apply(op) {
    const now = performance.now();
    if (op.op === "begin") {
      const s = op.stroke;
      this.strokes.set(s.id, { ...s, endedAt: s.ended ? now : null, lastAt: now });
    } else if (op.op === "add") {
      const s = this.strokes.get(op.id);
      if (!s) return;
      if (op.replace) s.points = op.replace;
      else s.points.push(...op.points);
      s.lastAt = now;
      if (op.end) s.endedAt = now;
    } else if (op.op === "undo") {
      this.strokes.delete(op.id);
    } else if (op.op === "clear") {
      this.strokes.clear();
    } else if (op.op === "pin") {
      const s = this.strokes.get(op.id);
      if (s) {
        s.pinned = op.pinned;
        if (!op.pinned && s.endedAt != null) s.endedAt = now;
      }
    }
    this.redraw();
  }

  rename(from, to) {
    const s = this.strokes.get(from);
    if (!s) return;
    this.strokes.delete(from);
    s.id = to;
    this.strokes.set(to, s);
  }

  /** Strokes given with their own alpha (a recording at a moment): nothing fades by itself. */
  showStill(strokes) {
    this.strokes = new Map(strokes.map((s) => [s.id, s]));
    this.redraw();
  }

  setHidden(hidden) {
    this.hidden = hidden;
    this.canvas.hidden = hidden;
    this.redraw();
  }

  /** Page coordinates → fractions of the picture (null: outside it). */
  toPicture(clientX, clientY) {
    const box = this.video.getBoundingClientRect();
    const r = pictureRect(this.video);
    const x = (clientX - box.left - r.x) / r.w, y = (clientY - box.top - r.y) / r.h;
    if (x < -0.02 || x > 1.02 || y < -0.02 || y > 1.02) return null;
    const clamp = (v) => Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;
    return [clamp(x), clamp(y)];
  }

  redraw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => this.draw());
    // a window the browser thinks hidden (a hall screen it counts as covered) gets no animation
    // frames: a timer draws it all the same
    this.fallback = window.setTimeout(() => { if (this.frame) this.draw(); }, 250);
  }

  alphaOf(s, now) {
    if (typeof s.alpha === "number") return s.alpha;
    if (s.kind === "laser") return Math.max(0, 1 - (now - (s.lastAt ?? now)) / LASER_FADE_MS);
    if (s.pinned || s.endedAt == null) return 1;
    const left = this.fadeMs - (now - s.endedAt);
    return Math.max(0, Math.min(1, left / FADE_OUT_MS));
  }

  draw() {
    cancelAnimationFrame(this.frame);
    clearTimeout(this.fallback);
    this.frame = 0;
    const video = this.video, canvas = this.canvas;
    // the canvas covers the video's box exactly, at the screen's own pixel density
    canvas.style.left = `${video.offsetLeft}px`;
    canvas.style.top = `${video.offsetTop}px`;
    canvas.style.width = `${video.clientWidth}px`;
    canvas.style.height = `${video.clientHeight}px`;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(video.clientWidth * dpr), h = Math.round(video.clientHeight * dpr);
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, w, h);
    if (this.hidden || !this.strokes.size) return;
    const r = pictureRect(video);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const now = performance.now();
    let moving = false;
    for (const [id, s] of this.strokes) {
      const alpha = this.alphaOf(s, now);
      if (alpha <= 0) {
        if (typeof s.alpha !== "number") this.strokes.delete(id);
        continue;
      }
      if (alpha < 1 || s.kind === "laser") moving = true;
      else if (!s.pinned && s.endedAt != null) moving = true;  // its fade is still to come
      drawStroke(ctx, s, r, alpha);
    }
    if (moving) this.redraw();
  }

  close() {
    this.resize.disconnect();
    cancelAnimationFrame(this.frame);
    this.canvas.remove();
  }
}

/** One stroke on a 2D context, in CSS pixels, the picture at `r`. */
export function drawStroke(ctx, s, r, alpha) {
  const px = ([x, y]) => [r.x + x * r.w, r.y + y * r.h];
  const lineWidth = Math.max(2, (WIDTH_FRACTION[s.width] || WIDTH_FRACTION[2]) * r.h);
  ctx.globalAlpha = alpha;
  ctx.strokeStyle = ctx.fillStyle = s.color;
  ctx.lineWidth = lineWidth;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.shadowColor = "rgba(0, 0, 0, 0.6)";
  ctx.shadowBlur = 3;
  const pts = s.points.map(px);
  if (!pts.length) return;
  ctx.beginPath();
  if (s.kind === "laser") {
    const [x, y] = pts[pts.length - 1];
    ctx.arc(x, y, Math.max(5, 0.012 * r.h), 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  if (s.kind === "circle" && pts.length === 2) {
    const radius = Math.hypot(pts[1][0] - pts[0][0], pts[1][1] - pts[0][1]);
    ctx.arc(pts[0][0], pts[0][1], radius, 0, 2 * Math.PI);
    ctx.stroke();
    return;
  }
  ctx.moveTo(pts[0][0], pts[0][1]);
  for (const [x, y] of pts.slice(1)) ctx.lineTo(x, y);
  if (pts.length === 1) ctx.lineTo(pts[0][0] + 0.1, pts[0][1]);
  ctx.stroke();
  if (s.kind === "arrow" && pts.length === 2) {
    const [[x0, y0], [x1, y1]] = pts;
    const angle = Math.atan2(y1 - y0, x1 - x0), head = Math.max(10, lineWidth * 4);
    ctx.beginPath();
    ctx.moveTo(x1, y1);
    ctx.lineTo(x1 - head * Math.cos(angle - 0.45), y1 - head * Math.sin(angle - 0.45));
    ctx.lineTo(x1 - head * Math.cos(angle + 0.45), y1 - head * Math.sin(angle + 0.45));
    ctx.closePath();
    ctx.fill();
  }
}
