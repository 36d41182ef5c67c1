"""WebSocket fan-out floor: what one bare write to each of N loopback clients costs this machine.

    python -m perf ws-floor                                   # N = 100, 1000, 5000, 10000; 160-byte writes
    python -m perf ws-floor --clients 1000,5000 --size 1500 --passes 100

A fan-out makes at least one ``transport.write`` per client (ours one per client and
sweep, however many messages it carries), and on loopback each write costs far more in
the kernel than in Python: the TCP send, the receive path of
the peer socket (loopback runs it in the sender's context) and the wake-up of the reader,
some 5-12 us on this machine (p50 6-9 us) against well under 1 us of interpreter. So no single-core
server gets a message to every one of N clients faster than N such writes, and the p99 of
a fan-out cannot be below about 0.99 x N x one write: the 99th-percentile client waits
for 99 % of the sweep. This scenario measures that sweep with nothing else in it (no
WebSocket framing, no JSON, no hub, no database), so that ws-fanout's figures can be read
against the kernel's rather than against zero.

For every N the writer (this process, pinned to ``--server-cpu``) accepts N loopback TCP
connections from ``--processes`` reader processes (pinned to the other CPUs; plain uvloop
protocols that stamp each read and drop it), waits until all are connected, then makes
``--passes`` passes, each one write of ``--size`` bytes on every connection, timed with
``perf_counter``, with a pause of :data:`PAUSE` s between passes so that the readers
drain and every pass finds them waiting, as a broadcast does. Every write of a pass
starts with the pass's start time (epoch ms, :data:`STAMP` bytes), and the reader takes
``read time - start`` of each write: the time from the "broadcast" to each client's read,
which is exactly what ws-fanout reports per message and client (its ``sentAt`` is stamped
as the message is published, its clients take the time as they read).

Reported per N: that receive latency over all passes and clients (``p50_ms``, ``p99_ms``,
``max_ms``; ``received`` of ``clients x passes`` writes); the pass duration over N
(``us_per_write_p50``, ``us_per_write_min``); the pass duration itself (``sweep_ms_p50``,
``sweep_ms_min``: the writer's side only, without the last reader's wake-up); ``queued``,
writes the kernel did not take whole (the rest waited in the transport's buffer: then the
figures are not those of a bare send, and should be 0); and the load of the busiest
reader CPU, flagged above 90 % (the readers then lag and the writer's wake-ups get
cheaper than a broadcast's).

Read beside ``python -m perf ws-fanout`` at the same N (same pinning, ``--processes``), or
in the same run with ``ws-fanout --floor``: its ``p99_ms`` against this ``p99_ms`` is how
many bare sweeps one broadcast message waits for: near 1, the server adds little to the
kernel's writes and only fewer writes (or more cores) would lower it; well above 1, the
time goes to the server's own work per message or per client.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from array import array
from typing import Any

import uvloop

from perf.stats import (
    CpuMeter,
    add_output_args,
    client_load,
    own_cpu,
    per_cpu,
    percentile,
    print_table,
    summarize,
    write_json,
)
from perf.ws_bench import pin_cpus, start_clients

HOST = "127.0.0.1"
PAUSE = 0.05
"""Seconds between passes: the readers drain a 10 000-client pass well within it."""
SETTLE = 0.5
"""Seconds between the last connection and the first pass (the accepts and handshakes settle)."""
SIZE = 160
"""Bytes per write by default: about one progress frame of the bench hook."""
STAMP = 17
"""Bytes at the head of every write: the pass's start, epoch ms (``%017.3f``)."""
COLUMNS = ["clients", "size", "passes", "received", "p50_ms", "p99_ms", "max_ms", "us_per_write_p50",
           "us_per_write_min", "sweep_ms_p50", "sweep_ms_min", "queued", "client_cpu", "client_saturated"]


class _Stamped(asyncio.Protocol):
    """A reader's connection: takes ``now - start`` of every write it reads whole, drops the bytes.

    Writes are ``size`` bytes each, so where one begins in the stream is known without parsing.
    """

    __slots__ = ("latencies", "size", "into")

    def __init__(self, latencies: array[float], size: int) -> None:
        self.latencies = latencies
        self.size = size
        self.into = 0  # bytes of the current write read so far

    def data_received(self, data: bytes) -> None:
        now = time.time() * 1000
        for at in range(-self.into % self.size, len(data) - STAMP + 1, self.size):
            self.latencies.append(now - float(data[at:at + STAMP]))
        self.into = (self.into + len(data)) % self.size


class _Held(asyncio.Protocol):
    """A writer's connection: its transport joins ``held``."""

    def __init__(self, held: list[asyncio.Transport]) -> None:
        self.held = held

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.held.append(transport)  # type: ignore[arg-type]


async def _read(port: int, count: int, size: int, ready: multiprocessing.Queue,  # type: ignore[type-arg]
                go: multiprocessing.Event, stop: multiprocessing.Event,  # type: ignore[type-arg]
                out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    loop = asyncio.get_running_loop()
    latencies = array("d")
    transports = [(await loop.create_connection(lambda: _Stamped(latencies, size), HOST, port))[0]
                  for _ in range(count)]
    ready.put(count)
    while not (go.is_set() or stop.is_set()):  # stop alone: the writer gave up before its passes
        await asyncio.sleep(0.01)
    meter = CpuMeter()
    while not stop.is_set():
        await asyncio.sleep(0.01)
    out.put((own_cpu(), meter.share(), latencies.tobytes()))
    for transport in transports:
        transport.abort()


def _reader_process(cpu: int | None, *args: object) -> None:
    """Reader process: ``count`` connections to ``port`` whose writes of ``size`` bytes are
    stamped and dropped; from ``go`` to ``stop`` it measures its CPU share, then reports (its
    CPU, that share, the receive latencies in ms as array bytes) on ``out``."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    uvloop.run(_read(*args))  # type: ignore[arg-type]


async def sweep_round(clients: int, size: int, passes: int, processes: int,
                      client_cpus: list[int]) -> tuple[dict[str, object], list[float]]:
    """One N: its row and every pass's duration in seconds (for the plot)."""
    loop = asyncio.get_running_loop()
    held: list[asyncio.Transport] = []
    server = await loop.create_server(lambda: _Held(held), HOST, 0, backlog=clients)
    port = server.sockets[0].getsockname()[1]
    context = multiprocessing.get_context("spawn")
    ready, out = context.Queue(), context.Queue()
    go, stop = context.Event(), context.Event()
    readers = start_clients(context, _reader_process, clients, processes, client_cpus,
                            lambda cpu, share: (cpu, port, share, size, ready, go, stop, out))
    try:
        for _ in readers:
            await asyncio.to_thread(ready.get, True, 300)
        deadline = time.monotonic() + 60
        while len(held) < clients:  # the readers' connects are done, not necessarily this side's accepts
            if time.monotonic() > deadline:
                raise RuntimeError(f"accepted {len(held)} of {clients} connections")
            await asyncio.sleep(0.01)
        await asyncio.sleep(SETTLE)
        go.set()
        await asyncio.sleep(PAUSE)
        padding = b"x" * (size - STAMP)
        sweeps: list[float] = []
        queued = 0
        for _ in range(passes):
            frame = b"%017.3f" % (time.time() * 1000) + padding
            started = time.perf_counter()
            for transport in held:
                transport.write(frame)
            sweeps.append(time.perf_counter() - started)
            queued += sum(1 for transport in held if transport.get_write_buffer_size())
            await asyncio.sleep(PAUSE)
        stop.set()
        loads = [await asyncio.to_thread(out.get, True, 60) for _ in readers]
    finally:
        stop.set()
        for transport in held:
            transport.abort()
        server.close()
        for reader in readers:
            reader.join(30)
            if reader.is_alive():
                reader.kill()
    ordered = sorted(sweeps)
    latencies = array("d")
    for _, _, raw in loads:
        latencies.frombytes(raw)
    return {
        "clients": clients, "size": size, "passes": passes, "received": len(latencies),
        **summarize([value / 1000 for value in latencies]),
        "us_per_write_p50": percentile(ordered, 0.5) / clients * 1e6, "us_per_write_min": ordered[0] / clients * 1e6,
        "sweep_ms_p50": percentile(ordered, 0.5) * 1e3, "sweep_ms_min": ordered[0] * 1e3,
        "queued": queued, **client_load(per_cpu((cpu, share) for cpu, share, _ in loads)),
    }, sweeps


def _writer_process(cpu: int | None, out: multiprocessing.Queue, *args: Any) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    out.put(uvloop.run(sweep_round(*args))[0])


def floor_row(cpu: int | None, clients: int, size: int, passes: int, processes: int,
              client_cpus: list[int]) -> dict[str, object]:
    """One N's row, the writer in a process of its own pinned to ``cpu``: for a harness whose own
    process runs on the client CPUs (``ws-fanout --floor``)."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    writer = context.Process(target=_writer_process,
                             args=(cpu, out, clients, size, passes, processes, client_cpus))
    writer.start()
    try:
        row: dict[str, object] = out.get(timeout=600)
    finally:
        writer.join(60)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perf ws-floor", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="100,1000,5000,10000", help="comma-separated N values")
    parser.add_argument("--size", type=int, default=SIZE,
                        help=f"bytes per write, at least {STAMP} ({SIZE}: about one progress frame)")
    parser.add_argument("--passes", type=int, default=50, help="timed passes over all N connections")
    parser.add_argument("--processes", type=int, default=2, help="reader processes")
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU the writer is pinned to (-1: none)")
    add_output_args(parser)
    args = parser.parse_args(argv)
    if args.size < STAMP:
        parser.error(f"--size must be at least {STAMP}: every write starts with its pass's time")
    server_cpu, client_cpus = pin_cpus(args.server_cpu)
    if server_cpu is not None:
        os.sched_setaffinity(0, {server_cpu})  # this process is the writer: the server's side

    async def run() -> tuple[list[dict[str, object]], dict[str, list[float]]]:
        rows, raw = [], {}
        for clients in (int(n) for n in args.clients.split(",")):
            row, raw[f"sweep, {clients} clients"] = await sweep_round(clients, args.size, args.passes,
                                                                       args.processes, client_cpus)
            rows.append(row)
        return rows, raw

    rows, raw = uvloop.run(run())
    print(f"ws-floor: {args.size}-byte writes, {args.passes} passes, writer on CPU "
          f"{'any' if server_cpu is None else server_cpu}, {args.processes} reader process(es) on CPU(s) "
          f"{','.join(map(str, client_cpus)) or 'any'}")
    print_table(rows, COLUMNS)
    write_json(args.json, rows)
    if args.plot:
        from perf.plot import plot

        plot(args.plot, f"ws-floor, one {args.size}-byte write to every client", raw)


if __name__ == "__main__":
    main()
