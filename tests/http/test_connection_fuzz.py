"""Property-based fuzzing of the sans-I/O HTTP connection: whatever bytes arrive, in
whatever pieces, it answers with events (never an exception) and buffers a bounded amount."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.http.connection import (
    NEED_DATA,
    PAUSED,
    BadRequest,
    BodyChunk,
    Closed,
    EndOfRequest,
    HTTPConnection,
    RequestHead,
)

LIMIT = 4096

# Pieces of well-formed requests mixed with noise, so the fuzzer reaches deep states
# (bodies, chunked framing, pipelining) and not only "bad request line".
FRAGMENTS = st.sampled_from([
    b"GET / HTTP/1.1\r\n", b"POST /api/projects HTTP/1.1\r\n", b"HEAD /x HTTP/1.0\r\n", b"Host: a\r\n",
    b"Content-Length: 5\r\n", b"Content-Length: 0\r\n", b"Transfer-Encoding: chunked\r\n",
    b"Expect: 100-continue\r\n", b"Connection: close\r\n", b"Upgrade: websocket\r\n", b"\r\n",
    b"5\r\nhello\r\n", b"0\r\n\r\n", b"hello", b"\x00\xff", b" ", b":", b"\n",
])
STREAMS = st.lists(st.one_of(FRAGMENTS, st.binary(max_size=64)), max_size=40)


def drive(pieces: list[bytes], cuts: list[int]) -> None:
    """Feed ``pieces`` re-split at ``cuts``, answering each request the way the protocol does."""
    conn = HTTPConnection(max_header_bytes=LIMIT)
    data = b"".join(pieces)
    chunks, start = [], 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        chunks.append(data[start:cut])
        start = cut
    chunks.append(data[start:])
    in_request = False
    for chunk in [*chunks, b""]:
        conn.receive_data(chunk)
        while True:
            event = conn.next_event()
            assert event in (NEED_DATA, PAUSED) or isinstance(
                event, (RequestHead, BodyChunk, EndOfRequest, Closed, BadRequest))
            if isinstance(event, BadRequest):
                assert event.status in (400, 431, 501, 505) and event.response.startswith(b"HTTP/1.1 ")
                return
            if isinstance(event, Closed):
                return
            if isinstance(event, RequestHead):
                in_request = True
                if not event.has_body:
                    event = EndOfRequest()
            if isinstance(event, EndOfRequest) or event is PAUSED:
                if in_request:
                    out = conn.send_response(200, [("content-type", "text/plain")], b"ok")
                    assert out.startswith(b"HTTP/1.1 200 ")
                    if not conn.keep_alive:
                        return
                    conn.start_next_cycle()
                    in_request = False
                    continue
            if event is NEED_DATA or event is PAUSED:
                break


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STREAMS, st.lists(st.integers(min_value=0, max_value=10_000), max_size=8))
def test_any_bytes_in_any_pieces_give_events_not_exceptions(pieces, cuts):
    drive(pieces, cuts)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=LIMIT + 1, max_value=8 * LIMIT), st.integers(min_value=1, max_value=512))
def test_an_endless_header_is_refused_at_the_limit(size, piece):
    conn = HTTPConnection(max_header_bytes=LIMIT)
    data = b"GET / HTTP/1.1\r\nX: " + b"a" * size
    for start in range(0, len(data), piece):
        conn.receive_data(data[start:start + piece])
        event = conn.next_event()
        if isinstance(event, BadRequest):
            assert event.status == 431
            # Refused once the buffer passed the limit: memory stays bounded by it.
            assert start <= LIMIT + piece
            return
        assert event is NEED_DATA
    raise AssertionError("an unterminated header block over the limit was never refused")
