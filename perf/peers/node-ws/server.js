'use strict';
/**
 * The project's original Node WebSocket stack (design journal v1.3, sections 3.2, 4.2.2,
 * 5.1 and 5.2): express for HTTP, `ws` for /ws, and the journal's WebSocketService (a
 * Map<clientId, WebSocket>, a welcome ping, a 30 s JSON ping, broadcast by iterating the
 * clients and ws.send(JSON.stringify(message)) to each one). perf/ws_bench.py --peer node
 * runs it in place of `nve serve`, so the fan-out of both is measured by the same harness.
 *
 * Added for the harness, as the contract (docs/CONTRACT.md section 3) has them: the ping -> pong
 * echo, GET /healthz, GET /readyz and the benchmark hook POST /api/_bench/broadcast.
 *
 *     node server.js [--host 127.0.0.1] [--port 3001] [--quiet]
 *
 * HOST and PORT in the environment are the defaults of --host and --port. --quiet drops
 * the journal's per-connection console.log lines (the harness runs our server at WARNING).
 */

const http = require('node:http');
const { randomUUID } = require('node:crypto');
const { performance } = require('node:perf_hooks');
const { setImmediate: nextTurn } = require('node:timers/promises');
const { parseArgs } = require('node:util');
const express = require('express');
const { WebSocketServer, WebSocket } = require('ws');

const BENCH_MAX_COUNT = 100000;

const { values: options } = parseArgs({
  options: {
    host: { type: 'string', default: process.env.HOST ?? '127.0.0.1' },
    port: { type: 'string', default: process.env.PORT ?? '3001' },
    quiet: { type: 'boolean', default: false },
  },
});
const log = options.quiet ? () => {} : console.log;

/** The journal's WebSocketService (5.1, 5.2), with the contract's pong added to handleMessage. */
class WebSocketService {
  constructor(server) {
    this.clients = new Map();
    this.pingInterval = null;
    // perMessageDeflate is off by default for a ws server: every frame goes out uncompressed.
    this.wss = new WebSocketServer({ server, path: '/ws' });

    this.wss.on('connection', (ws) => {
      const clientId = randomUUID(); // the journal's uuidv4(), without the dependency
      this.clients.set(clientId, ws);

      log(`WebSocket client connected: ${clientId}`);
      log(`Total clients: ${this.clients.size}`);

      this.send(ws, {
        type: 'ping',
        data: { clientId, message: 'Connected to native-video-editor WebSocket' },
      });

      ws.on('message', (data) => {
        try {
          const message = JSON.parse(data.toString());
          this.handleMessage(clientId, ws, message);
        } catch (error) {
          console.error('Failed to parse WebSocket message:', error);
        }
      });

      ws.on('close', () => {
        this.clients.delete(clientId);
        log(`WebSocket client disconnected: ${clientId}`);
      });

      ws.on('error', (error) => {
        console.error(`WebSocket error for client ${clientId}:`, error);
        this.clients.delete(clientId);
      });
    });

    this.startPingInterval();
  }

  /** The journal does not print handleMessage; this is the contract's ping -> pong echo. */
  handleMessage(clientId, ws, message) {
    if (message && message.type === 'ping') {
      this.send(ws, { type: 'pong', data: message.data });
    }
  }

  send(ws, message) {
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(message));
    }
  }

  broadcastProgress(data) {
    this.broadcast({ type: 'progress', data });
  }

  broadcast(message) {
    const messageStr = JSON.stringify(message);

    this.clients.forEach((ws) => {
      if (ws.readyState === WebSocket.OPEN) {
        ws.send(messageStr);
      }
    });
  }

  startPingInterval() {
    this.pingInterval = setInterval(() => {
      this.clients.forEach((ws, clientId) => {
        if (ws.readyState === WebSocket.OPEN) {
          this.send(ws, { type: 'ping', data: { timestamp: Date.now() } });
        } else {
          this.clients.delete(clientId);
        }
      });
    }, 30000);
  }
}

/** Epoch ms with a fraction, like the Python server's time.time() * 1000 (Date.now() is whole ms). */
function epochMs() {
  return performance.timeOrigin + performance.now();
}

/** `count` progress messages to every client, yielding to the event loop between them (as ours does). */
async function benchBroadcast(service, operationId, count) {
  for (let index = 1; index <= count; index++) {
    service.broadcastProgress({
      operationId,
      operation: 'process',
      progress: (index * 100) / count,
      message: `bench ${index}/${count}`,
      sentAt: epochMs(), // last: the harness reads it as the frame's tail, without a JSON parse
    });
    await nextTurn();
  }
}

const app = express();
const server = http.createServer(app);
const wsService = new WebSocketService(server);

app.get('/healthz', (req, res) => {
  res.json({ status: 'ok' });
});

app.get('/readyz', (req, res) => {
  res.json({ status: 'ready', websocket: { clients: wsService.clients.size } });
});

app.post('/api/_bench/broadcast', express.json(), (req, res) => {
  const { count, operationId } = req.body ?? {};
  if (!Number.isInteger(count) || count < 1 || count > BENCH_MAX_COUNT) {
    res.status(400).json({ error: `Field 'count' must be an integer from 1 to ${BENCH_MAX_COUNT}` });
    return;
  }
  if (typeof operationId !== 'string' || operationId === '') {
    res.status(400).json({ error: "Field 'operationId' must be a non-empty string" });
    return;
  }
  res.status(202).json({ operationId, count });
  benchBroadcast(wsService, operationId, count).catch((error) => console.error('bench broadcast failed:', error));
});

server.listen(Number(options.port), options.host, () => {
  log(`node-ws peer listening on http://${options.host}:${options.port}`);
});
