"""A stand-in for an asyncio transport (records writes, can play a peer that stops reading),
and the data of the job messages the hub tests publish."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from core.access.owners import LOCAL
from server.ws.hub import Hub
from server.ws.protocol import WsProtocol
from tests.ws.frames import CLOSE, PING, TEXT, client_frame, close_code, server_frames


class FakeTransport(asyncio.Transport):
    def __init__(self, reading: bool = True) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.reading = reading
        """False: the peer reads nothing, so written bytes stay buffered here."""
        self.buffered = 0
        self.high = 64 * 1024
        self.paused = False
        self.closing = False
        self.eof = False
        self.aborted = False
        self.protocol: WsProtocol | None = None

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.high = high if high is not None else self.high

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:  # type: ignore[override]
        assert not self.aborted
        if self.eof:  # as uvloop's transports do
            raise RuntimeError("Cannot call write() after write_eof()")
        self.writes.append(data)
        if not self.reading:
            self.buffered += len(data)
            if self.buffered > self.high and not self.paused:
                self.paused = True
                assert self.protocol is not None
                self.protocol.pause_writing()

    def writelines(self, list_of_data) -> None:  # type: ignore[no-untyped-def, override]
        for data in list_of_data:  # a writev: the very same bytes objects, one after another
            self.write(data)

    def drain(self) -> None:
        """The peer reads everything buffered."""
        self.buffered = 0
        if self.paused:
            self.paused = False
            assert self.protocol is not None
            self.protocol.resume_writing()

    def close(self) -> None:
        self.closing = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """The half-close that ends every connection; the peer's end of stream is up to the test."""
        self.eof = True
        self.closing = True

    def abort(self) -> None:
        self.aborted = True
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def lose(self) -> None:
        """What asyncio does once a closed transport is gone."""
        assert self.protocol is not None
        self.protocol.connection_lost(None)

    # -- reading what was written --------------------------------------------------------

    def frames(self) -> list[tuple[int, bytes]]:
        return server_frames(b"".join(self.writes))

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(payload) for opcode, payload in self.frames() if opcode == TEXT]

    def jobs(self) -> list[tuple[str, Any]]:
        """(type, progress or final) of every job message received, welcome/pings left out."""
        found = []
        for message in self.messages():
            data = message["data"]
            if message["type"] == "progress":
                found.append(("progress", data["progress"]))
            elif message["type"] in ("complete", "error") and "operationId" in data:
                found.append((message["type"], data["operationId"]))
        return found

    def close_code(self) -> int | None:
        codes = [close_code(payload) for opcode, payload in self.frames() if opcode == CLOSE]
        return codes[0] if codes else None

    def pings(self) -> int:
        return sum(1 for opcode, _ in self.frames() if opcode == PING)


async def flushed() -> None:
    """Let the hub flush what was sent (it writes in the next turns of the loop)."""
    for _ in range(5):
        await asyncio.sleep(0)


def connect(hub: Hub, reading: bool = True, owner: str | None = LOCAL) -> tuple[WsProtocol, FakeTransport]:
    transport = FakeTransport(reading)
    client = hub.attach(transport, owner=owner)
    transport.protocol = client
    return client, transport


def send(client: WsProtocol, message: Any) -> None:
    payload = message if isinstance(message, bytes) else json.dumps(message).encode()
    client.data_received(client_frame(TEXT, payload))


def progress(op: str, value: float) -> dict[str, object]:
    """A trim's ``progress`` data."""
    return {"operationId": op, "operation": "trim", "progress": value}


def done(op: str) -> dict[str, object]:
    """A ``complete``'s data."""
    return {"operationId": op, "result": {"filename": f"{op}.mp4", "url": f"/videos/{op}.mp4"}}
