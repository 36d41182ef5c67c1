// The project's TimelineState (docs/CONTRACT.md section 2) and its undo history. No DOM here.
//
// Markers and edits are the document: every change to them is one undoable step.
// currentTime and zoom are where the user is looking: saved, but not undone.
// Keys the editor does not know are kept as loaded, as the contract asks.

const EFFECTS = ["speed", "fade", "volume"];
const HISTORY_LIMIT = 200;

const round = (t) => Math.round(t * 1000) / 1000;
const clone = (value) => structuredClone(value);

export class TimelineModel extends EventTarget {
  /** `state`: a TimelineState (possibly empty); `duration`: the source's length in seconds. */
  constructor(state, duration) {
    super();
    this.duration = duration;
    this._undo = [];
    this._redo = [];
    this.load(state);
  }

  /** Adopt `state` as it is (loading, or taking another tab's version); forgets history. */
  load(state) {
    const { currentTime = 0, zoom = 1, markers = [], edits = [], ...extra } = clone(state || {});
    this._extra = extra;
    this.currentTime = currentTime;
    this.zoom = zoom;
    this.doc = { markers, edits };
    this._undo = [];
    this._redo = [];
    this._emit("load");
  }

  /** The TimelineState to save. */
  toJSON() {
    return { ...this._extra, currentTime: round(this.currentTime), zoom: this.zoom,
             markers: this.doc.markers, edits: this.doc.edits };
  }

  get markers() { return this.doc.markers; }
  get edits() { return this.doc.edits; }
  get canUndo() { return this._undo.length > 0; }
  get canRedo() { return this._redo.length > 0; }

  /** View changes (playhead, zoom): saved, not undoable. */
  setView({ currentTime, zoom }) {
    if (currentTime !== undefined) this.currentTime = Math.max(0, currentTime);
    if (zoom !== undefined) this.zoom = zoom;
    this._emit("view");
  }

  undo() { this._step(this._undo, this._redo); }
  redo() { this._step(this._redo, this._undo); }

  // --- markers -------------------------------------------------------------------------

  addMarker(time, label = "") {
    this._commit((doc) => {
      doc.markers.push({ time: round(this._clamp(time)), label });
      doc.markers.sort((a, b) => a.time - b.time);
    });
  }

  renameMarker(index, label) {
    if (this.markers[index] === undefined || this.markers[index].label === label) return;
    this._commit((doc) => { doc.markers[index].label = label; });
  }

  deleteMarker(index) {
    if (this.markers[index] === undefined) return;
    this._commit((doc) => { doc.markers.splice(index, 1); });
  }

  // --- edits ---------------------------------------------------------------------------

  /** The kept range: the trim edit's, or the whole source. */
  get trimRange() {
    const trim = this.edits.find((e) => e.type === "trim");
    return trim ? { start: trim.start, end: trim.end } : { start: 0, end: this.duration };
  }

  /** Keep [start, end); the whole source removes the trim edit. */
  setTrim(start, end) {
    [start, end] = this._ordered(start, end);
    if (end - start < 0.05) return;
    const whole = start <= 0 && end >= round(this.duration);
    const current = this.trimRange;
    if (current.start === start && current.end === end) return;
    this._commit((doc) => {
      doc.edits = doc.edits.filter((e) => e.type !== "trim");
      if (!whole) doc.edits.unshift({ type: "trim", start, end });
    });
  }

  addCut(start, end) {
    [start, end] = this._ordered(start, end);
    if (end - start < 0.01) return false;
    this._commit((doc) => { doc.edits.push({ type: "cut", start, end }); });
    return true;
  }

  addSplit(at) {
    at = round(this._clamp(at));
    if (at <= 0 || at >= this.duration || this.edits.some((e) => e.type === "split" && e.at === at)) return false;
    this._commit((doc) => { doc.edits.push({ type: "split", at }); });
    return true;
  }

  /** The one edit of an effect type ("speed", "fade", "volume"), or undefined. */
  effect(type) { return this.edits.find((e) => e.type === type); }

  /** Set (fields) or remove (null) the effect of `type`; one edit per type. */
  setEffect(type, fields) {
    if (!EFFECTS.includes(type)) throw new Error(`unknown effect ${type}`);
    const current = this.effect(type);
    const next = fields === null ? undefined : { type, ...fields };
    if (JSON.stringify(current) === JSON.stringify(next)) return;
    this._commit((doc) => {
      const index = doc.edits.findIndex((e) => e.type === type);
      if (next === undefined) doc.edits.splice(index, 1);
      else if (index >= 0) doc.edits[index] = next;
      else doc.edits.push(next);
    });
  }

  removeEdit(index) {
    if (this.edits[index] === undefined) return;
    this._commit((doc) => { doc.edits.splice(index, 1); });
  }

  // --- internals -----------------------------------------------------------------------

  _clamp(time) { return Math.min(Math.max(0, time), this.duration || Infinity); }

  /** [start, end] in order (a handle may be dragged past the other), inside the source, rounded. */
  _ordered(a, b) { return [round(this._clamp(Math.min(a, b))), round(this._clamp(Math.max(a, b)))]; }

  _commit(mutate) {
    this._undo.push(clone(this.doc));
    if (this._undo.length > HISTORY_LIMIT) this._undo.shift();
    this._redo = [];
    const next = clone(this.doc);
    mutate(next);
    this.doc = next;
    this._emit("change");
  }

  _step(from, to) {
    if (!from.length) return;
    to.push(clone(this.doc));
    this.doc = from.pop();
    this._emit("change");
  }

  _emit(kind) { this.dispatchEvent(new CustomEvent("change", { detail: { kind } })); }
}

/** A short description of an edit for the edit list. */
export function describeEdit(edit, fmt) {
  switch (edit.type) {
    case "trim": return `Keep ${fmt(edit.start)} – ${fmt(edit.end)}`;
    case "cut": return `Cut ${fmt(edit.start)} – ${fmt(edit.end)}`;
    case "split": return `Split at ${fmt(edit.at)}`;
    case "speed": return `Speed ×${edit.factor}`;
    case "fade": return `Fade in ${edit.in ?? 0} s, out ${edit.out ?? 0} s`;
    case "volume": return `Volume ×${edit.gain}`;
    case "scale": return `Scale to ${edit.width}×${edit.height}`;
    case "crop": return `Crop ${edit.width}×${edit.height} at ${edit.x},${edit.y}`;
    default: return edit.type;
  }
}
