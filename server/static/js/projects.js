// The projects view: recent projects first, create one from an upload, open, rename, delete.

import { api } from "./api.js";
import { $, el } from "./dom.js";
import { formatBytes, formatDate, formatTime } from "./format.js";
import { precheck, uploadVideo } from "./upload.js";

export class ProjectsView {
  /**
   * `open(id)` switches to the editor; `notify(sentence)` shows an error banner;
   * `track({operationId, operation, title})` follows a job in the jobs panel.
   */
  constructor({ open, notify, track }) {
    this.open = open;
    this.notify = notify;
    this.track = track;
    this.root = $("#projects-view");
    this.list = $("#project-list");
    this.empty = $("#projects-empty");
    this.uploading = false;
    this._wireUpload();
    $("#projects-refresh").addEventListener("click", () => this.refresh());
  }

  show() {
    this.root.hidden = false;
    return this.refresh();
  }

  hide() { this.root.hidden = true; }

  async refresh() {
    try {
      const { data } = await api.listProjects();
      this.list.replaceChildren(...data.map((project) => this._row(project)));
      this.empty.hidden = data.length > 0;
    } catch (error) {
      this.notify(`Could not load the projects: ${error.message}`);
    }
  }

  _row(project) {
    const li = el("li", { class: "project", dataset: { projectId: String(project.id) } });
    const name = el("button", { class: "project-open", type: "button", text: project.name, title: "Open in the editor",
                                on: { click: () => this.open(project.id) } });
    const markers = project.timeline_state?.markers?.length ?? 0;
    const edits = project.timeline_state?.edits?.length ?? 0;
    const meta = el("div", { class: "project-meta",
                             text: `${project.description || project.video_filename} · ${markers} marker${markers === 1 ? "" : "s"} · `
                                   + `${edits} edit${edits === 1 ? "" : "s"} · updated ${formatDate(project.updated_at)}` });
    const actions = el("div", { class: "project-actions" });
    const normal = () => actions.replaceChildren(
      el("button", { class: "small", type: "button", text: "Open", on: { click: () => this.open(project.id) } }),
      el("button", { class: "small", type: "button", text: "Rename", title: "Rename this project",
                     on: { click: () => this._rename(li, name, project) } }),
      el("button", { class: "small", type: "button", text: "Delete", title: "Delete this project",
                     on: { click: confirmDelete } }),
    );
    const confirmDelete = () => actions.replaceChildren(
      el("span", { class: "muted", text: "Delete it?" }),
      el("button", { class: "small danger", type: "button", text: "Delete for good", on: { click: () => this._delete(project) } }),
      el("button", { class: "small", type: "button", text: "Keep", on: { click: normal } }),
    );
    normal();
    li.append(name, meta, actions);
    return li;
  }

  _rename(li, nameButton, project) {
    const input = el("input", { class: "rename", type: "text", value: project.name, maxLength: 255,
                                attrs: { "aria-label": "New project name" } });
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const name = input.value.trim();
      if (save && name && name !== project.name) {
        try {
          await api.updateProject(project.id, { name });
        } catch (error) {
          this.notify(`Could not rename the project: ${error.message}`);
        }
      }
      await this.refresh();
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") finish(true);
      else if (e.key === "Escape") finish(false);
    });
    input.addEventListener("blur", () => finish(true));
    nameButton.replaceWith(input);
    input.focus();
    input.select();
  }

  async _delete(project) {
    try {
      await api.deleteProject(project.id);
    } catch (error) {
      if (error.status !== 404) this.notify(`Could not delete the project: ${error.message}`);
    }
    await this.refresh();
  }

  // --- upload --------------------------------------------------------------------------

  _wireUpload() {
    const zone = $("#dropzone");
    const input = $("#file-input");
    // The "choose a file" label opens the picker by itself; anywhere else in the zone does it here.
    zone.addEventListener("click", (e) => { if (!e.target.closest("label")) input.click(); });
    zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      const file = e.dataTransfer?.files?.[0];
      if (file) this.upload(file);
    });
    input.addEventListener("change", () => {
      if (input.files[0]) this.upload(input.files[0]);
      input.value = "";
    });
  }

  /** Upload `file`, create a project for it and open it. */
  async upload(file) {
    const errorBox = $("#upload-error");
    const row = $("#upload-progress-row");
    const bar = $("#upload-progress");
    const text = $("#upload-progress-text");
    errorBox.hidden = true;
    const problem = precheck(file);
    if (problem) return this._uploadError(problem);
    if (this.uploading) return this._uploadError("Another upload is still running. Wait for it to finish.");
    this.uploading = true;
    row.hidden = false;
    bar.value = 0;
    text.textContent = `0 % of ${formatBytes(file.size)}`;
    try {
      const uploaded = await uploadVideo(file, (fraction) => {
        bar.value = fraction * 100;
        text.textContent = fraction < 1 ? `${Math.floor(fraction * 100)} % of ${formatBytes(file.size)}` : "Checking the video…";
      });
      const nameInput = $("#new-project-name");
      const name = nameInput.value.trim() || file.name.replace(/\.[^.]+$/, "") || "Untitled";
      const meta = uploaded.metadata;
      const preview = meta?.preview;
      if (preview?.status === "pending" && preview.operationId) {
        this.track?.({ operationId: preview.operationId, operation: "ingest", title: "Preparing preview" });
      }
      const duration = meta?.duration;
      // The size as shown (a phone's portrait clip is stored landscape with a rotation).
      const size = `${meta?.display_width ?? meta?.width}×${meta?.display_height ?? meta?.height}`;
      const { data: project } = await api.createProject({
        name, videoFilename: uploaded.filename, videoUrl: uploaded.url,
        description: duration ? `${formatTime(duration)} · ${size}` : undefined,
        timelineState: { currentTime: 0, zoom: 1, markers: [], edits: [] },
      });
      nameInput.value = "";
      row.hidden = true;
      this.open(project.id);
    } catch (error) {
      row.hidden = true;
      this._uploadError(`The upload failed: ${error.message}`);
    } finally {
      this.uploading = false;
    }
  }

  _uploadError(sentence) {
    const box = $("#upload-error");
    box.textContent = sentence;
    box.hidden = false;
  }
}
