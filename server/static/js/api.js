// The REST API of docs/CONTRACT.md section 2, and nothing else. Every failure becomes an
// ApiError whose message is a sentence a person can act on.

export class ApiError extends Error {
  /** `status` is the HTTP status (0 when the server could not be reached); `body` the parsed JSON, if any. */
  constructor(message, status, body = null, headers = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

const PLAIN_WORDS = {
  0: "Cannot reach the server. Check your connection; the editor will keep trying.",
  404: "That item no longer exists.",
  408: "The server took too long to answer. Try again.",
  413: "The file is larger than the server accepts.",
  415: "That file is not a video the editor can read.",
  422: "The video file looks damaged and cannot be read.",
  429: "Too many requests at once. Wait a moment and try again.",
  500: "The server ran into a problem. Try again in a moment.",
  502: "The server is not answering right now. Try again in a moment.",
  503: "The server is starting or busy. Try again in a moment.",
};

/** The sentence to show for a failed response: the server's own, else a plain default. */
export function describeError(status, body) {
  if (body && typeof body.error === "string" && body.error && status !== 500) return body.error;
  return PLAIN_WORDS[status] ?? `The request failed (HTTP ${status}).`;
}

/**
 * fetch() with JSON in and out. Returns {status, data, headers}; throws ApiError on a
 * network failure or a status >= 400 (and on 412, with the current row in `body`).
 */
export async function request(method, path, { json, headers = {}, signal, keepalive = false } = {}) {
  const init = { method, headers: { accept: "application/json", ...headers }, signal, keepalive,
                 credentials: "same-origin" };
  if (json !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(PLAIN_WORDS[0], 0);
  }
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (response.status !== 204 && type.includes("json")) {
    try { data = await response.json(); } catch { data = null; }
  }
  if (!response.ok) throw new ApiError(describeError(response.status, data), response.status, data, response.headers);
  return { status: response.status, data, headers: response.headers };
}

const enc = encodeURIComponent;

export const api = {
  listProjects: (limit = 50) => request("GET", `/api/projects?limit=${limit}`),
  getProject: (id) => request("GET", `/api/projects/${enc(id)}`),
  createProject: (fields) => request("POST", "/api/projects", { json: fields }),
  /** `etag` (from a previous answer) makes it conditional: a stale one is a 412. */
  updateProject: (id, changes, etag, { keepalive = false } = {}) =>
    request("PUT", `/api/projects/${enc(id)}`, { json: changes, headers: etag ? { "if-match": etag } : {}, keepalive }),
  deleteProject: (id) => request("DELETE", `/api/projects/${enc(id)}`),

  metadata: (filename) => request("GET", `/api/metadata/${enc(filename)}`),
  thumbnails: (filename, count) => request("GET", `/api/videos/${enc(filename)}/thumbnails?count=${count}`),
  waveform: (filename) => request("GET", `/api/videos/${enc(filename)}/waveform`),

  trim: (filename, startTime, endTime) => request("POST", "/api/edit/trim", { json: { filename, startTime, endTime } }),
  split: (filename, splitTime) => request("POST", "/api/edit/split", { json: { filename, splitTime } }),
  process: (projectId) => request("POST", "/api/edit/process", { json: { projectId } }),
  job: (operationId) => request("GET", `/api/jobs/${enc(operationId)}`),
  cancelJob: (operationId) => request("POST", `/api/jobs/${enc(operationId)}/cancel`),
};
