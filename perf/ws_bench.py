"""WebSocket fan-out: N clients each receiving K broadcasts through the bench hook.

    python -m perf.ws_bench --clients 100,1000,5000,10000 --count 50 --processes 2
    python -m perf.ws_bench --clients 500 --nodes 3      # the cross-node bus: N clients over 3 nodes
    python -m perf.ws_bench --peer node --clients 1000   # the same rounds against the journal's Node stack
    python -m perf.ws_bench --peer both --clients 1000,5000 --rounds 3   # both, alternating, with same-run ratios
    python -m perf.ws_bench --peer both --floor --clients 1000,5000 --rounds 3   # and the kernel's floor (ws-floor)
    python -m perf ws-rtt --clients 1000 --duration 5   # the ping round trip alone (any --url)

For every N it starts a fresh server (``nve serve`` with ``NVE_BENCH=1``, a throwaway
database, pinned to CPU ``--server-cpu``), connects N clients from ``--processes`` client
processes (pinned to the other CPUs), measures the server's RSS before and after (idle
connections), then ``POST /api/_bench/broadcast {count: K}`` and records, for every
message at every client, ``receive time - sentAt``. Meanwhile one probe client sends
JSON pings every 10 ms and records the pong round trip: how long the server's loop
makes a client wait while it fans out.

With ``--nodes M`` it starts M servers sharing the database and Redis (all pinned to the
same ``--server-cpu``, so the server side has the same CPU either way), spreads the N
clients evenly over them and broadcasts on the first: the other nodes' clients get the
messages through the Redis bus, and their latencies are reported apart (``bus_p50_ms``,
``bus_p99_ms``) from those of the first node's clients (``local_*``).

With ``--peer node`` the server of every round is instead the project's original Node
stack (``perf/peers/node-ws``: express + ``ws``, the design journal's WebSocketService,
with the same bench hook), pinned the same way and driven by the identical rounds, so that
"faster than the Node stack" is measured on this machine with this harness. It needs no
database, runs one node only, and ``npm ci --prefix perf/peers/node-ws`` first (the
harness says so and exits when its ``node_modules`` is missing; it installs nothing).
``--peer both`` runs ours and the Node stack in one invocation, ``--rounds`` times per N,
alternating which goes first, and ends with a table of same-run ratios (ours / Node, the
medians of the rounds): a figure from another run compares nothing on a machine whose
speed swings from hour to hour. ``--floor`` adds ws-floor's bare-write sweep (perf/ws_floor.py)
to the rotation, ``--count`` passes of 160 bytes at the same N, pinned the same way: its
``p50_ms``/``p99_ms`` are the same quantity as a server's (from the "broadcast" to each
client's read, per message and client), and the ratio table gains each server's p99 over
the floor's, from the same run.

Every started server first serves an unmeasured burst (``--warmup`` clients, 200 by
default): a fresh Node process has a cold JIT, and one burst on it measures start-up, not
the server.

Reported: latency p50 / p99 / max, delivered vs expected, RSS per connection, ping RTT
p50 / p99 / max, and the load of the busiest client CPU (its client processes together):
above 90 % the client saturated and the latency figures include its own backlog (they are
then an upper bound on the server's). The clients record what they read during the round
and parse it afterwards (:meth:`BenchClient.record`), so that their own parsing is not
measured as the server's latency. ``ws-rtt`` (:func:`rtt_main`) is the probe alone: N idle clients held
open while one more pings for ``--duration`` s, on a server of its own or at ``--url``.
The clients are minimal asyncio protocols (no WebSocket library: the
frames are parsed by hand, ``sentAt`` is read without a JSON parse) so that they cost as
little as possible.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import json
import multiprocessing
import os
import re
import shutil
import statistics
import struct
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from array import array
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from perf.httpclient import Target
from perf.servers import ServerProcess, dsn, free_port, node_peer_missing, scratch_database
from perf.stats import (
    CpuMeter,
    ProcessCpu,
    add_output_args,
    client_load,
    own_cpu,
    per_cpu,
    print_table,
    shares,
    summarize,
    write_json,
)

SENT_AT = b'"sentAt":'
MARK_SPAN = len(SENT_AT) - 1
FINAL = re.compile(rb'"type"\s*:\s*"(?:complete|error)"')
PONG_EMPTY = b"\x8a\x80\x00\x00\x00\x00"  # a masked (zero key) empty pong
CONNECT_BATCH = 250
NODE_PEER = Path(__file__).resolve().parent / "peers" / "node-ws"


def _handshake(host: str, port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def _masked_text(payload: bytes) -> bytes:
    """A client text frame with the all-zero mask (legal, and the payload needs no XOR)."""
    size = len(payload)
    head = bytes((0x81, 0x80 | size)) if size < 126 else struct.pack("!BBH", 0x81, 0x80 | 126, size)
    return head + b"\0\0\0\0" + payload


class FrameReader:
    """Splits unmasked server frames; returns (opcode, payload) of every complete one."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self.buffer + data if self.buffer else data
        frames = []
        offset, end = 0, len(buffer)
        while end - offset >= 2:
            size = buffer[offset + 1] & 0x7F
            start = offset + 2
            if size == 126:
                if end - offset < 4:
                    break
                size = (buffer[offset + 2] << 8) | buffer[offset + 3]
                start = offset + 4
            elif size == 127:
                if end - offset < 10:
                    break
                size = struct.unpack_from("!Q", buffer, offset + 2)[0]
                start = offset + 10
            if start + size > end:
                break
            frames.append((buffer[offset] & 0x0F, buffer[start:start + size]))
            offset = start + size
        self.buffer = buffer[offset:]
        return frames


class BenchClient(asyncio.Protocol):
    """One connection: records ``now - sentAt`` of every bench message and the arrival of
    every job's final message (``complete``/``error``), answers pings."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.upgraded = False
        self.reader = FrameReader()
        self.ready = asyncio.get_running_loop().create_future()
        self.recorded: list[tuple[float, bytes]] | None = None
        """While recording: every read with its arrival time, parsed by :meth:`replay`."""
        self._tail = b""  # the stream's last bytes read, for a marker cut across reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def record(self) -> None:
        """From now on keep each read with its arrival time and parse it only in :meth:`replay`.

        Parsing costs this harness about 1 us a frame in Python: 250 000 frames a round at
        5 000 clients, as much CPU as the server spends writing them. Done as they arrive,
        it queues reads behind one another and that wait is measured as the server's
        latency; recorded, a read costs an append and a count of the bench messages in it
        (``Sink.arrived``, so the round knows when everything came). Pings wait for the
        replay too: a round is far shorter than the server's ping interval.
        """
        self.recorded = []

    def replay(self) -> None:
        """Parse what was recorded, with each read's own arrival time; stop recording."""
        recorded, self.recorded = self.recorded or [], None
        for now, data in recorded:
            self._parse(now, data)

    def data_received(self, data: bytes) -> None:
        now = time.time() * 1000
        if self.recorded is not None:
            self.recorded.append((now, data))
            # Markers whole in this read, plus one begun in what came before (the tail and
            # this read's head are one byte shorter than a marker: none is whole in either).
            self.sink.arrived += data.count(SENT_AT) + (self._tail + data[:MARK_SPAN]).count(SENT_AT)
            self._tail = data[-MARK_SPAN:] if len(data) >= MARK_SPAN else (self._tail + data)[-MARK_SPAN:]
            return
        self._parse(now, data)

    def _parse(self, now: float, data: bytes) -> None:
        if not self.upgraded:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            head, _, data = self.head.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(ConnectionError(head.split(b"\r\n")[0].decode()))
                return
            self.upgraded = True
        for opcode, payload in self.reader.feed(data):
            if opcode == 0x1:
                at = payload.find(SENT_AT)
                if at >= 0:
                    self.sink.latencies.append(now - float(payload[at + 9:-2]))
                elif FINAL.search(payload, 0, 32):
                    self.sink.finals.append((now, payload))
                elif not self.ready.done():
                    self.ready.set_result(None)  # the welcome
            elif opcode == 0x9:
                self.transport.write(PONG_EMPTY)  # type: ignore[union-attr]
            elif opcode == 0x8:
                self.sink.closed += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the welcome"))


@dataclass
class Sink:
    latencies: array = field(default_factory=lambda: array("d"))
    """``receive - sentAt`` of every bench message, epoch ms."""
    finals: list[tuple[float, bytes]] = field(default_factory=list)
    """(arrival in epoch ms, frame payload) of every job's ``complete``/``error``."""
    closed: int = 0
    arrived: int = 0
    """Bench messages that came while the clients were recording (see BenchClient.record)."""


async def connect_all(host: str, port: int, count: int, sink: Sink) -> list[BenchClient]:
    loop = asyncio.get_running_loop()
    clients: list[BenchClient] = []
    for first in range(0, count, CONNECT_BATCH):
        batch = []
        for _ in range(min(CONNECT_BATCH, count - first)):
            _, client = await loop.create_connection(lambda: BenchClient(sink), host, port)
            client.transport.write(_handshake(host, port))  # type: ignore[union-attr]
            batch.append(client)
        await asyncio.wait_for(asyncio.gather(*(c.ready for c in batch)), 60)
        clients.extend(batch)
    return clients


async def _client_main(host: str, ports: list[int], count: int, expected: int, ready: multiprocessing.Queue,
                       go: multiprocessing.Event, out: multiprocessing.Queue,  # type: ignore[type-arg]
                       release: multiprocessing.Event) -> None:  # type: ignore[type-arg]
    """``count`` clients spread evenly over the servers at ``ports``; reports latencies per server,
    then holds its connections until ``release`` (their closing is no part of the round's CPU)."""
    sinks = [Sink() for _ in ports]
    clients: list[BenchClient] = []
    for index, (port, sink) in enumerate(zip(ports, sinks)):
        share = count // len(ports) + (1 if index < count % len(ports) else 0)
        clients += await connect_all(host, port, share, sink)
    ready.put(len(clients))

    def received() -> int:  # parsed before this process saw ``go`` and recorded since
        return sum(len(s.latencies) + s.arrived for s in sinks)

    while not go.is_set():
        await asyncio.sleep(0.01)
    for client in clients:
        client.record()
    meter = CpuMeter()
    deadline = time.monotonic() + 120
    last_count, last_change = 0, time.monotonic()
    while received() < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        if received() != last_count:
            last_count, last_change = received(), time.monotonic()
        elif last_count and time.monotonic() - last_change > 5:
            break  # quiet for 5 s: whatever is missing is not coming
    cpu = meter.share() if received() else 0.0
    for client in clients:
        client.replay()
    out.put(([s.latencies.tobytes() for s in sinks], sum(s.closed for s in sinks), cpu, own_cpu()))
    while not release.is_set():
        await asyncio.sleep(0.01)
    for client in clients:
        client.transport.abort()  # type: ignore[union-attr]


def _client_process(cpu: int | None, *args: object) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    uvloop.run(_client_main(*args))  # type: ignore[arg-type]


async def probe(host: str, port: int, stop: asyncio.Event) -> list[float]:
    """JSON ping every 10 ms on one more connection; returns the round trips in seconds."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(_handshake(host, port))
    await reader.readuntil(b"\r\n\r\n")
    frames = FrameReader()
    rtts: list[float] = []
    sent: dict[int, float] = {}

    async def receive() -> None:
        while data := await reader.read(65536):
            now = time.perf_counter()
            for opcode, payload in frames.feed(data):
                if opcode == 0x1 and payload.startswith(b'{"type":"pong"'):
                    started = sent.pop(json.loads(payload)["data"], None)
                    if started is not None:
                        rtts.append(now - started)
                elif opcode == 0x9:
                    writer.write(PONG_EMPTY)

    receiving = asyncio.create_task(receive())
    serial = 0
    while not stop.is_set():
        serial += 1
        sent[serial] = time.perf_counter()
        writer.write(_masked_text(b'{"type":"ping","data":%d}' % serial))
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    receiving.cancel()
    writer.close()
    return rtts


# -- the server under test ---------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Server(ServerProcess):
    """A server under test (perf/servers.py): ``nve serve`` with the bench hook on (:meth:`nve`), or
    the Node peer (:meth:`node`)."""

    @classmethod
    def nve(cls, database: str, cpu: int | None, redis_url: str, data_dir: Path,
            script: Path | None = None, env: dict[str, str] | None = None) -> Server:
        """``nve serve`` on ``database``; ``env`` overrides its environment (e.g. ``NVE_WORKERS``, 0
        here: no media workers). ``script`` runs instead of ``python -m server.cli``."""
        port = free_port()
        entry = [str(script)] if script is not None else ["-m", "server.cli"]
        command = [sys.executable, *entry, "--log-level", "WARNING", "serve", "--host", "127.0.0.1",
                   "--port", str(port), "--data-dir", str(data_dir), "--no-access-log"]
        return cls("nve", command, port, cpu, {"NVE_BENCH": "1", "DATABASE_URL": dsn(database),
                                               "REDIS_URL": redis_url, "NVE_WORKERS": "0", **(env or {})})

    @classmethod
    def node(cls, cpu: int | None) -> Server:
        """The journal's Node stack (``perf/peers/node-ws``, see :func:`perf.servers.node_peer_missing`)."""
        port = free_port()
        return cls("node", ["node", str(NODE_PEER / "server.js"), "--host", "127.0.0.1", "--port", str(port),
                            "--quiet"], port, cpu)

    def bus_up(self) -> bool:
        """Whether this server is subscribed to the Redis bus (it subscribes in the background)."""
        with urllib.request.urlopen(f"{self.url}/readyz", timeout=5) as response:
            return json.loads(response.read()).get("websocket", {}).get("bus") == "up"

    def broadcast(self, count: int, operation_id: str) -> None:
        body = json.dumps({"count": count, "operationId": operation_id}).encode()
        request = urllib.request.Request(f"{self.url}/api/_bench/broadcast", data=body,
                                         method="POST", headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202, response.status


# -- one round ---------------------------------------------------------------------------


def _wait_bus(servers: list[Server]) -> None:
    deadline = time.monotonic() + 30
    while not all(server.bus_up() for server in servers):
        if time.monotonic() > deadline:
            raise RuntimeError("the servers did not subscribe to the Redis bus: is REDIS_URL up?")
        time.sleep(0.05)


def run_round(servers: list[Server], clients: int, count: int, processes: int,
              client_cpus: list[int]) -> tuple[dict[str, object], dict[str, list[float]]]:
    """One round; the broadcast enters at ``servers[0]``, the others get it over the Redis bus.
    Returns its row, and its fan-out latencies and ping round trips in seconds (for the plot)."""
    if len(servers) > 1:
        _wait_bus(servers)
    context = multiprocessing.get_context("spawn")
    ready, out = context.Queue(), context.Queue()
    go, release = context.Event(), context.Event()
    ports = [server.port for server in servers]
    workers = start_clients(context, _client_process, clients, processes, client_cpus,
                            lambda cpu, share: (cpu, "127.0.0.1", ports, share, share * count, ready, go, out,
                                                release))
    rss_before = sum(_rss_kib(server.process.pid) for server in servers)
    connected = sum(ready.get(timeout=300) for _ in workers)
    time.sleep(1.0)  # let the servers settle before reading their memory
    rss_after = sum(_rss_kib(server.process.pid) for server in servers)
    origin = servers[0]

    async def drive() -> list[float]:
        stop = asyncio.Event()
        pinging = asyncio.create_task(probe("127.0.0.1", origin.port, stop))
        await asyncio.sleep(0.2)
        meters = [ProcessCpu(server.process.pid) for server in servers]
        go.set()
        await asyncio.to_thread(origin.broadcast, count, f"bench-{clients}-{uuid.uuid4().hex[:8]}")
        results = [await asyncio.to_thread(out.get, True, 300) for _ in workers]
        # The servers' CPU seconds from go to the last report (their CPU "per one request").
        drive.cpu = sum(meter.figures(1)["server_us_per_req"] for meter in meters) / 1e6  # type: ignore[attr-defined]
        release.set()
        stop.set()
        rtts = await pinging
        drive.results = results  # type: ignore[attr-defined]
        return rtts

    try:
        rtts = uvloop.run(drive())
    finally:
        release.set()
    results = drive.results  # type: ignore[attr-defined]
    for worker in workers:
        worker.join(30)
    local, bus = array("d"), array("d")  # clients of the origin server, clients of the others
    closed = 0
    for per_server, lost, _, _ in results:
        for index, raw in enumerate(per_server):
            (local if index == 0 else bus).frombytes(raw)
        closed += lost
    latencies = [v / 1000 for v in (*local, *bus)]
    fanout = summarize(latencies)
    near, far = summarize([v / 1000 for v in local]), summarize([v / 1000 for v in bus])
    ping = summarize(rtts)
    return {
        "nodes": len(servers), "clients": connected, "delivered": len(local) + len(bus),
        "expected": connected * count,
        "p50_ms": fanout["p50_ms"], "p99_ms": fanout["p99_ms"], "max_ms": fanout["max_ms"],
        "local_p50_ms": near["p50_ms"], "local_p99_ms": near["p99_ms"],
        "bus_p50_ms": far["p50_ms"], "bus_p99_ms": far["p99_ms"],
        "rss_kib_per_conn": (rss_after - rss_before) / max(1, connected),
        "ping_p50_ms": ping["p50_ms"], "ping_p99_ms": ping["p99_ms"], "ping_max_ms": ping["max_ms"],
        "pings": len(rtts), "closed_by_server": closed,
        "server_cpu_ms": drive.cpu * 1000,  # type: ignore[attr-defined]
        "server_us_per_msg": drive.cpu * 1e6 / max(1, len(local) + len(bus)),  # type: ignore[attr-defined]
        **client_load(per_cpu((cpu, share) for _, _, share, cpu in results)),
    }, {f"fan-out, {connected} clients on {len(servers)} node(s)": latencies,
        f"ping RTT, {connected} clients": rtts}


@contextmanager
def scratch() -> Iterator[tuple[str, Path]]:
    """A throwaway database (created and dropped on ``PG_ADMIN``'s server) and data directory."""
    with scratch_database("nve_ws_bench") as database:
        data_dir = Path(tempfile.mkdtemp(prefix=database))
        try:
            yield database, data_dir
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)


def pin_cpus(server_cpu: int) -> tuple[int | None, list[int]]:
    """The server's CPU (None: -1, not pinned) and the client CPUs, where this process moves too."""
    cpu = None if server_cpu < 0 else server_cpu
    client_cpus = sorted(os.sched_getaffinity(0) - ({cpu} if cpu is not None else set()))
    os.sched_setaffinity(0, set(client_cpus) or os.sched_getaffinity(0))
    return cpu, client_cpus


def add_server_args(parser: argparse.ArgumentParser) -> None:
    """The options of a server this harness starts itself (when it is not given ``--url``)."""
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU the server is pinned to (-1: none)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="Redis of the server (its bus); an unreachable one means local delivery only")
    parser.add_argument("--server-script", type=Path,
                        help="run this script (same arguments as `nve`) instead of `python -m server.cli`")


def add_target_args(parser: argparse.ArgumentParser) -> None:
    """``--url`` of the deployment to load, and the options of the server started when it is not given."""
    parser.add_argument("--url", help="the deployment to load (default: start a server of its own)")
    add_server_args(parser)


def open_target(stack: ExitStack, args: argparse.Namespace, env: dict[str, str] | None = None) -> tuple[str, list[int]]:
    """The URL to load and the CPUs for client processes: ``args.url`` (no pinning), or a server of
    its own on a scratch database (``env`` added to its environment), stopped when ``stack`` closes."""
    if args.url:
        return args.url, []
    server_cpu, client_cpus = pin_cpus(args.server_cpu)
    database, data_dir = stack.enter_context(scratch())
    server = Server.nve(database, server_cpu, args.redis_url, data_dir, args.server_script, env)
    stack.callback(server.stop)
    return server.url, client_cpus


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perf.ws_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="100,1000,5000,10000", help="comma-separated N values")
    parser.add_argument("--count", type=int, default=50, help="broadcasts per round (K)")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--peer", choices=("nve", "node", "both"), default="nve",
                        help="the server under test: ours, the journal's Node stack (perf/peers/node-ws), or both "
                             "in this one invocation, alternating which goes first, with a table of ratios")
    parser.add_argument("--rounds", type=int, default=1, help="measured rounds per N and server")
    parser.add_argument("--floor", action="store_true",
                        help="also measure ws-floor's bare-write sweep at every N, in the rotation (perf/ws_floor.py)")
    parser.add_argument("--warmup", type=int, default=200,
                        help="clients of an unmeasured burst each started server serves before it is measured "
                             "(0: none); without it a fresh process's cold JIT or caches are what is measured")
    add_server_args(parser)
    parser.add_argument("--nodes", default="1",
                        help="comma-separated server counts (e.g. 1,3): nodes sharing the database and Redis")
    add_output_args(parser)
    args = parser.parse_args(argv)
    node_counts = [int(n) for n in args.nodes.split(",")]
    peers = ["nve", "node"] if args.peer == "both" else [args.peer]
    rotation = [*peers, "floor"] if args.floor else peers
    if "node" in peers:
        if node_counts != [1]:
            parser.error("--peer node runs one server (it has no cross-node bus): leave --nodes at 1")
        if problem := node_peer_missing(NODE_PEER):
            sys.exit(problem)
    if args.floor:  # not at the top: perf.ws_floor imports this module
        from perf.ws_floor import SIZE as FLOOR_SIZE
        from perf.ws_floor import floor_row
    server_cpu, client_cpus = pin_cpus(args.server_cpu)
    rows, raw = [], {}
    with ExitStack() as stack:
        starts: dict[str, Callable[[], Server]] = {"node": functools.partial(Server.node, server_cpu)}
        if "nve" in peers:
            database, data_dir = stack.enter_context(scratch())
            starts["nve"] = functools.partial(Server.nve, database, server_cpu, args.redis_url, data_dir,
                                              args.server_script)
        for nodes in node_counts:
            for clients in (int(n) for n in args.clients.split(",")):
                for round_index in range(args.rounds):
                    # Alternate which server goes first, so neither always meets the warmer machine.
                    for peer in rotation if round_index % 2 == 0 else rotation[::-1]:
                        if peer == "floor":
                            row = {"server": peer, "round": round_index + 1, "nodes": 1,
                                   **floor_row(server_cpu, clients, FLOOR_SIZE, args.count, args.processes,
                                               client_cpus)}
                            rows.append(row)
                            print_table([row], list(row))
                            continue
                        servers: list[Server] = []
                        try:
                            for _ in range(nodes):
                                servers.append(starts[peer]())
                            if args.warmup:
                                run_round(servers, min(args.warmup, clients), args.count, args.processes, client_cpus)
                            row, samples = run_round(servers, clients, args.count, args.processes, client_cpus)
                        finally:
                            for server in servers:
                                server.stop()
                        row = {"server": peer, "round": round_index + 1, **row}
                        rows.append(row)
                        raw.update({f"{peer}: {label}": values for label, values in samples.items()})
                        print_table([row], list(row))
                        sys.stdout.flush()
    print()
    print_table(rows, ["server", "round", "nodes", "clients", "delivered", "expected", "p50_ms", "p99_ms", "max_ms",
                       "local_p50_ms", "local_p99_ms", "bus_p50_ms", "bus_p99_ms", "rss_kib_per_conn",
                       "ping_p50_ms", "ping_p99_ms", "ping_max_ms", "server_us_per_msg", "client_cpu",
                       "client_saturated"])
    ratios = same_run_ratios(rows) if len(rotation) > 1 else []
    if ratios:
        print("\nSame run, medians over the rounds (ratio: ours / Node, below 1: ours is ahead; "
              "*_floor_p99: a server's p99 / the floor's):")
        print_table(ratios, list(ratios[0]))
    write_json(args.json, {"rows": rows, "ratios": ratios} if ratios else rows)
    if args.plot:
        from perf.plot import plot

        plot(args.plot, f"ws-fanout, {args.count} broadcasts", raw)


def same_run_ratios(rows: list[dict[str, Any]]) -> list[dict[str, object]]:
    """Per N, from the medians over the rounds: ours and the Node peer's p50, p99, memory per
    connection and CPU per message delivered, and their ratios (when both ran); the floor's p50
    and p99 and each server's p99 over the floor's (``--floor``); ``lost``, messages a server
    did not deliver."""
    present = {row["server"] for row in rows}
    servers = [server for server in ("nve", "node") if server in present]
    table = []
    for clients in sorted({row["clients"] for row in rows}):
        medians = {server: {key: statistics.median(row[key] for row in rows
                                                   if row["server"] == server and row["clients"] == clients)
                            for key in ("p50_ms", "p99_ms",
                                        *(("rss_kib_per_conn", "server_us_per_msg") if server != "floor" else ()))}
                   for server in present}
        entry: dict[str, object] = {"clients": clients}
        if len(servers) == 2:
            for key in ("p50_ms", "p99_ms", "rss_kib_per_conn", "server_us_per_msg"):
                ours, theirs = medians["nve"][key], medians["node"][key]
                entry |= {f"nve_{key}": ours, f"node_{key}": theirs,
                          f"ratio_{key.removesuffix('_ms')}": ours / theirs if theirs else float("nan")}
        if "floor" in present:
            floor = medians["floor"]
            entry |= {"floor_p50_ms": floor["p50_ms"], "floor_p99_ms": floor["p99_ms"]}
            for server in servers:
                entry |= {f"{server}_p99_ms": medians[server]["p99_ms"],
                          f"{server}_floor_p99": medians[server]["p99_ms"] / floor["p99_ms"]}
        entry["lost"] = sum(int(row["expected"]) - int(row["delivered"]) for row in rows
                            if row["clients"] == clients and row["server"] != "floor")
        table.append(entry)
    return table


def start_clients(context: Any, target: Callable[..., None], total: int, processes: int, cpus: list[int],
                  args_of: Callable[[int | None, int], tuple]) -> list[Any]:
    """``total`` clients split over up to ``processes`` spawned ``target`` processes, started with
    ``args_of(cpu, count)``: ``cpu`` (round robin over ``cpus``, None if empty) is for the
    process to pin itself to, ``count`` its share of the clients."""
    started = []
    for index, count in enumerate(c for c in shares(total, processes) if c):
        process = context.Process(target=target, args=args_of(cpus[index % len(cpus)] if cpus else None, count))
        process.start()
        started.append(process)
    return started


def _hold_idle(cpu: int | None, host: str, port: int, count: int, ready: multiprocessing.Queue,  # type: ignore[type-arg]
               go: multiprocessing.Event, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Client process of ws-rtt: ``count`` connections held open (answering pings) until ``go``;
    then reports (its CPU, its CPU share) on ``out``."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})

    async def hold() -> None:
        sink = Sink()
        clients = await connect_all(host, port, count, sink)
        ready.put(len(clients))
        meter = CpuMeter()
        while not go.is_set():
            await asyncio.sleep(0.05)
        out.put((own_cpu(), meter.share()))
        for client in clients:
            client.transport.abort()  # type: ignore[union-attr]

    uvloop.run(hold())


def rtt_main(argv: list[str] | None = None) -> None:
    """``ws-rtt``: the JSON ping round trip on one connection while N idle ones are held open."""
    parser = argparse.ArgumentParser(prog="python -m perf ws-rtt", description=rtt_main.__doc__)
    parser.add_argument("--clients", type=int, default=1000, help="idle connections held open meanwhile")
    parser.add_argument("--processes", type=int, default=2, help="client processes holding them")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of pinging (every 10 ms)")
    add_target_args(parser)
    add_output_args(parser)
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        url, client_cpus = open_target(stack, args)
        target = Target.from_url(url)
        context = multiprocessing.get_context("spawn")
        ready, out, go = context.Queue(), context.Queue(), context.Event()
        workers = start_clients(context, _hold_idle, args.clients, args.processes, client_cpus,
                                lambda cpu, share: (cpu, target.host, target.port, share, ready, go, out))
        connected = sum(ready.get(timeout=300) for _ in workers)

        async def ping() -> list[float]:
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(args.duration, stop.set)
            return await probe(target.host, target.port, stop)

        rtts = uvloop.run(ping())
        go.set()
        cpu = [out.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(30)
    row = {"clients": connected, "pings": len(rtts), **summarize(rtts), "errors": 0 if rtts else 1,
           **client_load(per_cpu(cpu))}
    print(f"ws-rtt against {args.url or 'a server of its own'}: one JSON ping every 10 ms for "
          f"{args.duration:g} s, {connected} idle clients held open")
    print_table([row], list(row))
    write_json(args.json, [row])
    if args.plot:
        from perf.plot import plot

        plot(args.plot, f"ws-rtt, {connected} idle clients", {"ping RTT": rtts})


if __name__ == "__main__":
    main()
