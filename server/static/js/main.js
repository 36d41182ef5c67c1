// Start-up: the live-updates socket, the jobs panel, and the two views behind the URL hash
// (#/ lists projects, #/projects/<id> edits one), so a reload lands where the user was.

import { $ } from "./dom.js";
import { EditorSession } from "./editor.js";
import { JobsPanel } from "./jobs.js";
import { NveSocket } from "./nve-ws.js";
import { ProjectsView } from "./projects.js";

const socket = new NveSocket();
const jobs = new JobsPanel($("#job-list"), $("#jobs-empty"));
let editor = null;

function notify(sentence) {
  $("#notice-text").textContent = sentence;
  $("#notice").hidden = false;
}
$("#notice-close").addEventListener("click", () => { $("#notice").hidden = true; });

function setConnection(state, text) {
  const pill = $("#connection");
  pill.dataset.state = state;
  pill.textContent = text;
}

socket.addEventListener("open", () => {
  setConnection("open", "Connected");
  // Anything that happened while disconnected: the subscriptions were re-sent (the server
  // answers with each one's latest state) and the REST API fills in the rest.
  jobs.refresh();
});
socket.addEventListener("close", (e) => {
  if (e.detail.reconnectIn === null) setConnection("closed", "Offline");
  else setConnection("reconnecting", "Reconnecting…");
});
for (const type of ["progress", "complete", "error"]) {
  socket.addEventListener(type, (e) => jobs.handle({ type, data: e.detail }));
}

function follow(operationIds) { socket.subscribe(operationIds); }

const ui = {
  notify,
  jobs,
  socket,
  follow,
  setTitle(text) {
    const title = $("#project-title");
    title.hidden = text === null;
    title.textContent = text ?? "";
    document.title = text ? `${text} · native-video-editor` : "native-video-editor";
  },
  setSaveStatus(text, kind) {
    const pill = $("#save-status");
    pill.hidden = !text;
    pill.textContent = text ?? "";
    pill.dataset.kind = kind ?? "";
  },
  showConflict(show) { $("#conflict").hidden = !show; },
};

const projects = new ProjectsView({
  open: (id) => { location.hash = `#/projects/${id}`; },
  notify,
  // An upload's ingest (the browser proxy being made) shows in the jobs panel like any job.
  track: (info) => { jobs.track(info); follow([info.operationId]); },
});
$("#conflict-reload").addEventListener("click", () => editor?.takeTheirs());
$("#conflict-overwrite").addEventListener("click", () => editor?.overwrite());

async function route() {
  const match = /^#\/projects\/(\d+)$/.exec(location.hash);
  $("#notice").hidden = true;
  if (editor) {
    const closing = editor;
    editor = null;
    await closing.close();
  }
  if (match) {
    projects.hide();
    const session = new EditorSession(ui);
    editor = session;
    try {
      await session.open(Number(match[1]));
    } catch (error) {
      if (editor === session) editor = null;
      await session.close();
      notify(error.status === 404 ? "That project does not exist any more." : `Could not open the project: ${error.message}`);
      location.hash = "#/";
    }
  } else {
    await projects.show();
  }
}

window.addEventListener("hashchange", route);
const active = jobs.active;
if (active.length) socket.subscribe(active);
socket.connect();
jobs.refresh();
route();
