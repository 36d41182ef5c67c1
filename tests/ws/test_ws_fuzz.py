"""Property-based fuzzing of the WebSocket layer: the sans-I/O :class:`WsConnection` and the
per-client :class:`WsProtocol` (on a real hub, over a fake transport).

Streams mix valid frames, every way of breaking RFC 6455 and plain noise, and arrive cut
at arbitrary points. Whatever comes, no exception escapes and nothing is logged as an
error; every outcome is an event, an answer or one close with a defined code (never
1011, the code of an internal error); what is held for an unfinished message stays
within the configured limit plus one frame header (plus one control frame's payload,
which wsproto waits to have whole); the answers do not depend on how the stream was cut;
and a stream of valid frames gets exactly the answers the contract gives, in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.ws.connection import BinaryReceived, Closed, PingReceived, PongReceived, TextReceived, WsConnection
from server.ws.hub import Hub
from server.ws.settings import WsSettings
from tests.ws.fakes import FakeTransport, connect
from tests.ws.frames import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, client_frame, server_frames

MAX_BYTES = 1024
MAX_FRAGMENTS = 8
CLIENT_HEADER = 14
"""The longest header of a client frame: 2 bytes, a 64-bit length and the 4-byte mask."""
CONTROL_PAYLOAD = 125
SLOW_BUDGET = 1024
SLOW_HARD_CAP = 4096
"""A client's budget and hard cap here: small, so a peer that reads nothing passes them."""

PEER_CODES = [1000, 1001, 1003, 1008, 1010, 3000, 4000, 4999]
"""Close codes the fuzzed peer sends; 1011 is left out, so 1011 can only mean an internal error."""
SERVER_CODES = {1002, 1005, 1006, 1007, 1009}
"""Protocol error, empty close (echoed empty), end of stream, not UTF-8, over a limit."""

FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- strategies -----------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
TEXT_PAYLOADS = st.one_of(
    JSON_VALUES.map(lambda data: json.dumps({"type": "ping", "data": data}).encode()),
    st.sampled_from([b'{"type":"dance"}', b"[1,2]", b"not json", b"", "κόσμε".encode(), b"\xff\xfe", b"ok\xe2\x82"]),
    st.integers(0, 2 * MAX_BYTES).map(lambda n: b"a" * n),
)
CLOSE_PAYLOADS = st.one_of(
    st.builds(lambda code, reason: struct.pack("!H", code) + reason.encode(), st.sampled_from(PEER_CODES),
              st.text(max_size=20)),
    st.sampled_from([b"", b"\x03", struct.pack("!H", 1005), struct.pack("!H", 999), struct.pack("!H", 5000),
                     struct.pack("!H", 1000) + b"\xff"]),
)
DEFECTS = ["opcode", "rsv", "unmasked", "non-minimal-length", "fragmented-control", "oversized-control"]


@st.composite
def frames(draw: st.DrawFn, broken: bool = False) -> bytes:
    """One well-formed frame of a random kind, or (``broken``) one with one RFC 6455 defect."""
    opcode = draw(st.sampled_from([TEXT, TEXT, TEXT, BINARY, CONTINUATION, PING, PONG, CLOSE]))
    if opcode in (TEXT, CONTINUATION):
        payload = draw(TEXT_PAYLOADS)
    elif opcode == CLOSE:
        payload = draw(CLOSE_PAYLOADS)
    else:
        payload = draw(st.binary(max_size=CONTROL_PAYLOAD))
    fin = opcode >= CLOSE or draw(st.integers(0, 4).map(bool))  # data frames: sometimes a first fragment
    if not broken:
        return client_frame(opcode, payload, fin)
    defect = draw(st.sampled_from(DEFECTS))
    if defect == "opcode":
        return client_frame(draw(st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15])), payload, fin)
    if defect == "rsv":
        return client_frame(opcode, payload, fin, rsv=draw(st.integers(1, 7)))
    if defect == "unmasked":
        return client_frame(opcode, payload, fin, masked=False)
    if defect == "non-minimal-length":
        return client_frame(opcode, payload, fin, length_bytes=draw(st.sampled_from([2, 8])))
    if defect == "fragmented-control":
        return client_frame(draw(st.sampled_from([PING, PONG, CLOSE])), payload[:CONTROL_PAYLOAD], fin=False)
    return client_frame(draw(st.sampled_from([PING, PONG, CLOSE])), payload.ljust(CONTROL_PAYLOAD + 1, b"x"))


@st.composite
def fragmented_text(draw: st.DrawFn) -> bytes:
    """A whole text message cut into fragments at any bytes (characters too), pings between."""
    payload = draw(TEXT_PAYLOADS)
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=MAX_FRAGMENTS + 2)))
    pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)])]
    out = b""
    for i, piece in enumerate(pieces):
        out += client_frame(TEXT if i == 0 else CONTINUATION, piece, fin=i == len(pieces) - 1)
        if i < len(pieces) - 1 and draw(st.booleans()):
            out += client_frame(PING, draw(st.binary(max_size=8)))
    return out


PIECES = st.sampled_from([frames()] * 5 + [fragmented_text()] * 3 + [frames(broken=True), st.binary(max_size=40)])
STREAMS = st.lists(PIECES.flatmap(lambda piece: piece), max_size=25)
"""Mostly valid frames and fragmented messages, so the fuzzer gets deep into a connection;
now and then a broken frame or noise."""
CUTS = st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=12)


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at ``cuts`` (taken modulo its length), empty pieces included."""
    points = sorted(c % (len(data) + 1) for c in cuts)
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def close_code_of(frame_payload: bytes) -> int:
    return struct.unpack("!H", frame_payload[:2])[0] if frame_payload else 1005


# -- WsConnection ---------------------------------------------------------------------------

def unparsed(conn: WsConnection) -> int:
    """Bytes fed to wsproto that no event has consumed yet (white-box: its frame buffer)."""
    return len(conn._ws._proto._frame_decoder.buffer)  # noqa: SLF001


@FUZZ
@given(STREAMS, CUTS, st.booleans())
def test_connection_turns_any_stream_into_events_and_one_defined_close(pieces: list[bytes], cuts: list[int],
                                                                       eof: bool) -> None:
    conn = WsConnection(MAX_BYTES, MAX_FRAGMENTS)
    closed: Closed | None = None
    chunks: list[bytes | None] = [*cut(b"".join(pieces), cuts), *([None] if eof else [])]
    for chunk in chunks:
        events = conn.receive(chunk)
        if closed is not None:
            assert events == [] and conn.data_to_send() == b""
            continue
        for event in events:
            assert closed is None, f"{event} after {closed}"
            if isinstance(event, Closed):
                closed = event
            elif isinstance(event, PingReceived):
                [(opcode, payload)] = server_frames(event.pong)
                assert opcode == PONG and len(payload) <= CONTROL_PAYLOAD
            elif isinstance(event, TextReceived):
                assert len(event.text.encode()) <= MAX_BYTES
            else:
                assert isinstance(event, (BinaryReceived, PongReceived))
        written = conn.data_to_send()
        if closed is None:
            assert written == b"" and not conn.closed
            # Bounded: the message so far within the limit, and wsproto holding at most a
            # header and a control frame's payload it waits to have whole.
            assert conn.pending_bytes <= MAX_BYTES
            assert unparsed(conn) < CLIENT_HEADER + CONTROL_PAYLOAD
            continue
        assert conn.closed and closed.code != 1011, closed
        assert closed.code in SERVER_CODES or closed.code in PEER_CODES, closed
        if closed.code == 1006:  # the stream ended: nobody to write to
            assert written == b""
        else:
            [(opcode, payload)] = server_frames(written)
            assert opcode == CLOSE and close_code_of(payload) == closed.code


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(1, 7), st.integers(MAX_BYTES + 1, 4 * MAX_BYTES))
def test_an_oversized_message_is_refused_before_it_is_held(step: int, size: int) -> None:
    conn = WsConnection(MAX_BYTES, MAX_FRAGMENTS)
    data = client_frame(TEXT, "é".encode() * (size // 2 + 1), fin=False)  # 2 bytes a character
    for start in range(0, len(data), step):  # trickled in, a few bytes per read
        events = conn.receive(data[start:start + step])
        if events:
            assert events == [Closed(1009, f"message larger than {MAX_BYTES} bytes")]
            assert start <= CLIENT_HEADER + MAX_BYTES  # refused once the limit was passed
            return
        assert conn.pending_bytes <= MAX_BYTES
    raise AssertionError("a message over the limit was never refused")


@pytest.mark.parametrize("step", [2, 7])
def test_a_message_trickled_in_tiny_reads_is_held_at_about_its_size(step: int) -> None:
    # wsproto hands each read's piece over as its own str; kept as such, a message that
    # comes 2 bytes a read would take some 30 times its size (an object per piece).
    size = 32 << 10
    data = client_frame(TEXT, "aé".encode() * (size // 3))
    conn = WsConnection(max_message_bytes=size)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for start in range(0, len(data) - step, step):
            assert conn.receive(data[start:start + step]) == []
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert conn.pending_bytes > size // 2 and held < 2 * size, held


# -- WsProtocol -----------------------------------------------------------------------------

@contextmanager
def errors_logged() -> Iterator[list[logging.LogRecord]]:
    """Collect every record of level ERROR or above logged inside the block."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield records
    finally:
        root.removeHandler(handler)


def run_protocol(chunks: list[bytes], eof: bool, reading: bool = True) -> FakeTransport:
    """Feed ``chunks`` (then the end of stream if ``eof``) to one client of a fresh hub.

    ``reading=False``: the peer reads nothing, so the client goes over its budget (and
    past its hard cap) as its answers pile up.
    """

    async def run() -> FakeTransport:
        hub = Hub(WsSettings(max_message_bytes=MAX_BYTES, max_fragments=MAX_FRAGMENTS,
                             client_budget_bytes=SLOW_BUDGET, client_hard_cap_bytes=SLOW_HARD_CAP))
        client, transport = connect(hub, reading)
        for chunk in chunks:
            client.data_received(chunk)
            await asyncio.sleep(0)  # the hub flushes between reads, as it would on a socket
            assert client._backlog.nbytes <= SLOW_HARD_CAP  # noqa: SLF001
        if eof:
            client.eof_received()
        for _ in range(3):
            await asyncio.sleep(0)
        return transport

    with errors_logged() as errors, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        transport = runner.run(run())
    assert not errors, [record.getMessage() for record in errors]
    return transport


def assert_well_formed(out: list[tuple[int, Any]], codes: set[int]) -> None:
    """Answers are pongs or JSON pongs/errors, and at most one close, the last frame, with one of ``codes``."""
    for opcode, value in out:
        assert opcode in (TEXT, PONG, CLOSE), opcode
        if opcode == TEXT:
            assert value["type"] in ("pong", "error"), value
    closes = [value for opcode, value in out if opcode == CLOSE]
    assert len(closes) <= 1 and (not closes or out[-1][0] == CLOSE), "a close must be the last frame"
    assert all(code in codes for code in closes), closes


def answers(transport: FakeTransport) -> list[tuple[int, Any]]:
    """What the server wrote after its welcome: JSON for text frames, a close's code only."""
    written = transport.frames()
    assert written[0][0] == TEXT and json.loads(written[0][1])["type"] == "ping"  # the welcome
    out: list[tuple[int, Any]] = []
    for opcode, payload in written[1:]:
        if opcode == TEXT:
            out.append((TEXT, json.loads(payload)))
        elif opcode == CLOSE:
            out.append((CLOSE, close_code_of(payload)))
        else:
            out.append((opcode, payload))
    return out


@FUZZ
@given(STREAMS, CUTS, st.booleans())
def test_protocol_answers_any_stream_the_same_however_it_is_cut(pieces: list[bytes], cuts: list[int],
                                                                 eof: bool) -> None:
    data = b"".join(pieces)
    whole = answers(run_protocol([data], eof))
    chopped = answers(run_protocol(cut(data, cuts), eof))
    assert_well_formed(whole, SERVER_CODES | set(PEER_CODES))
    assert_well_formed(chopped, SERVER_CODES | set(PEER_CODES))

    def verdict(out: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
        # A message both over the limit and not UTF-8 is refused for whichever is seen
        # first, and that depends on the cuts: 1007 and 1009 are one verdict here.
        return [(opcode, "refused" if opcode == CLOSE and value in (1007, 1009) else value)
                for opcode, value in out]

    assert verdict(chopped) == verdict(whole)


@FUZZ
@given(STREAMS, CUTS)
def test_protocol_with_a_peer_that_reads_nothing_stays_within_its_hard_cap(pieces: list[bytes],
                                                                           cuts: list[int]) -> None:
    # Many answers per read (JSON pings from fragmented_text and frames()), none of them read:
    # past the hard cap the client is closed 1013, once, and nothing is written after.
    pings = b"".join(client_frame(TEXT, b'{"type":"ping","data":"%s"}' % (b"x" * 200)) for _ in range(32))
    transport = run_protocol(cut(pings + b"".join(pieces), cuts), eof=False, reading=False)
    assert_well_formed(answers(transport), SERVER_CODES | set(PEER_CODES) | {1013})


@st.composite
def valid_conversations(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, Any]]]:
    """Valid frames only, and exactly the answers docs/CONTRACT.md section 3 gives to them, in order."""
    stream, expected = b"", []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["ping", "fragmented", "protocol-ping", "pong", "not-json", "binary"]))
        if kind in ("ping", "fragmented"):
            data = draw(JSON_VALUES)
            payload = json.dumps({"type": "ping", "data": data}).encode()
            parts = draw(st.integers(2, MAX_FRAGMENTS)) if kind == "fragmented" else 1
            step = -(-len(payload) // parts)
            for i in range(parts):
                stream += client_frame(TEXT if i == 0 else CONTINUATION, payload[i * step:(i + 1) * step],
                                       fin=i == parts - 1)
                if i < parts - 1:  # a ping between fragments is answered where it stands
                    stream += client_frame(PING, b"%d" % i)
                    expected.append((PONG, b"%d" % i))
            expected.append((TEXT, {"type": "pong", "data": data}))
        elif kind == "protocol-ping":
            payload = draw(st.binary(max_size=CONTROL_PAYLOAD))
            stream += client_frame(PING, payload)
            expected.append((PONG, payload))
        elif kind == "pong":
            stream += client_frame(PONG, draw(st.binary(max_size=CONTROL_PAYLOAD)))
        elif kind == "not-json":
            stream += client_frame(TEXT, b"{not json")
            expected.append((TEXT, {"type": "error", "data": {"error": "Message is not valid JSON"}}))
        else:
            stream += client_frame(BINARY, draw(st.binary(max_size=64)))
            expected.append((TEXT, {"type": "error",
                                    "data": {"error": "Binary messages are not supported: send JSON text"}}))
    if draw(st.booleans()):
        code = draw(st.sampled_from(PEER_CODES))
        stream += client_frame(CLOSE, struct.pack("!H", code)) + client_frame(PING, b"after the close")
        expected.append((CLOSE, code))
    return stream, expected


@FUZZ
@given(valid_conversations(), CUTS)
def test_protocol_answers_valid_frames_exactly_in_order(conversation: tuple[bytes, list[tuple[int, Any]]],
                                                        cuts: list[int]) -> None:
    stream, expected = conversation
    assert answers(run_protocol(cut(stream, cuts), eof=False)) == expected
