// Autosave of a project's timelineState: a debounced, conditional PUT.
//
// Saves go one at a time, each with If-Match set to the version the last answer carried,
// so two tabs editing one project can never silently overwrite each other: the second
// writer gets 412 with the current row, and the user chooses to take that version
// (reload) or to write theirs over it (overwrite, conditional on the version just seen).

import { api } from "./api.js";
import { clockTime } from "./format.js";

const DEBOUNCE_MS = 1000;

export class Autosave extends EventTarget {
  /**
   * `getState()` returns the timelineState to save; `etag` is the loaded row's version.
   * Events: "status" {text, kind: "saving"|"saved"|"error"|"conflict"}, "conflict" {row, etag}.
   */
  constructor(projectId, etag, getState) {
    super();
    this.projectId = projectId;
    this.etag = etag;
    this.getState = getState;
    this._timer = 0;
    this._inFlight = null;
    this._dirty = false;
    this._conflict = null;
  }

  get dirty() { return this._dirty; }

  /** Note a change; it is written once changes pause for a moment. */
  schedule() {
    this._dirty = true;
    if (this._conflict) return;
    if (!this._inFlight) this._status("Unsaved changes", "saving");
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this.flush(), DEBOUNCE_MS);
  }

  /**
   * Write now (and wait for it); no-op when nothing changed or a conflict awaits a choice.
   * `keepalive` lets the request outlive the page (for pagehide; bodies up to 64 KiB).
   */
  async flush({ keepalive = false } = {}) {
    clearTimeout(this._timer);
    if (this._inFlight && !keepalive) await this._inFlight.catch(() => {});
    if (!this._dirty || this._conflict) return;
    this._inFlight = this._save(keepalive);
    try { await this._inFlight; } finally { this._inFlight = null; }
  }

  /** After a 412: write this tab's state over the other one. */
  async overwrite() {
    if (!this._conflict) return;
    this.etag = this._conflict.etag;
    this._conflict = null;
    this._dirty = true;
    await this.flush();
  }

  /** After a 412: drop this tab's changes; returns the current row to load. */
  takeTheirs() {
    const conflict = this._conflict;
    this._conflict = null;
    this._dirty = false;
    if (conflict) this.etag = conflict.etag;
    this._status("Loaded the latest version", "saved");
    return conflict?.row;
  }

  stop() { clearTimeout(this._timer); }

  async _save(keepalive) {
    this._dirty = false;
    this._status("Saving…", "saving");
    try {
      const { data, headers } = await api.updateProject(this.projectId, { timelineState: this.getState() }, this.etag,
                                                          { keepalive });
      this.etag = headers.get("etag") ?? this.etag;
      this.dispatchEvent(new CustomEvent("saved", { detail: { row: data } }));
      this._status(`Saved ${clockTime()}`, "saved");
    } catch (error) {
      if (error.status === 412) {
        const { error: _sentence, ...row } = error.body || {};
        this._conflict = { row, etag: error.headers?.get("etag") ?? (row.version !== undefined ? `"${row.version}"` : null) };
        this._dirty = true;
        this._status("Changed in another tab", "conflict");
        this.dispatchEvent(new CustomEvent("conflict", { detail: this._conflict }));
        return;
      }
      this._dirty = true;
      this._status(`Not saved: ${error.message}`, "error");
      // Try again later: the change must not be lost to a passing network failure.
      this._timer = setTimeout(() => this.flush(), 3000);
    }
  }

  _status(text, kind) { this.dispatchEvent(new CustomEvent("status", { detail: { text, kind } })); }
}
