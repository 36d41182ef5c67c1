/**
 * nve-ws.js: the browser client of native-video-editor's WebSocket (`/ws`, docs/CONTRACT.md section 3).
 *
 *   import { NveSocket } from "/static/js/nve-ws.js";
 *   const socket = new NveSocket();                 // ws(s)://<this page's host>/ws
 *   socket.addEventListener("progress", (e) => show(e.detail.operationId, e.detail.progress));
 *   socket.addEventListener("complete", (e) => done(e.detail.result));
 *   socket.connect();
 *   socket.subscribe(["trim-..."]);                 // optional: narrow to these operations
 *
 * Events (CustomEvent, payload in `detail`):
 *   open {clientId}        connected (after every reconnect too); subscriptions already re-sent
 *   welcome {clientId, message}, heartbeat {timestamp}, pong <data>
 *   progress / complete / error   job messages (`error` always carries operationId)
 *   servererror {error}    the server refused one of our messages (no operationId)
 *   close {code, reason, reconnectIn}   the socket closed; reconnectIn is ms, or null when closed for good
 *   message {type, data}   every message, before its typed event
 *
 * Reconnect: exponential backoff with full jitter, `random() * min(maxDelay, baseDelay * 2**attempt)`,
 * capped at 30 s; after reconnecting the subscriptions are sent again, so the server sends the
 * latest state of each followed operation at once (a final complete/error included).
 * Heartbeat: the server pings every 30 s; if nothing at all arrives for `heartbeatTimeout` ms the
 * connection is taken for dead (a sleeping laptop, a dropped NAT entry) and replaced.
 * Authentication: the page of the server itself needs none (its cookie goes with the handshake).
 * A page of another origin passes `token: async () => "<token>"`, which fetches a fresh token
 * from its own backend (that calls POST /api/ws/token with its API key). It is called on every
 * (re)connect, since a token is spent by its use; `open` and the subscriptions wait for the
 * server's `authenticated` answer.
 */

export const DEFAULTS = Object.freeze({
  baseDelay: 500,
  maxDelay: 30000,
  heartbeatTimeout: 75000,
});

/** Milliseconds to wait before reconnect attempt `attempt` (0-based): full jitter, capped. */
export function backoffDelay(attempt, baseDelay = DEFAULTS.baseDelay, maxDelay = DEFAULTS.maxDelay,
                             random = Math.random) {
  return random() * Math.min(maxDelay, baseDelay * 2 ** attempt);
}

/** The `/ws` URL of the server that served this page. */
export function defaultUrl(location = globalThis.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

export class NveSocket extends EventTarget {
  /**
   * @param {string} [url] defaults to this page's server
   * @param {object} [options] baseDelay, maxDelay, heartbeatTimeout (ms); token (async () => string);
   *   WebSocket, random, setTimeout, clearTimeout (injectable, for tests)
   */
  constructor(url, options = {}) {
    super();
    this.url = url ?? defaultUrl();
    this.options = { ...DEFAULTS, ...options };
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._random = options.random ?? Math.random;
    this._setTimeout = options.setTimeout ?? globalThis.setTimeout.bind(globalThis);
    this._clearTimeout = options.clearTimeout ?? globalThis.clearTimeout.bind(globalThis);
    this.subscriptions = new Set();
    this.clientId = null;
    this.attempt = 0;
    this._ws = null;
    this._stopped = true;
    this._heartbeat = null;
    this._retry = null;
    this._authenticating = false;
  }

  get connected() {
    return this._ws !== null && this._ws.readyState === 1;
  }

  /** Start (or restart after close()) connecting; reconnects on its own until close(). */
  connect() {
    this._stopped = false;
    if (this._ws === null && this._retry === null) this._open();
    return this;
  }

  /** Close for good: no reconnect. */
  close(code = 1000, reason = "") {
    this._stopped = true;
    this._clearTimers();
    const ws = this._ws;
    this._ws = null;
    if (ws !== null) {
      this._detach(ws);
      ws.close(code, reason);
      this._emit("close", { code, reason, reconnectIn: null });
    }
  }

  /** Follow only these operations (adds to the set; re-sent after every reconnect). */
  subscribe(operationIds) {
    for (const id of operationIds) this.subscriptions.add(id);
    if (!this._authenticating) this._send("subscribe", { operationIds: [...operationIds] });
  }

  unsubscribe(operationIds) {
    for (const id of operationIds) this.subscriptions.delete(id);
    if (!this._authenticating) this._send("unsubscribe", { operationIds: [...operationIds] });
  }

  /** A JSON ping: the server answers with a `pong` event carrying `data`. */
  ping(data = null) {
    this._send("ping", data);
  }

  _send(type, data) {
    if (this.connected) this._ws.send(JSON.stringify({ type, data }));
  }

  _open() {
    this._retry = null;
    const ws = new this._WebSocket(this.url);
    this._ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this._armHeartbeat();
      if (this.options.token) this._authenticate(ws);
      else this._ready();
    };
    ws.onmessage = (event) => {
      this._armHeartbeat();
      this._dispatch(event.data);
    };
    ws.onclose = (event) => this._lost(ws, event.code, event.reason);
    ws.onerror = () => {}; // always followed by close, which decides
  }

  async _authenticate(ws) {
    this._authenticating = true;
    let token;
    try {
      token = await this.options.token();
    } catch {
      token = null;
    }
    if (ws !== this._ws) return; // replaced meanwhile
    if (typeof token !== "string" || token === "") {
      ws.close(4001, "no token");
      this._lost(ws, 4001, "no token");
      return;
    }
    this._send("auth", { token });
  }

  /** Connected and (if needed) authenticated: re-send the subscriptions, then say so. */
  _ready() {
    this._authenticating = false;
    if (this.subscriptions.size > 0) this._send("subscribe", { operationIds: [...this.subscriptions] });
    this._emit("open", { clientId: this.clientId });
  }

  _dispatch(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message === null || typeof message !== "object" || typeof message.type !== "string") return;
    const { type, data } = message;
    this._emit("message", { type, data });
    if (type === "ping") {
      if (data && typeof data.clientId === "string") {
        this.clientId = data.clientId;
        this._emit("welcome", data);
      } else {
        this._emit("heartbeat", data);
      }
    } else if (type === "authenticated") {
      if (this._authenticating) this._ready();
    } else if (type === "error") {
      this._emit(data && data.operationId !== undefined ? "error" : "servererror", data);
    } else {
      this._emit(type, data);
    }
  }

  _lost(ws, code, reason) {
    if (ws !== this._ws) return; // an old socket we already gave up on
    this._detach(ws);
    this._ws = null;
    this._authenticating = false;
    this._clearTimers();
    if (this._stopped) {
      this._emit("close", { code, reason, reconnectIn: null });
      return;
    }
    const delay = backoffDelay(this.attempt, this.options.baseDelay, this.options.maxDelay, this._random);
    this.attempt += 1;
    this._emit("close", { code, reason, reconnectIn: delay });
    this._retry = this._setTimeout(() => this._open(), delay);
  }

  _armHeartbeat() {
    if (this._heartbeat !== null) this._clearTimeout(this._heartbeat);
    const ws = this._ws;
    this._heartbeat = this._setTimeout(() => {
      // Silence for too long: the peer is gone even if the browser has not noticed.
      this._heartbeat = null;
      try {
        ws.close(4000, "heartbeat timeout");
      } catch {
        // closing a dead socket may throw in some browsers; it is being replaced anyway
      }
      this._lost(ws, 4000, "heartbeat timeout");
    }, this.options.heartbeatTimeout);
  }

  _clearTimers() {
    if (this._heartbeat !== null) this._clearTimeout(this._heartbeat);
    if (this._retry !== null) this._clearTimeout(this._retry);
    this._heartbeat = null;
    this._retry = null;
  }

  _detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
