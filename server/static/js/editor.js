// The editor: one open project. The player streams the source from /videos, or the
// server's browser proxy of it when browsers cannot play the source (preview.js), seeking
// with Range requests; the timeline shows and edits the TimelineState, the side panels list
// markers and edits, and every change is autosaved.
//
// Each opened project is an EditorSession whose listeners all hang on one AbortSignal
// and whose canvas is its own, so closing it leaves nothing behind for the next one.

import { api } from "./api.js";
import { Autosave } from "./autosave.js";
import { $, el } from "./dom.js";
import { formatTime } from "./format.js";
import { describe, PreviewSource } from "./preview.js";
import { describeEdit, TimelineModel } from "./timeline-model.js";
import { loadSprite, TimelineView } from "./timeline-view.js";

const FILMSTRIP_COUNT = 30;
const DEFAULT_FPS = 25;
const ZOOM_STEP = 1.5;
const TYPING = new Set(["INPUT", "SELECT", "TEXTAREA"]);

export class EditorSession {
  /**
   * `ui`: {notify(sentence), jobs: JobsPanel, socket: NveSocket, follow(operationIds),
   *        setSaveStatus(text, kind), setTitle(text|null), showConflict(bool)}
   */
  constructor(ui) {
    this.ui = ui;
    this.root = $("#editor-view");
    this.player = $("#player");
    this.aborter = new AbortController();
    this.project = null;
    this.preview = null;
    this._startAt = 0; // where a source being loaded starts playing
  }

  async open(id) {
    const { data: project, headers } = await api.getProject(id);
    this.project = project;
    this.ui.setTitle(project.name);
    const meta = await this._metadata(project);
    this.fps = meta.fps || DEFAULT_FPS;
    this.model = new TimelineModel(project.timeline_state, meta.duration);
    this.autosave = new Autosave(project.id, headers.get("etag"), () => this.model.toJSON());
    this.autosave.addEventListener("status", (e) => this.ui.setSaveStatus(e.detail.text, e.detail.kind));
    this.autosave.addEventListener("conflict", () => this.ui.showConflict(true));
    this.root.hidden = false;

    const canvas = el("canvas", { class: "timeline", tabIndex: 0,
                                  attrs: { "aria-label": "Timeline: filmstrip, waveform, markers and edits", id: "timeline" } });
    $("#timeline-host").replaceChildren(canvas);
    this.view = new TimelineView(canvas, this.model, {
      onSeek: (time) => this.seek(time),
      onSelect: (selection) => this._showSelection(selection),
    });
    this._wire();
    this._wirePlayer();
    this._startAt = this.model.currentTime;
    this.preview = new PreviewSource({
      filename: project.video_filename, videoUrl: project.video_url, preview: meta.preview,
      socket: this.ui.socket, follow: (ids) => this.ui.follow(ids), track: (info) => this.ui.jobs.track(info),
      signal: this.aborter.signal,
    });
    this.preview.addEventListener("change", () => this._showPreview());
    this._showPreview();
    this._showTime();
    this.preview.start();
    this._loadDerivatives(project.video_filename);
    this._render();
    this.ui.setSaveStatus("All changes saved", "saved");
  }

  /** Save what is pending and let go of the page. */
  async close() {
    this.aborter.abort();
    this.view?.destroy();
    this.player.pause();
    if (this.autosave) {
      this.autosave.stop();
      await this.autosave.flush().catch(() => {});
    }
    this.player.removeAttribute("src");
    this.player.load();
    this._showPlaying(false);
    this._showOverlay(null);
    this.root.hidden = true;
    this.ui.setTitle(null);
    this.ui.setSaveStatus(null);
    this.ui.showConflict(false);
  }

  // --- conflict choices (the banner's buttons) --------------------------------------------

  takeTheirs() {
    const row = this.autosave.takeTheirs();
    if (row?.timeline_state) this.model.load(row.timeline_state);
    if (row?.name) this.ui.setTitle(row.name);
    this.ui.showConflict(false);
    this.seek(this.model.currentTime);
    this._render();
  }

  async overwrite() {
    this.ui.showConflict(false);
    await this.autosave.overwrite();
  }

  // --- player --------------------------------------------------------------------------

  async _metadata(project) {
    try {
      return (await api.metadata(project.video_filename)).data;
    } catch {
      // The player can still tell the duration; fps falls back to the common default.
      return await new Promise((resolve) => {
        const probe = document.createElement("video");
        probe.preload = "metadata";
        probe.onloadedmetadata = () => resolve({ duration: probe.duration, fps: null });
        probe.onerror = () => resolve({ duration: 0, fps: null });
        probe.src = project.video_url;
      });
    }
  }

  /** Play what the preview says: the source, the proxy once ready, or nothing yet. */
  _showPreview() {
    const { state } = this.preview;
    this._showOverlay(state);
    if (!this.preview.playable || this.player.getAttribute("src") === state.url) return;
    // Switching from nothing (a proxy that just became ready): start where the playhead is.
    const playing = !this.player.paused;
    this._startAt = this._time();
    this.player.src = state.url;
    if (playing) this.togglePlay();
  }

  _showOverlay(state) {
    const text = state ? describe(state) : null;
    const box = $("#preview-status");
    box.hidden = text === null;
    box.dataset.status = state?.status ?? "";
    $("#preview-status-text").textContent = text ?? "";
    const bar = $("#preview-progress");
    bar.hidden = state?.status !== "pending";
    bar.value = state?.progress ?? 0;
  }

  _wirePlayer() {
    const player = this.player;
    const signal = this.aborter.signal;
    player.addEventListener("loadedmetadata", () => {
      if (!this.model.duration && Number.isFinite(player.duration)) this.model.duration = player.duration;
      player.currentTime = Math.min(this._startAt, player.duration || this._startAt);
      this._applyPreview();
      this._showTime();
    }, { signal });
    player.addEventListener("error", () => {
      this.ui.notify("The video could not be played. The file may be missing or in a format this browser cannot show.");
    }, { signal });
    const follow = () => {
      if (player.paused || signal.aborted) return;
      this.view.setPlayhead(player.currentTime);
      this._showTime();
      requestAnimationFrame(follow);
    };
    player.addEventListener("play", () => { this._showPlaying(true); follow(); }, { signal });
    player.addEventListener("pause", () => { this._showPlaying(false); this._noteTime(); }, { signal });
    player.addEventListener("seeked", () => this._noteTime(), { signal });
    player.addEventListener("timeupdate", () => this._showTime(), { signal });
  }

  _showPlaying(playing) {
    $("#play").textContent = playing ? "❚❚" : "▶";
    $("#play").setAttribute("aria-label", playing ? "Pause" : "Play");
  }

  /** The playhead moved and stays: show it and save it. */
  _noteTime() {
    const time = this._time();
    this.view.setPlayhead(time);
    this._showTime();
    if (Math.abs(this.model.currentTime - time) > 1e-3) {
      this.model.setView({ currentTime: time });
    }
  }

  seek(time) {
    const t = Math.min(Math.max(0, time), this.model.duration || time);
    this.player.currentTime = t;
    if (this.player.readyState === 0) {
      // Nothing loaded yet (a proxy still being made): the playhead moves alone, and the
      // video starts there once it loads.
      this._startAt = t;
      this.view.setPlayhead(t);
      this._noteTime();
      return;
    }
    this.view.setPlayhead(t);
    this._showTime();
  }

  togglePlay() {
    if (!this.preview?.playable) return; // the overlay says why there is nothing to play
    if (this.player.paused) this.player.play().catch((error) => this.ui.notify(`Cannot play: ${error.message}`));
    else this.player.pause();
  }

  stepFrames(count) {
    this.player.pause();
    this.seek(this._time() + count / this.fps);
  }

  _showTime() {
    $("#time").textContent = `${formatTime(this._time())} / ${formatTime(this.model.duration)}`;
  }

  /** Hear and see speed and volume while editing (the render applies them for real). */
  _applyPreview() {
    this.player.playbackRate = this.model.effect("speed")?.factor ?? 1;
    this.player.volume = Math.min(1, this.model.effect("volume")?.gain ?? 1);
  }

  async _loadDerivatives(filename) {
    try {
      const { data } = await api.thumbnails(filename, FILMSTRIP_COUNT);
      this.view.setFilmstrip(await loadSprite(data.sprite, data));
    } catch (error) {
      this.ui.notify(`The filmstrip could not be made: ${error.message}`);
    }
    try {
      const { data } = await api.waveform(filename);
      this.view.setPeaks(data.audio === false ? null : data.peaks);
    } catch (error) {
      this.view.setPeaks(null);
      this.ui.notify(`The waveform could not be made: ${error.message}`);
    }
  }

  // --- controls ------------------------------------------------------------------------

  _wire() {
    const signal = this.aborter.signal;
    const on = (selector, event, fn) => $(selector).addEventListener(event, fn, { signal });
    on("#play", "click", () => this.togglePlay());
    on("#step-back", "click", () => this.stepFrames(-1));
    on("#step-forward", "click", () => this.stepFrames(1));
    on("#undo", "click", () => this.model.undo());
    on("#redo", "click", () => this.model.redo());
    on("#add-marker", "click", () => this.addMarker());
    on("#split", "click", () => this.split());
    on("#trim-selection", "click", () => this._selectionTo("trim"));
    on("#cut-selection", "click", () => this._selectionTo("cut"));
    on("#reset-trim", "click", () => this.model.setTrim(0, this.model.duration));
    on("#zoom-in", "click", () => this.view.zoomBy(ZOOM_STEP));
    on("#zoom-out", "click", () => this.view.zoomBy(1 / ZOOM_STEP));
    on("#zoom-fit", "click", () => this.view.fit());
    on("#speed", "change", (e) => {
      const factor = Number(e.target.value);
      this.model.setEffect("speed", factor === 1 ? null : { factor });
    });
    const fade = () => {
      const fadeIn = Math.max(0, Number($("#fade-in").value) || 0);
      const fadeOut = Math.max(0, Number($("#fade-out").value) || 0);
      this.model.setEffect("fade", fadeIn || fadeOut ? { in: fadeIn, out: fadeOut } : null);
    };
    on("#fade-in", "change", fade);
    on("#fade-out", "change", fade);
    on("#volume", "input", (e) => { $("#volume-value").textContent = `${Number(e.target.value).toFixed(2)}×`; });
    on("#volume", "change", (e) => {
      const gain = Number(e.target.value);
      this.model.setEffect("volume", gain === 1 ? null : { gain });
    });
    on("#export-trim", "click", () => this._exportTrim());
    on("#export-split", "click", () => this._start(() => api.split(this.project.video_filename, this._time()),
                                                    `Split at ${formatTime(this._time())}`));
    on("#export-render", "click", () => this._renderAll());
    document.addEventListener("keydown", (e) => this._key(e), { signal });
    this.model.addEventListener("change", (e) => {
      if (e.detail.kind === "load") return;
      this.autosave.schedule();
      if (e.detail.kind === "view") this._showZoom();
      else this._render();
    }, { signal });
    // Leaving the page: the last change goes out on a request that outlives it.
    window.addEventListener("pagehide", () => this.autosave.flush({ keepalive: true }), { signal });
  }

  _key(event) {
    if (event.defaultPrevented || TYPING.has(event.target.tagName) || event.altKey) return;
    const mod = event.ctrlKey || event.metaKey;
    const key = event.key;
    if (mod && (key === "z" || key === "Z")) { event.preventDefault(); if (event.shiftKey) this.model.redo(); else this.model.undo(); return; }
    if (mod && (key === "y" || key === "Y")) { event.preventDefault(); this.model.redo(); return; }
    if (mod) return;
    const actions = {
      " ": () => this.togglePlay(),
      ArrowLeft: () => this.stepFrames(event.shiftKey ? -this.fps : -1),
      ArrowRight: () => this.stepFrames(event.shiftKey ? this.fps : 1),
      m: () => this.addMarker(), M: () => this.addMarker(),
      s: () => this.split(), S: () => this.split(),
      "+": () => this.view.zoomBy(ZOOM_STEP), "=": () => this.view.zoomBy(ZOOM_STEP), "-": () => this.view.zoomBy(1 / ZOOM_STEP),
    };
    const action = actions[key];
    if (!action) return;
    event.preventDefault();
    // A focused button would also react to Space; the shortcut is the one meant.
    if (key === " " && event.target.tagName === "BUTTON") event.target.blur();
    action();
  }

  /** The playhead: the player's time, or the timeline's while no video is loaded. */
  _time() { return this.player.readyState > 0 ? this.player.currentTime : (this.view?.playhead ?? this._startAt); }

  addMarker() {
    this.model.addMarker(this._time(), `Marker ${this.model.markers.length + 1}`);
  }

  split() {
    if (!this.model.addSplit(this._time())) this.ui.notify("A split needs the playhead inside the video, away from another split.");
  }

  _selectionTo(kind) {
    const selection = this.view.selection;
    if (!selection) return;
    if (kind === "trim") this.model.setTrim(selection.start, selection.end);
    else this.model.addCut(selection.start, selection.end);
    this.view.setSelection(null);
  }

  _showSelection(selection) {
    $("#trim-selection").disabled = !selection;
    $("#cut-selection").disabled = !selection;
    $("#selection-info").textContent = selection
      ? `Selected ${formatTime(selection.start)} – ${formatTime(selection.end)}`
      : "Drag on the timeline to select a range";
  }

  // --- jobs ----------------------------------------------------------------------------

  _exportTrim() {
    const { start, end } = this.view.selection && this.model.edits.every((e) => e.type !== "trim")
      ? this.view.selection : this.model.trimRange;
    return this._start(() => api.trim(this.project.video_filename, start, end),
                       `Trim ${formatTime(start)} – ${formatTime(end)}`);
  }

  async _renderAll() {
    await this.autosave.flush();
    if (this.autosave.dirty) {
      this.ui.notify("Save the project first: it has changes that are not saved yet.");
      return;
    }
    return this._start(() => api.process(this.project.id), `Render of ${this.project.name}`);
  }

  async _start(call, title) {
    try {
      const { data } = await call();
      this.ui.jobs.track({ operationId: data.operationId, operation: data.operation, title });
      this.ui.follow([data.operationId]);
    } catch (error) {
      this.ui.notify(`Could not start the job: ${error.message}`);
    }
  }

  // --- side panels ---------------------------------------------------------------------

  _render() {
    this._renderMarkers();
    this._renderEdits();
    this._renderEffects();
    this._showZoom();
    $("#undo").disabled = !this.model.canUndo;
    $("#redo").disabled = !this.model.canRedo;
    this._applyPreview();
    this.view.draw();
  }

  _showZoom() {
    $("#zoom-level").textContent = `${this.model.zoom.toFixed(this.model.zoom < 10 ? 1 : 0)}×`;
  }

  _renderMarkers() {
    const markers = this.model.markers;
    $("#markers-empty").hidden = markers.length > 0;
    $("#marker-list").replaceChildren(...markers.map((marker, index) => {
      const label = el("input", { class: "marker-label", type: "text", value: marker.label, maxLength: 200,
                                  attrs: { "aria-label": `Label of marker ${index + 1}` } });
      label.addEventListener("change", () => this.model.renameMarker(index, label.value));
      label.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === "Escape") label.blur(); });
      return el("li", { class: "marker", dataset: { index: String(index) } }, [
        el("button", { class: "small marker-time", type: "button", text: formatTime(marker.time), title: "Jump to this marker",
                       on: { click: () => this.seek(marker.time) } }),
        label,
        el("button", { class: "small ghost", type: "button", text: "✕", title: "Delete this marker",
                       attrs: { "aria-label": `Delete marker ${index + 1}` }, on: { click: () => this.model.deleteMarker(index) } }),
      ]);
    }));
  }

  _renderEdits() {
    const edits = this.model.edits;
    $("#edits-empty").hidden = edits.length > 0;
    $("#edit-list").replaceChildren(...edits.map((edit, index) => el("li", { class: "edit", dataset: { type: edit.type } }, [
      el("span", { class: "grow", text: describeEdit(edit, formatTime) }),
      el("button", { class: "small ghost", type: "button", text: "✕", title: "Remove this edit",
                     attrs: { "aria-label": `Remove edit ${index + 1}` }, on: { click: () => this.model.removeEdit(index) } }),
    ])));
  }

  _renderEffects() {
    const speed = this.model.effect("speed")?.factor ?? 1;
    const select = $("#speed");
    if (![...select.options].some((o) => Number(o.value) === speed)) {
      select.append(el("option", { value: String(speed), text: `${speed}×` }));
    }
    select.value = [...select.options].find((o) => Number(o.value) === speed).value;
    const fade = this.model.effect("fade");
    $("#fade-in").value = String(fade?.in ?? 0);
    $("#fade-out").value = String(fade?.out ?? 0);
    const gain = this.model.effect("volume")?.gain ?? 1;
    $("#volume").value = String(gain);
    $("#volume-value").textContent = `${gain.toFixed(2)}×`;
  }
}
