// What the player plays: the source itself when browsers play it, else the H.264 "browser
// proxy" the server's ingest job makes of it (metadata.preview, see PreviewSource). While
// the proxy is being made this follows the ingest operation over the WebSocket (and the
// REST job state, for whatever the socket could not tell) until it is ready or failed.
//
// The proxy has the source's time axis (0 = first frame), so the timeline does not care
// which of the two plays.

import { api } from "./api.js";

const POLL_WITHOUT_OPERATION = 3000; // ms between metadata checks of a pending preview with no operation id

/** Where a finished proxy is served when an answer did not say. */
export const proxyUrl = (filename) => `/api/videos/${encodeURIComponent(filename)}/preview`;

/** The overlay's sentence for a state, or null when the player shows the video. */
export function describe(state) {
  if (state.status === "pending") return `Preparing preview… ${Math.floor(state.progress)} %`;
  if (state.status === "failed") return `Preview failed: ${state.error || "the browser copy of this video could not be made."}`;
  return null;
}

/**
 * The player's source for one video. `state` = {status, url, progress, error, operationId}:
 *   status "source" / "ready": `url` plays now; "pending": no playable url yet; "failed": none will come.
 * Fires "change" whenever `state` changes. `metadata.preview` absent (an older server): the
 * project's own video_url plays, as before.
 */
export class PreviewSource extends EventTarget {
  /**
   * @param {object} options filename, videoUrl (the project's), preview (metadata.preview or
   *   undefined), socket (an NveSocket), follow(operationIds) (subscribes the socket),
   *   track(info) (puts the operation in the jobs panel), signal (AbortSignal: stops following)
   */
  constructor({ filename, videoUrl, preview, socket, follow, track, signal }) {
    super();
    this.filename = filename;
    this.socket = socket;
    this.followOperations = follow;
    this.track = track;
    this.signal = signal;
    this.state = initialState(preview, videoUrl);
  }

  get playable() { return this.state.status === "source" || this.state.status === "ready"; }

  /** Begin following a pending proxy; for a failed one, learn why. */
  start() {
    if (this.signal.aborted) return;
    if (this.state.status === "failed" && this.state.operationId && !this.state.error) this._explain();
    if (this.state.status !== "pending") return;
    const id = this.state.operationId;
    if (!id) {
      this._pollMetadata();
      return;
    }
    this.track?.({ operationId: id, operation: "ingest", title: "Preparing preview" });
    const on = (type, fn) => this.socket.addEventListener(type, (e) => {
      if (e.detail?.operationId === id) fn(e.detail);
    }, { signal: this.signal });
    on("progress", (data) => this._progress(data.progress));
    on("complete", (data) => this._ready(data.result?.url));
    on("error", (data) => this._fail(data.error));
    // After a reconnect the server re-sends the latest state of what is subscribed; the
    // REST state covers a final message this connection had already had before subscribing.
    this.socket.addEventListener("open", () => this._checkJob(), { signal: this.signal });
    this.followOperations([id]);
    this._checkJob();
  }

  async _checkJob() {
    if (this.state.status !== "pending") return;
    try {
      const { data } = await api.job(this.state.operationId);
      if (data.status === "done") this._ready(data.result?.url);
      else if (data.status === "failed") this._fail(data.error);
      else if (data.status === "cancelled") this._fail("the job was cancelled.");
      else this._progress(data.progress);
    } catch (error) {
      if (error.status === 404) this._fail("the server no longer knows this job.");
      // Anything else (offline): the socket's messages, or the next reconnect, will tell.
    }
  }

  async _explain() {
    try {
      const { data } = await api.job(this.state.operationId);
      if (data.error) this._set({ error: data.error });
    } catch {
      // the generic sentence stays
    }
  }

  async _pollMetadata() {
    while (this.state.status === "pending" && !this.signal.aborted) {
      await new Promise((resolve) => setTimeout(resolve, POLL_WITHOUT_OPERATION));
      if (this.signal.aborted) return;
      try {
        const { data } = await api.metadata(this.filename);
        const next = data.preview;
        if (next?.status === "ready" || next?.status === "source") this._ready(next.url);
        else if (next?.status === "failed") this._fail(null);
        else if (next?.status === "pending" && next.operationId) {
          this.state = { ...this.state, operationId: next.operationId };
          this.start();
          return;
        }
      } catch {
        // try again on the next round
      }
    }
  }

  _progress(progress) {
    if (this.state.status !== "pending") return;
    const value = Math.max(this.state.progress, Math.min(100, Number(progress) || 0));
    if (value === this.state.progress) return;
    this._set({ progress: value });
  }

  _ready(url) {
    if (this.state.status !== "pending") return;
    this._set({ status: "ready", url: url || proxyUrl(this.filename), progress: 100 });
  }

  _fail(error) {
    if (this.state.status !== "pending") return;
    this._set({ status: "failed", error: error || null });
  }

  _set(changes) {
    if (this.signal.aborted) return;
    this.state = { ...this.state, ...changes };
    this.dispatchEvent(new CustomEvent("change", { detail: this.state }));
  }
}

function initialState(preview, videoUrl) {
  const base = { status: "source", url: videoUrl, progress: 0, error: null, operationId: null };
  if (!preview || typeof preview !== "object") return base;
  switch (preview.status) {
    case "source":
    case "ready":
      return { ...base, status: preview.status, url: preview.url || videoUrl, progress: 100 };
    case "pending":
      return { ...base, status: "pending", url: null, operationId: preview.operationId || null };
    case "failed":
      return { ...base, status: "failed", url: null, operationId: preview.operationId || null, error: preview.error || null };
    default:
      return base;
  }
}
