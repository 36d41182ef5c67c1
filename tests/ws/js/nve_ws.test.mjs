// Logic of server/static/js/nve-ws.js with a fake WebSocket and fake timers: no server, no browser.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NveSocket, backoffDelay } from "../../../server/static/js/nve-ws.js";

class FakeWebSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
    FakeWebSocket.all.push(this);
  }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code, reason) { this.closedWith = { code, reason }; this.readyState = 3; }
  // what the server does:
  open() { this.readyState = 1; this.onopen?.({}); }
  message(type, data) { this.onmessage?.({ data: JSON.stringify({ type, data }) }); }
  drop(code = 1006) { this.readyState = 3; this.onclose?.({ code, reason: "" }); }
}

function fakeTimers() {
  let now = 0;
  let next = 1;
  const pending = new Map();
  return {
    setTimeout: (fn, ms) => { pending.set(next, { at: now + ms, fn }); return next++; },
    clearTimeout: (id) => pending.delete(id),
    advance(ms) {
      now += ms;
      for (const [id, timer] of [...pending].sort((a, b) => a[1].at - b[1].at)) {
        if (timer.at <= now && pending.has(id)) { pending.delete(id); timer.fn(); }
      }
    },
    get count() { return pending.size; },
  };
}

function socket(options = {}) {
  FakeWebSocket.all = [];
  const timers = fakeTimers();
  const events = [];
  const s = new NveSocket("ws://test/ws", { WebSocket: FakeWebSocket, random: () => 1, ...timers, ...options });
  for (const type of ["open", "welcome", "heartbeat", "pong", "progress", "complete", "error", "servererror", "close"]) {
    s.addEventListener(type, (e) => events.push([type, e.detail]));
  }
  return { s, timers, events };
}

test("backoff doubles with full jitter and is capped at 30 s", () => {
  assert.equal(backoffDelay(0, 500, 30000, () => 1), 500);
  assert.equal(backoffDelay(3, 500, 30000, () => 1), 4000);
  assert.equal(backoffDelay(20, 500, 30000, () => 1), 30000);
  assert.equal(backoffDelay(5, 500, 30000, () => 0.5), 8000);
  assert.equal(backoffDelay(5, 500, 30000, () => 0), 0);
});

test("typed events from the contract's messages", () => {
  const { s, events } = socket();
  s.connect();
  const ws = FakeWebSocket.all[0];
  ws.open();
  ws.message("ping", { clientId: "c-1", message: "Connected to native-video-editor WebSocket" });
  ws.message("ping", { timestamp: 5 });
  ws.message("progress", { operationId: "trim-1", progress: 10 });
  ws.message("complete", { operationId: "trim-1", result: { filename: "a.mp4" } });
  ws.message("error", { operationId: "trim-2", error: "bad" });
  ws.message("error", { error: "Unknown message type" });
  ws.onmessage({ data: "not json" });
  assert.equal(s.clientId, "c-1");
  assert.deepEqual(events.map(([type]) => type),
    ["open", "welcome", "heartbeat", "progress", "complete", "error", "servererror"]);
  s.ping({ n: 1 });
  assert.deepEqual(ws.sent.at(-1), { type: "ping", data: { n: 1 } });
});

test("reconnects with growing delays and resubscribes", () => {
  const { s, timers, events } = socket();
  s.connect();
  FakeWebSocket.all[0].open();
  s.subscribe(["a", "b"]);
  s.unsubscribe(["b"]);
  FakeWebSocket.all[0].drop();
  assert.deepEqual(events.at(-1), ["close", { code: 1006, reason: "", reconnectIn: 500 }]);
  timers.advance(499);
  assert.equal(FakeWebSocket.all.length, 1);
  timers.advance(1);
  assert.equal(FakeWebSocket.all.length, 2);
  FakeWebSocket.all[1].drop(); // fails again before opening: the next wait doubles
  assert.equal(events.at(-1)[1].reconnectIn, 1000);
  timers.advance(1000);
  const third = FakeWebSocket.all[2];
  third.open();
  assert.deepEqual(third.sent, [{ type: "subscribe", data: { operationIds: ["a"] } }]);
  third.drop();
  assert.equal(events.at(-1)[1].reconnectIn, 500); // a successful open resets the backoff
});

test("silence past the heartbeat timeout replaces the connection", () => {
  const { s, timers, events } = socket({ heartbeatTimeout: 1000 });
  s.connect();
  const first = FakeWebSocket.all[0];
  first.open();
  timers.advance(900);
  first.message("ping", { timestamp: 1 }); // resets the timer
  timers.advance(900);
  assert.equal(first.closedWith, null);
  timers.advance(200);
  assert.deepEqual(first.closedWith, { code: 4000, reason: "heartbeat timeout" });
  assert.equal(events.at(-1)[1].code, 4000);
  first.drop(); // its late close event changes nothing
  timers.advance(500);
  assert.equal(FakeWebSocket.all.length, 2);
});

test("close() is final: no reconnect, no timers left", () => {
  const { s, timers, events } = socket();
  s.connect();
  FakeWebSocket.all[0].open();
  s.close();
  assert.deepEqual(events.at(-1), ["close", { code: 1000, reason: "", reconnectIn: null }]);
  timers.advance(60000);
  assert.equal(FakeWebSocket.all.length, 1);
  assert.equal(timers.count, 0);
  s.connect(); // and may be started again
  assert.equal(FakeWebSocket.all.length, 2);
});

test("with a token option, every connection authenticates before it subscribes", async () => {
  let issued = 0;
  const { s, timers, events } = socket({ token: async () => `t${++issued}` });
  s.subscribe(["a"]); // before connecting: remembered, sent once authenticated
  s.connect();
  const first = FakeWebSocket.all[0];
  first.open();
  await Promise.resolve();
  s.subscribe(["b"]); // while the answer is awaited: joins the set, not the wire
  assert.deepEqual(first.sent, [{ type: "auth", data: { token: "t1" } }]);
  assert.equal(events.filter(([type]) => type === "open").length, 0);
  first.message("authenticated", { message: "ok" });
  assert.deepEqual(first.sent.slice(1), [{ type: "subscribe", data: { operationIds: ["a", "b"] } }]);
  assert.equal(events.filter(([type]) => type === "open").length, 1);

  first.drop();
  timers.advance(500);
  const second = FakeWebSocket.all[1];
  second.open();
  await Promise.resolve();
  assert.deepEqual(second.sent, [{ type: "auth", data: { token: "t2" } }]); // a fresh token: they are single use
});

test("a token that cannot be had closes the connection and retries with backoff", async () => {
  const { s, timers, events } = socket({ token: async () => { throw new Error("backend down"); } });
  s.connect();
  FakeWebSocket.all[0].open();
  await Promise.resolve();
  await Promise.resolve();
  assert.deepEqual(FakeWebSocket.all[0].closedWith, { code: 4001, reason: "no token" });
  assert.deepEqual(events.at(-1), ["close", { code: 4001, reason: "no token", reconnectIn: 500 }]);
  timers.advance(500);
  assert.equal(FakeWebSocket.all.length, 2);
});
