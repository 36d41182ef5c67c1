// Uploading a video: a multipart POST /api/upload with a progress callback, or, for
// large files when the server speaks it, tus 1.0 at /api/uploads/ so a dropped
// connection or a reload resumes where it stopped instead of starting over.

import { ApiError, describeError } from "./api.js";

const TUS_THRESHOLD = 32 * 1024 * 1024;
const TUS_CHUNK = 8 * 1024 * 1024;
const TUS_VERSION = "1.0.0";
const VIDEO_EXTENSIONS = /\.(mp4|m4v|mov|mkv|webm|avi|mpg|mpeg|ts|mts|ogv|3gp|flv|wmv)$/i;

/** A sentence when `file` is plainly not a video (checked again by the server), else null. */
export function precheck(file) {
  if (file.size === 0) return `"${file.name}" is empty.`;
  if (!(file.type.startsWith("video/") || VIDEO_EXTENSIONS.test(file.name))) {
    return `"${file.name}" does not look like a video file. Choose an MP4, MOV, MKV or WebM file.`;
  }
  return null;
}

/**
 * Upload `file`; `onProgress(fraction 0..1, bytesSent)`. Resolves to {filename, url, metadata}.
 * Rejects with an ApiError whose message says what went wrong in plain words.
 */
export async function uploadVideo(file, onProgress) {
  if (file.size >= TUS_THRESHOLD && (await tusAvailable())) return tusUpload(file, onProgress);
  return multipartUpload(file, onProgress);
}

function multipartUpload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("video", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/upload");
    xhr.responseType = "json";
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total, event.loaded);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1, file.size);
        resolve(xhr.response);
      } else {
        reject(new ApiError(describeError(xhr.status, xhr.response), xhr.status, xhr.response));
      }
    };
    xhr.onerror = () => reject(new ApiError("The upload was interrupted: the server could not be reached.", 0));
    xhr.send(form);
  });
}

export async function tusAvailable() {
  try {
    const response = await fetch("/api/uploads/", { method: "OPTIONS" });
    return (response.headers.get("tus-version") || "").split(",").map((v) => v.trim()).includes(TUS_VERSION);
  } catch {
    return false;
  }
}

/** Where the upload URL of `file` is kept between attempts (and reloads). */
export const tusKey = (file) => `nve.tus:${file.name}:${file.size}:${file.lastModified}`;

const b64 = (text) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));

async function tusFetch(url, init) {
  let response;
  try {
    response = await fetch(url, { ...init, headers: { "tus-resumable": TUS_VERSION, ...init.headers } });
  } catch {
    throw new ApiError("The upload was interrupted: the server could not be reached.", 0);
  }
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch { /* not JSON */ }
    throw new ApiError(describeError(response.status, body), response.status, body);
  }
  return response;
}

/** Upload `file` over tus in `chunkSize` pieces, resuming an earlier attempt at the same file. */
export async function tusUpload(file, onProgress, chunkSize = TUS_CHUNK) {
  const key = tusKey(file);
  let location = localStorage.getItem(key);
  let offset = 0;
  if (location) {
    try {
      const head = await tusFetch(location, { method: "HEAD" });
      offset = Number(head.headers.get("upload-offset") || 0);
    } catch {
      location = null;
    }
  }
  if (!location) {
    const created = await tusFetch("/api/uploads/", {
      method: "POST",
      headers: {
        "upload-length": String(file.size),
        "upload-metadata": `filename ${b64(file.name)},filetype ${b64(file.type || "video/mp4")}`,
      },
    });
    location = new URL(created.headers.get("location"), window.location.href).pathname;
    localStorage.setItem(key, location);
  }
  let last = null;
  while (offset < file.size) {
    const chunk = file.slice(offset, offset + chunkSize);
    last = await tusFetch(location, {
      method: "PATCH",
      headers: { "upload-offset": String(offset), "content-type": "application/offset+octet-stream" },
      body: chunk,
    });
    offset = Number(last.headers.get("upload-offset"));
    onProgress(offset / file.size, offset);
  }
  localStorage.removeItem(key);
  return tusResult(last, location);
}

/** The finished upload's {filename, url, metadata}: the last PATCH's JSON, else the upload's. */
async function tusResult(response, location) {
  if (response && (response.headers.get("content-type") || "").includes("json")) {
    const data = await response.json();
    if (data && data.filename) return data;
  }
  const info = await tusFetch(location, { method: "GET", headers: { accept: "application/json" } });
  return info.json();
}
