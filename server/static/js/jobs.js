// The jobs panel: each operation this browser started, with a live progress bar, its
// message, an ETA and a cancel button; finished outputs can be played and downloaded.
//
// Live state comes over the WebSocket (handle()); GET /api/jobs/:id fills in whatever
// the socket could not tell: jobs from before a reload, and the state after a reconnect.
// The list of followed jobs lives in localStorage, so a reload keeps the panel.

import { api } from "./api.js";
import { el } from "./dom.js";
import { formatEta, formatRender } from "./format.js";

const STORE_KEY = "nve.jobs";
const KEEP = 20;
const FINAL = new Set(["done", "failed", "cancelled"]);
const UNCLAIMED_MAX = 200;

export class JobsPanel {
  constructor(list, emptyNote) {
    this.list = list;
    this.emptyNote = emptyNote;
    this.jobs = new Map(); // operationId -> {info, status, progress, samples, row, parts}
    // Messages of operations not (yet) followed, oldest first. A short job can finish before
    // the POST that started it has answered with its id, and the server sends a final message
    // once per connection: kept here, it is replayed when track() learns the id.
    this.unclaimed = new Map(); // operationId -> [{type, data}]
    for (const info of this._stored()) this._add(info);
    this._refreshEmpty();
  }

  /** Operation ids not finished yet (to subscribe to after a reconnect). */
  get active() { return [...this.jobs.values()].filter((j) => !FINAL.has(j.status)).map((j) => j.info.operationId); }
  get all() { return [...this.jobs.keys()]; }

  /** Follow a job just started: `info` = {operationId, operation, title}. */
  track(info) {
    this._add(info);
    this._save();
    this._refreshEmpty();
    const early = this.unclaimed.get(info.operationId);
    this.unclaimed.delete(info.operationId);
    for (const message of early ?? []) this.handle(message);
  }

  /** A WebSocket message {type, data}; those of operations not followed yet are kept a while. */
  handle({ type, data }) {
    if (!data || typeof data.operationId !== "string") return;
    const job = this.jobs.get(data.operationId);
    if (!job) return this._keepUnclaimed({ type, data });
    if (type === "progress") this._progress(job, data.progress, data.message);
    else if (type === "complete") this._finish(job, "done", data.result);
    // A job this tab asked to stop ends with an error message too: it is a cancellation.
    else if (type === "error") this._finish(job, job.cancelling ? "cancelled" : "failed", null, data.error);
  }

  _keepUnclaimed(message) {
    const id = message.data.operationId;
    const kept = this.unclaimed.get(id) ?? [];
    this.unclaimed.delete(id); // re-insert: the map's order is least recently heard first
    // The latest progress is all that matters before the final message.
    this.unclaimed.set(id, [...kept.filter((m) => m.type !== "progress" || message.type !== "progress"), message]);
    if (this.unclaimed.size > UNCLAIMED_MAX) this.unclaimed.delete(this.unclaimed.keys().next().value);
  }

  /** Ask the REST API for the state of every unfinished job (after a load or a reconnect). */
  async refresh() {
    await Promise.all([...this.jobs.values()].filter((j) => !FINAL.has(j.status)).map(async (job) => {
      try {
        const { data } = await api.job(job.info.operationId);
        this._apply(job, data);
      } catch (error) {
        if (error.status === 404) this._finish(job, "failed", null, "This job is no longer known to the server.");
      }
    }));
  }

  _apply(job, data) {
    if (data.status === "done") this._finish(job, "done", data.result);
    else if (data.status === "failed") this._finish(job, "failed", null, data.error);
    else if (data.status === "cancelled") this._finish(job, "cancelled");
    else this._progress(job, data.progress ?? 0, data.message, data.status);
  }

  _add(info) {
    if (this.jobs.has(info.operationId)) return;
    const bar = el("progress", { max: 100, value: 0, attrs: { "aria-label": `Progress of ${info.title}` } });
    const row = {
      root: el("li", { class: "job", dataset: { operationId: info.operationId, status: "queued" } }),
      percent: el("span", { class: "job-percent", text: "0 %" }),
      status: el("span", { class: "job-status", text: "Queued" }),
      message: el("div", { class: "job-message" }),
      eta: el("span", { class: "job-eta" }),
      bar,
      cancel: el("button", { class: "small", type: "button", text: "Cancel", title: "Stop this job",
                             on: { click: () => this._cancel(info.operationId) } }),
      output: el("div", { class: "job-output" }),
    };
    const dismiss = el("button", { class: "small ghost", type: "button", text: "✕", title: "Remove from the list",
                                   attrs: { "aria-label": "Remove from the list" },
                                   on: { click: () => this._dismiss(info.operationId) } });
    row.root.append(
      el("div", { class: "job-head" }, [el("strong", { text: info.title }), row.status, dismiss]),
      el("div", { class: "job-bar" }, [bar, row.percent]),
      el("div", { class: "job-meta" }, [row.message, row.eta, row.cancel]),
      row.output,
    );
    this.list.prepend(row.root);
    this.jobs.set(info.operationId, { info, status: "queued", progress: 0, samples: [], row });
  }

  _progress(job, progress, message, status = "running") {
    if (FINAL.has(job.status)) return;
    progress = Math.max(job.progress, Math.min(100, Number(progress) || 0));
    job.progress = progress;
    job.status = status;
    const now = performance.now();
    if (progress > 0) job.samples.push([now, progress]);
    if (job.samples.length > 30) job.samples.shift();
    const row = job.row;
    row.root.dataset.status = status;
    row.bar.value = progress;
    row.percent.textContent = `${Math.floor(progress)} %`;
    row.status.textContent = status === "queued" ? "Queued" : "Running";
    if (message) row.message.textContent = message;
    row.eta.textContent = this._eta(job);
  }

  _eta(job) {
    if (job.samples.length < 2) return "";
    const [t0, p0] = job.samples[0];
    const [t1, p1] = job.samples[job.samples.length - 1];
    if (p1 <= p0) return "";
    return formatEta(((100 - p1) * (t1 - t0)) / (p1 - p0) / 1000);
  }

  _finish(job, status, result = null, error = null) {
    if (FINAL.has(job.status)) return;
    job.status = status;
    const row = job.row;
    row.root.dataset.status = status;
    row.cancel.remove();
    row.eta.textContent = "";
    if (status === "done") {
      job.progress = 100;
      row.bar.value = 100;
      row.percent.textContent = "100 %";
      row.status.textContent = "Done";
      if (job.info.operation === "ingest") {
        // The browser proxy: the editor plays it; it is not an output to download.
        row.message.textContent = "Preview ready";
      } else {
        const output = result?.duration ? `Output: ${Number(result.duration).toFixed(2)} s` : "Finished";
        const how = formatRender(result?.render);
        row.message.textContent = how ? `${output} · ${how}` : output;
        this._outputs(row.output, result);
      }
    } else {
      row.status.textContent = status === "cancelled" ? "Cancelled" : "Failed";
      row.message.textContent = status === "cancelled" ? "The job was cancelled." : (error || "The job failed.");
      row.message.classList.add(status === "failed" ? "error-text" : "muted");
    }
    this._save();
  }

  _outputs(container, result) {
    if (!result?.url) return;
    const files = result.parts?.length ? result.parts : [result];
    container.replaceChildren(...files.map((file, index) => el("div", { class: "output" }, [
      el("video", { class: "output-video", src: file.url, controls: true, preload: "metadata",
                    attrs: { "aria-label": `Output ${index + 1}` } }),
      el("a", { class: "button small", href: file.url, text: files.length > 1 ? `Download part ${index + 1}` : "Download",
                attrs: { download: file.filename || "" } }),
    ])));
  }

  async _cancel(operationId) {
    const job = this.jobs.get(operationId);
    job.row.cancel.disabled = true;
    job.cancelling = true;
    try {
      // 200: cancelled at once; 202: a running job was asked to stop, and says so when it has.
      const { data } = await api.cancelJob(operationId);
      if (data.status === "cancelled") this._finish(job, "cancelled");
      else job.row.message.textContent = "Stopping…";
    } catch (error) {
      if (error.status === 409 && error.body?.status) return this._apply(job, (await api.job(operationId)).data);
      job.cancelling = false;
      job.row.cancel.disabled = false;
      job.row.message.textContent = `Could not cancel: ${error.message}`;
    }
  }

  _dismiss(operationId) {
    this.jobs.get(operationId)?.row.root.remove();
    this.jobs.delete(operationId);
    this._save();
    this._refreshEmpty();
  }

  _refreshEmpty() { this.emptyNote.hidden = this.jobs.size > 0; }

  _stored() {
    try {
      const value = JSON.parse(localStorage.getItem(STORE_KEY) || "[]");
      return Array.isArray(value) ? value.filter((v) => v && typeof v.operationId === "string") : [];
    } catch {
      return [];
    }
  }

  _save() {
    // The map is in insertion order; the newest KEEP are stored, oldest first.
    const infos = [...this.jobs.values()].map((j) => j.info).slice(-KEEP);
    localStorage.setItem(STORE_KEY, JSON.stringify(infos));
  }
}
