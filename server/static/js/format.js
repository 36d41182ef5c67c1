// Formatting of times and sizes for display.

/** 75.25 -> "1:15.25"; hours shown only when needed. */
export function formatTime(seconds, decimals = 2) {
  if (!Number.isFinite(seconds) || seconds < 0) seconds = 0;
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = (seconds % 60).toFixed(decimals).padStart(decimals ? decimals + 3 : 2, "0");
  const mm = hours ? String(minutes).padStart(2, "0") : String(minutes);
  return hours ? `${hours}:${mm}:${rest}` : `${mm}:${rest}`;
}

/** A wall-clock time as hh:mm:ss (the "Saved" indicator). */
export function clockTime(date = new Date()) {
  return [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

export function formatBytes(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

/** Seconds left as "about 12 s" / "about 3 min". */
export function formatEta(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  if (seconds < 60) return `about ${Math.max(1, Math.round(seconds))} s left`;
  return `about ${Math.round(seconds / 60)} min left`;
}

/** "2026-12-01T07:38:12+00:00" -> a short local date and time. */
export function formatDate(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

/** How a render was made (a process job's result.render), e.g. "smart render: 40 of 300 frames re-encoded". */
export function formatRender(render) {
  if (!render) return "";
  if (render.path === "smart") {
    const total = render.reencodedFrames + render.copiedFrames;
    return `smart render: ${render.reencodedFrames} of ${total} frames re-encoded`;
  }
  if (render.path === "chunked") return `rendered in ${render.chunks} chunks`;
  return "full render";
}
