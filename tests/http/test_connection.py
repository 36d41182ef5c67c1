"""The sans-I/O HTTP connection, fed bytes directly: no sockets, no event loop."""

from __future__ import annotations

import pytest

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

GET = b"GET /api/projects/1 HTTP/1.1\r\nHost: x\r\n\r\n"


def events(conn: HTTPConnection) -> list[object]:
    """Drain events until the connection needs data or pauses."""
    out: list[object] = []
    while True:
        event = conn.next_event()
        out.append(event)
        if event in (NEED_DATA, PAUSED) or isinstance(event, (Closed, BadRequest)):
            return out


def respond(conn: HTTPConnection, body: bytes = b"ok", status: int = 200) -> bytes:
    return conn.send_response(status, [("content-type", "text/plain")], body)


def test_a_request_in_one_burst():
    conn = HTTPConnection()
    conn.receive_data(GET)
    head, need = events(conn)
    assert isinstance(head, RequestHead)
    assert (head.method, head.target, head.http_version) == ("GET", b"/api/projects/1", "1.1")
    assert (b"host", b"x") in head.headers
    assert head.has_body is False and head.content_length == 0
    assert need is NEED_DATA  # complete at its head: no EndOfRequest follows a bodiless request


def test_a_request_fed_one_byte_at_a_time():
    conn = HTTPConnection()
    seen: list[object] = []
    for byte in GET:
        conn.receive_data(bytes([byte]))
        seen.extend(e for e in events(conn) if e is not NEED_DATA)
    assert [type(e) for e in seen] == [RequestHead]


def test_partial_headers_wait_for_more():
    conn = HTTPConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert events(conn) == [NEED_DATA]
    conn.receive_data(b"\r\n")
    assert isinstance(events(conn)[0], RequestHead)


def test_pipelined_requests_come_one_cycle_at_a_time():
    conn = HTTPConnection()
    conn.receive_data(GET + b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
    first = events(conn)
    assert isinstance(first[0], RequestHead) and first[-1] is PAUSED
    out = respond(conn, b"one")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"one")
    assert conn.keep_alive
    conn.start_next_cycle()
    second = events(conn)
    assert isinstance(second[0], RequestHead) and second[0].target == b"/second"


def test_content_length_body_in_pieces():
    conn = HTTPConnection()
    conn.receive_data(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
    head, chunk, need = events(conn)
    assert head.content_length == 10 and head.has_body
    assert chunk == BodyChunk(b"hello") and need is NEED_DATA
    conn.receive_data(b"world")
    assert events(conn)[:2] == [BodyChunk(b"world"), EndOfRequest()]


def test_chunked_body():
    conn = HTTPConnection()
    conn.receive_data(b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    got = events(conn)
    head = got[0]
    assert head.content_length is None and head.has_body
    assert b"".join(e.data for e in got if isinstance(e, BodyChunk)) == b"hello world"
    assert EndOfRequest() in got


def test_oversized_header_block_is_431():
    conn = HTTPConnection(max_header_bytes=1024)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000)
    bad = events(conn)[-1]
    assert isinstance(bad, BadRequest) and bad.status == 431
    assert bad.response.startswith(b"HTTP/1.1 431 ")
    assert b"connection: close" in bad.response and b'{"error":' in bad.response


def test_oversized_header_block_arriving_whole_is_431():
    conn = HTTPConnection(max_header_bytes=1024)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
    bad = events(conn)[-1]
    assert isinstance(bad, BadRequest) and bad.status == 431


@pytest.mark.parametrize("line", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1 extra\r\n\r\n",
    b"GET / HTTP/1.1\r\nNo-Colon-Here\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
])
def test_malformed_requests_are_400(line: bytes):
    conn = HTTPConnection()
    conn.receive_data(line)
    bad = events(conn)[-1]
    assert isinstance(bad, BadRequest) and bad.status == 400
    assert bad.response.startswith(b"HTTP/1.1 400 ")


def test_unknown_transfer_coding_is_501():
    conn = HTTPConnection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
    bad = events(conn)[-1]
    assert isinstance(bad, BadRequest) and bad.status == 501


def test_connection_close_ends_keep_alive():
    conn = HTTPConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    events(conn)
    out = respond(conn)
    assert b"connection: close" in out.lower()
    assert not conn.keep_alive


def test_http10_is_not_kept_alive():
    conn = HTTPConnection()
    conn.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    assert isinstance(events(conn)[0], RequestHead)
    respond(conn)
    assert not conn.keep_alive


def test_head_sends_headers_but_no_body():
    conn = HTTPConnection()
    conn.receive_data(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    events(conn)
    out = respond(conn, b"0123456789")
    assert b"content-length: 10" in out and not out.endswith(b"0123456789")
    assert conn.keep_alive


def test_100_continue_only_while_the_client_waits():
    conn = HTTPConnection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    events(conn)
    assert conn.waiting_for_continue
    assert conn.send_continue().startswith(b"HTTP/1.1 100 ")
    assert conn.send_continue() == b""
    conn.receive_data(b"ok")
    assert BodyChunk(b"ok") in events(conn)


def test_answering_without_reading_the_body_closes_the_connection():
    conn = HTTPConnection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")
    events(conn)
    out = respond(conn, b"too big", 413)
    assert b"connection: close" in out
    assert not conn.keep_alive


def test_upgrade_returns_bytes_read_past_the_handshake():
    conn = HTTPConnection()
    conn.receive_data(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                      b"\x81\x85early")
    head = events(conn)[0]
    assert head.upgrade == b"websocket"
    data, leftover = conn.send_switch([("upgrade", "websocket"), ("connection", "Upgrade")])
    assert data.startswith(b"HTTP/1.1 101 ")
    assert leftover == b"\x81\x85early"


def test_end_of_stream_while_idle_is_closed():
    conn = HTTPConnection()
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), Closed)


def test_end_of_stream_mid_headers_is_a_bad_request():
    conn = HTTPConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHo")
    conn.receive_data(b"")
    assert isinstance(events(conn)[-1], BadRequest)


def test_transfer_encoding_with_content_length_is_a_bad_request():
    conn = HTTPConnection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"4\r\nabcd\r\n0\r\n\r\n" + GET)
    (bad,) = events(conn)
    assert isinstance(bad, BadRequest) and bad.status == 400
    assert b"connection: close\r\n" in bad.response


@pytest.mark.parametrize(("target", "path", "host"), [
    (b"http://h:81/a/b?c=d", b"/a/b?c=d", b"h:81"),
    (b"HTTPS://H", b"/", b"H"),
    (b"http://h?q", b"/?q", b"h"),
])
def test_absolute_form_becomes_origin_form_and_its_authority_the_host(target, path, host):
    conn = HTTPConnection()
    conn.receive_data(b"GET %s HTTP/1.1\r\nHost: other\r\nAccept: */*\r\n\r\n" % target)
    head = events(conn)[0]
    assert isinstance(head, RequestHead) and head.target == path
    assert [value for name, value in head.headers if name == b"host"] == [host]


@pytest.mark.parametrize("request_line", [b"GET * HTTP/1.1", b"GET a/b HTTP/1.1", b"GET ftp://h/ HTTP/1.1",
                                          b"GET http://u@h/ HTTP/1.1", b"GET http:///a HTTP/1.1"])
def test_targets_of_no_valid_form_are_bad_requests(request_line):
    conn = HTTPConnection()
    conn.receive_data(request_line + b"\r\nHost: x\r\n\r\n")
    (bad,) = events(conn)
    assert isinstance(bad, BadRequest) and bad.status == 400


def test_asterisk_form_is_kept_for_options():
    conn = HTTPConnection()
    conn.receive_data(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
    head = events(conn)[0]
    assert isinstance(head, RequestHead) and head.target == b"*"
