// The timeline canvas: ruler, filmstrip, waveform, trim handles, cuts, splits, markers,
// the selection and the playhead; seeking, selecting, dragging trim handles and zooming.
//
// The view shows [viewStart, viewStart + duration / zoom) of the source. It draws from
// the model on every change, batched to one frame, so it never holds a second copy of
// the edits; a trim handle being dragged is the one piece of state it keeps itself
// until the drag ends and becomes one undoable step.

import { formatTime } from "./format.js";

const RULER = 22;
const STRIP = 64;
const WAVE = 40;
const HEIGHT = RULER + STRIP + WAVE + 6;
const HANDLE = 7;
const MAX_ZOOM = 200;
const COLORS = {
  background: "#14171c", ruler: "#1c2027", tick: "#5b6575", label: "#9aa4b2", wave: "#4fb3a5",
  noAudio: "#5b6575", dim: "rgba(0,0,0,0.62)", handle: "#f5c542", cut: "rgba(229,72,77,0.45)",
  cutEdge: "#e5484d", split: "#f5c542", marker: "#6aa8ff", selection: "rgba(106,168,255,0.25)",
  playhead: "#ff5c5c", labelBack: "rgba(10,12,16,0.8)",
};

export class TimelineView {
  constructor(canvas, model, { onSeek, onSelect }) {
    this.canvas = canvas;
    this.model = model;
    this.onSeek = onSeek;
    this.onSelect = onSelect;
    this.viewStart = 0;
    this.playhead = model.currentTime;
    this.selection = null; // {start, end} in seconds
    this.filmstrip = null; // {image, times, tile: {w, h}, columns}
    this.peaks = undefined; // undefined: loading; null: no audio; array: peaks 0..1
    this._drag = null;
    this._frame = 0;
    canvas.height = HEIGHT;
    canvas.style.height = `${HEIGHT}px`;
    model.addEventListener("change", () => this.draw());
    this._resize = new ResizeObserver(() => this.draw());
    this._resize.observe(canvas);
    canvas.addEventListener("pointerdown", (e) => this._pointerDown(e));
    canvas.addEventListener("pointermove", (e) => this._pointerMove(e));
    canvas.addEventListener("pointerup", (e) => this._pointerUp(e));
    canvas.addEventListener("pointercancel", () => { this._drag = null; this.draw(); });
    canvas.addEventListener("wheel", (e) => this._wheel(e), { passive: false });
  }

  /** Stop watching the canvas (it is about to be thrown away). */
  destroy() {
    this._resize.disconnect();
    cancelAnimationFrame(this._frame);
  }

  get duration() { return this.model.duration || 1; }
  get span() { return this.duration / this.model.zoom; }
  get width() { return this.canvas.clientWidth || 1; }

  timeAt(x) { return this.viewStart + (x / this.width) * this.span; }
  xAt(time) { return ((time - this.viewStart) / this.span) * this.width; }

  setFilmstrip(filmstrip) { this.filmstrip = filmstrip; this.canvas.dataset.filmstrip = String(filmstrip.times.length); this.draw(); }
  setPeaks(peaks) { this.peaks = peaks; this.canvas.dataset.waveform = peaks ? String(peaks.length) : "none"; this.draw(); }

  /** Move the playhead; while playing, page the view so the playhead stays in sight. */
  setPlayhead(time) {
    this.playhead = time;
    this.canvas.dataset.playhead = time.toFixed(2);
    if (time < this.viewStart || time > this.viewStart + this.span) this._setViewStart(time - this.span * 0.1);
    this.draw();
  }

  setSelection(selection) { this.selection = selection; this.onSelect?.(selection); this.draw(); }

  /** Zoom by `factor` keeping `anchor` (a time) where it is on screen. */
  zoomBy(factor, anchor = this.playhead) {
    const zoom = Math.min(MAX_ZOOM, Math.max(1, this.model.zoom * factor));
    const ratio = (anchor - this.viewStart) / this.span;
    this.model.setView({ zoom });
    this._setViewStart(anchor - ratio * this.span);
    this.draw();
  }

  fit() { this.model.setView({ zoom: 1 }); this._setViewStart(0); this.draw(); }

  _setViewStart(start) { this.viewStart = Math.min(Math.max(0, start), Math.max(0, this.duration - this.span)); }

  draw() {
    if (this._frame) return;
    this._frame = requestAnimationFrame(() => { this._frame = 0; this._paint(); });
  }

  // --- painting ------------------------------------------------------------------------

  _paint() {
    const dpr = window.devicePixelRatio || 1;
    const w = this.width;
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(HEIGHT * dpr)) {
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(HEIGHT * dpr);
    }
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = COLORS.background;
    ctx.fillRect(0, 0, w, HEIGHT);
    this._paintRuler(ctx, w);
    this._paintFilmstrip(ctx, w);
    this._paintWaveform(ctx, w);
    this._paintEdits(ctx);
    this._paintSelection(ctx);
    this._paintMarkers(ctx);
    this._paintPlayhead(ctx);
  }

  _paintRuler(ctx, w) {
    ctx.fillStyle = COLORS.ruler;
    ctx.fillRect(0, 0, w, RULER);
    const steps = [0.04, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600];
    const step = steps.find((s) => (s / this.span) * w >= 70) ?? 3600;
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    ctx.strokeStyle = COLORS.tick;
    ctx.fillStyle = COLORS.label;
    ctx.beginPath();
    for (let t = Math.floor(this.viewStart / step) * step; t <= this.viewStart + this.span; t += step) {
      const x = Math.round(this.xAt(t)) + 0.5;
      ctx.moveTo(x, RULER - 8);
      ctx.lineTo(x, RULER);
      ctx.fillText(formatTime(t, step < 1 ? 2 : 0), x + 3, RULER / 2 - 1);
    }
    ctx.stroke();
  }

  _paintFilmstrip(ctx, w) {
    const film = this.filmstrip;
    if (!film) {
      ctx.fillStyle = COLORS.label;
      ctx.fillText("Loading filmstrip…", 8, RULER + STRIP / 2);
      return;
    }
    const tileW = STRIP * (film.tile.w / film.tile.h);
    const count = film.times.length;
    for (let x = 0; x < w; x += tileW) {
      const t = this.timeAt(x + tileW / 2);
      const index = Math.min(count - 1, Math.max(0, Math.floor((t / this.duration) * count)));
      const sx = (index % film.columns) * film.tile.w;
      const sy = Math.floor(index / film.columns) * film.tile.h;
      ctx.drawImage(film.image, sx, sy, film.tile.w, film.tile.h, x, RULER, tileW, STRIP);
    }
  }

  _paintWaveform(ctx, w) {
    const top = RULER + STRIP + 3;
    const mid = top + WAVE / 2;
    if (this.peaks === null || this.peaks === undefined) {
      ctx.fillStyle = COLORS.noAudio;
      ctx.fillText(this.peaks === null ? "No audio" : "Loading waveform…", 8, mid);
      return;
    }
    const peaks = this.peaks;
    ctx.fillStyle = COLORS.wave;
    for (let x = 0; x < w; x += 2) {
      const from = Math.floor((this.timeAt(x) / this.duration) * peaks.length);
      const to = Math.max(from + 1, Math.floor((this.timeAt(x + 2) / this.duration) * peaks.length));
      let peak = 0;
      for (let i = Math.max(0, from); i < Math.min(peaks.length, to); i += 1) peak = Math.max(peak, peaks[i]);
      const h = Math.max(1, peak * (WAVE - 2));
      ctx.fillRect(x, mid - h / 2, 1.5, h);
    }
  }

  _paintEdits(ctx) {
    const top = RULER;
    const bottom = HEIGHT - 3;
    for (const edit of this.model.edits) {
      if (edit.type === "cut") {
        const x0 = this.xAt(edit.start);
        const x1 = this.xAt(edit.end);
        ctx.fillStyle = COLORS.cut;
        ctx.fillRect(x0, top, x1 - x0, bottom - top);
        ctx.strokeStyle = COLORS.cutEdge;
        ctx.strokeRect(x0 + 0.5, top + 0.5, x1 - x0 - 1, bottom - top - 1);
      } else if (edit.type === "split") {
        const x = Math.round(this.xAt(edit.at)) + 0.5;
        ctx.strokeStyle = COLORS.split;
        ctx.setLineDash([4, 3]);
        ctx.beginPath();
        ctx.moveTo(x, top);
        ctx.lineTo(x, bottom);
        ctx.stroke();
        ctx.setLineDash([]);
      }
    }
    const { start, end } = this._drag?.kind === "trim" ? this._drag.range : this.model.trimRange;
    const x0 = this.xAt(start);
    const x1 = this.xAt(end);
    ctx.fillStyle = COLORS.dim;
    ctx.fillRect(0, top, Math.max(0, x0), bottom - top);
    ctx.fillRect(x1, top, Math.max(0, this.width - x1), bottom - top);
    ctx.fillStyle = COLORS.handle;
    ctx.fillRect(x0, top, HANDLE, bottom - top);
    ctx.fillRect(x1 - HANDLE, top, HANDLE, bottom - top);
    ctx.fillStyle = COLORS.background;
    for (const x of [x0 + HANDLE / 2, x1 - HANDLE / 2]) ctx.fillRect(x - 0.5, top + STRIP / 2 - 8, 1, 16);
  }

  _paintSelection(ctx) {
    const selection = this._drag?.kind === "select" ? this._drag.range : this.selection;
    if (!selection) return;
    const x0 = this.xAt(selection.start);
    const x1 = this.xAt(selection.end);
    ctx.fillStyle = COLORS.selection;
    ctx.fillRect(x0, 0, x1 - x0, HEIGHT);
    ctx.fillStyle = COLORS.marker;
    ctx.fillRect(x0, 0, x1 - x0, 3);
  }

  _paintMarkers(ctx) {
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "top";
    for (const marker of this.model.markers) {
      const x = this.xAt(marker.time);
      pin(ctx, x, 2, 5, COLORS.marker, 1);
      if (!marker.label) continue;
      // Drawn as canvas text: a label is never markup, wherever it is shown.
      const label = marker.label.length > 24 ? `${marker.label.slice(0, 23)}…` : marker.label;
      const width = ctx.measureText(label).width + 8;
      ctx.fillStyle = COLORS.labelBack;
      ctx.fillRect(x + 2, RULER + 2, width, 15);
      ctx.fillStyle = COLORS.marker;
      ctx.fillText(label, x + 6, RULER + 4);
    }
    ctx.textBaseline = "middle";
  }

  _paintPlayhead(ctx) { pin(ctx, this.xAt(this.playhead), 0, 6, COLORS.playhead, 2); }

  // --- interaction ---------------------------------------------------------------------

  _hit(x, y) {
    const { start, end } = this.model.trimRange;
    if (y >= RULER) {
      if (Math.abs(x - (this.xAt(start) + HANDLE / 2)) <= HANDLE) return { kind: "trim", edge: "start" };
      if (Math.abs(x - (this.xAt(end) - HANDLE / 2)) <= HANDLE) return { kind: "trim", edge: "end" };
    } else {
      const marker = this.model.markers.find((m) => Math.abs(this.xAt(m.time) - x) <= 6);
      if (marker) return { kind: "marker", time: marker.time };
    }
    return { kind: "seek" };
  }

  _pointerDown(event) {
    if (event.button !== 0) return;
    const x = event.offsetX;
    const hit = this._hit(x, event.offsetY);
    this.canvas.setPointerCapture(event.pointerId);
    if (hit.kind === "trim") {
      this._drag = { kind: "trim", edge: hit.edge, range: { ...this.model.trimRange } };
    } else if (hit.kind === "marker") {
      this.onSeek(hit.time);
    } else {
      const time = this.timeAt(x);
      this._drag = { kind: "seek", startX: x, startTime: time };
      this.onSeek(time);
    }
  }

  _pointerMove(event) {
    const x = event.offsetX;
    const drag = this._drag;
    if (!drag) {
      const hit = this._hit(x, event.offsetY);
      this.canvas.style.cursor = hit.kind === "trim" ? "ew-resize" : hit.kind === "marker" ? "pointer" : "crosshair";
      return;
    }
    const time = Math.min(this.duration, Math.max(0, this.timeAt(x)));
    if (drag.kind === "trim") {
      drag.range[drag.edge] = time;
      this.draw();
    } else if (drag.kind === "seek" && Math.abs(x - drag.startX) > 4) {
      this._drag = { kind: "select", startTime: drag.startTime, range: { start: drag.startTime, end: time } };
      this.draw();
    } else if (drag.kind === "select") {
      drag.range = { start: Math.min(drag.startTime, time), end: Math.max(drag.startTime, time) };
      this.draw();
    }
  }

  _pointerUp() {
    const drag = this._drag;
    this._drag = null;
    if (drag?.kind === "trim") this.model.setTrim(drag.range.start, drag.range.end);
    else if (drag?.kind === "select") this.setSelection(drag.range);
    else if (drag?.kind === "seek") this.setSelection(null);
    this.draw();
  }

  _wheel(event) {
    event.preventDefault();
    if (event.shiftKey || Math.abs(event.deltaX) > Math.abs(event.deltaY)) {
      const delta = event.shiftKey ? event.deltaY : event.deltaX;
      this._setViewStart(this.viewStart + (delta / this.width) * this.span);
      this.draw();
      return;
    }
    this.zoomBy(Math.exp(-event.deltaY * 0.002), this.timeAt(event.offsetX));
  }
}

/** A vertical line at `x` down the whole timeline, headed by a downward triangle `half` px wide each side. */
function pin(ctx, x, top, half, color, lineWidth) {
  x = Math.round(x) + 0.5;
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  ctx.lineWidth = lineWidth;
  ctx.beginPath();
  ctx.moveTo(x, top);
  ctx.lineTo(x, HEIGHT);
  ctx.stroke();
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(x - half, top);
  ctx.lineTo(x + half, top);
  ctx.lineTo(x, top + half * 1.6);
  ctx.closePath();
  ctx.fill();
}

/** Load the filmstrip sprite: resolves to what TimelineView.setFilmstrip takes. */
export function loadSprite(url, info) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve({ image, times: info.times, tile: info.tile, columns: info.columns });
    image.onerror = () => reject(new Error("The filmstrip image could not be loaded."));
    image.src = url;
  });
}
