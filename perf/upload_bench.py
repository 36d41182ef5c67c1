"""Upload throughput through the server: multipart ``POST /api/upload`` and tus ``PATCH``.

Run ``python -m perf.upload_bench [--mb 256] [--runs 3]``. The server runs in this process
(on uvloop, with its media pool, against a throwaway database on ``NVE_TEST_PG``, default
``postgresql://postgres@127.0.0.1:5432/postgres``); the client is a separate process
writing raw HTTP on a socket in 1 MiB writes, so the figure is the server's (parse,
write to disk off the loop, probe, rename), not an HTTP client library's. The payload
is a small valid MP4 padded to the size asked for (FFmpeg ignores trailing bytes), so
every upload is probed and stored for real. It reports MB/s (10^6 bytes) per mode, the
median of ``--runs``, and the upload-to-201 wall time:

- multipart: one POST with a ``Content-Length``;
- tus: one creation POST, then one PATCH of everything; tus+sha1: the same PATCH with
  ``Upload-Checksum`` (the server hashes in its writer thread; the client's digest is
  computed before the clock starts); tus-8MiB: a PATCH per 8 MiB.

The client process reports its CPU share of the upload, flagged above 90 % (the client,
not the server, set the pace). On a shared 2-core VM the client and the server compete
for the cores: trust ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from perf.stats import CpuMeter, add_output_args, client_load, print_table, write_json

BOUNDARY = "nve-bench-boundary"
WRITE = 1 << 20


# -- client (a separate process) ----------------------------------------------------------


async def _request(port: int, head: str, body_parts: list[tuple[Path, int, int]] | bytes) -> tuple[int, dict[str, str]]:
    """Send one request (body from byte ranges of files, streamed) and read its status and headers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode())
    if isinstance(body_parts, bytes):
        writer.write(body_parts)
    else:
        for path, start, length in body_parts:
            with open(path, "rb") as file:
                file.seek(start)
                while length > 0:
                    chunk = file.read(min(WRITE, length))
                    length -= len(chunk)
                    writer.write(chunk)
                    await writer.drain()
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        key, _, value = line.decode().partition(":")
        headers[key.strip().lower()] = value.strip()
    await reader.readexactly(int(headers.get("content-length", "0")))
    writer.close()
    return status, headers


async def _multipart(port: int, payload: Path, size: int) -> None:
    prefix = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="video"; filename="bench.mp4"\r\n'
              f"Content-Type: video/mp4\r\n\r\n").encode()
    suffix = f"\r\n--{BOUNDARY}--\r\n".encode()
    length = len(prefix) + size + len(suffix)
    head = (f"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + prefix)
    with open(payload, "rb") as file:
        while chunk := file.read(WRITE):
            writer.write(chunk)
            await writer.drain()
    writer.write(suffix)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    writer.close()
    if status != 201:
        raise RuntimeError(f"multipart upload answered {status}")


def _sha1s(payload: Path, size: int, chunk: int) -> list[str]:
    """The ``Upload-Checksum`` of each PATCH, computed before the clock starts."""
    digests = []
    with open(payload, "rb") as file:
        for _ in range(0, size, chunk):
            digests.append(base64.b64encode(hashlib.sha1(file.read(chunk)).digest()).decode())
    return digests


async def _tus(port: int, payload: Path, size: int, chunk: int, checksums: list[str] | None) -> None:
    tus = "Tus-Resumable: 1.0.0\r\n"
    status, headers = await _request(port, f"POST /api/uploads/ HTTP/1.1\r\nHost: 127.0.0.1\r\n{tus}"
                                           f"Upload-Length: {size}\r\nContent-Length: 0\r\n\r\n", b"")
    if status != 201:
        raise RuntimeError(f"tus creation answered {status}")
    url = headers["location"]
    offset = 0
    while offset < size:
        length = min(chunk, size - offset)
        extra = f"Upload-Checksum: sha1 {checksums[offset // chunk]}\r\n" if checksums else ""
        status, headers = await _request(port, (
            f"PATCH {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n{tus}Upload-Offset: {offset}\r\n{extra}"
            f"Content-Type: application/offset+octet-stream\r\nContent-Length: {length}\r\n\r\n"),
            [(payload, offset, length)])
        if status != 204:
            raise RuntimeError(f"tus PATCH answered {status}")
        offset = int(headers["upload-offset"])


def client_main(port: int, payload: Path, mode: str) -> None:
    size = payload.stat().st_size
    checksums = _sha1s(payload, size, size) if mode == "tus+sha1" else None
    started, meter = time.perf_counter(), CpuMeter()
    if mode == "multipart":
        asyncio.run(_multipart(port, payload, size))
    elif mode in ("tus", "tus+sha1"):
        asyncio.run(_tus(port, payload, size, size, checksums))
    elif mode == "tus-8MiB":
        asyncio.run(_tus(port, payload, size, 8 << 20, None))
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps({"seconds": time.perf_counter() - started, "cpu": meter.share()}))


# -- server (this process) -------------------------------------------------------------------


def make_payload(directory: Path, megabytes: int) -> Path:
    from tests.media.clips import make_clip

    clip = make_clip(directory / "clip.mp4", seconds=2.0)
    payload = directory / "payload.mp4"
    with open(payload, "wb") as out:
        out.write(clip.read_bytes())
        block = os.urandom(WRITE)
        while out.tell() < megabytes * 1_000_000:
            out.write(block[:megabytes * 1_000_000 - out.tell()])
    return payload


async def bench(megabytes: int, runs: int, json_path: Path | None, plot_path: Path | None) -> None:
    import asyncpg

    from core.config import Settings
    from server.cli.serve import start

    admin_dsn = os.environ.get("NVE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    database = f"nve_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    work = Path(tempfile.mkdtemp(prefix="nve-upload-bench-"))
    dsn = admin_dsn.rpartition("/")[0] + "/" + database
    running = None
    try:
        payload = make_payload(work, megabytes)
        settings = Settings(host="127.0.0.1", port=0, data_dir=work / "data", database_url=dsn,
                            redis_url="redis://127.0.0.1:1/0", workers=0)
        running = await start(settings, dsn)
        app = running.app
        size = payload.stat().st_size
        rows, raw = [], {}
        for mode in ("multipart", "tus", "tus+sha1", "tus-8MiB"):
            seconds, cpu = [], []
            for _ in range(runs):
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "perf.upload_bench", "--client", str(running.port), str(payload), mode,
                    stdout=subprocess.PIPE)
                out, _ = await process.communicate()
                if process.returncode:
                    raise RuntimeError(f"{mode} client failed")
                report = json.loads(out)
                seconds.append(report["seconds"])
                cpu.append(report["cpu"])
                for stored in app.settings.media_path.glob("*.mp4"):
                    stored.unlink()
            median = statistics.median(seconds)
            rows.append({"mode": mode, "mb_per_s": size / 1e6 / median, "seconds": median, "runs": runs,
                         "errors": 0, **client_load(cpu)})
            raw[mode] = seconds
        print(f"payload {size / 1e6:.0f} MB, median of {runs} runs, client in its own process")
        print_table(rows, ["mode", "mb_per_s", "seconds", "client_cpu", "client_saturated"])
        write_json(json_path, rows)
        if plot_path:
            from perf.plot import plot

            plot(plot_path, f"upload of {size / 1e6:.0f} MB: upload-to-201 time per run", raw)
    finally:
        if running is not None:
            await running.stop()
        shutil.rmtree(work, ignore_errors=True)
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


def main(argv: list[str] | None = None) -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256, help="payload size in MB (default 256)")
    parser.add_argument("--runs", type=int, default=3)
    add_output_args(parser)
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(bench(args.mb, args.runs, args.json, args.plot))


if __name__ == "__main__":
    main()
