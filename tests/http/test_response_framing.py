"""The connection's own response serializer, held to h11's.

:class:`HTTPConnection` writes response heads itself rather than through h11's sending
side (server/http/connection.py says why). These tests answer the same requests both ways
and require the same status line, headers, body bytes and keep-alive decision, across
the cases where HTTP/1.1 framing has rules: HEAD, 204 and 304, HTTP/1.0 clients,
``Connection: close`` from either side, known and unknown lengths, a request body left
unread. Then the checks h11 made on what is sent, which the serializer keeps.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from http import HTTPStatus

import h11
import pytest

from server.http.connection import NEED_DATA, PAUSED, BodyChunk, EndOfRequest, HTTPConnection, RequestHead

REQUESTS = {
    "GET 1.1": b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n",
    "GET 1.1 close": b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: Close\r\n\r\n",
    "GET 1.1 keep-alive": b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\n\r\n",
    "HEAD 1.1": b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n",
    "HEAD 1.0": b"HEAD /x HTTP/1.0\r\n\r\n",
    "GET 1.0": b"GET /x HTTP/1.0\r\n\r\n",
    "GET 1.0 keep-alive": b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "POST read": b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    "POST chunked read": b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "POST unread": b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\nhel",
}


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    chunks: tuple[bytes, ...]
    length: int | None
    """The declared length; None streams a body of unknown length."""
    whole: bool = False
    """Sent as one response (``send_response``) rather than head, chunks, end."""


JSON = (("content-type", "application/json"),)
ANSWERS = {
    "200 whole": Answer(200, JSON, (b'{"a":1}',), 7, whole=True),
    "201 whole, empty": Answer(201, JSON, (), 0, whole=True),
    "404 whole": Answer(404, JSON, (b'{"error":"no"}',), 14, whole=True),
    "204": Answer(204, (), (), 0, whole=True),
    "304 with etag": Answer(304, (("etag", '"v1"'),), (), 0, whole=True),
    "304 stream, unknown length": Answer(304, (("etag", '"v1"'),), (), None),
    "200 stream, known length": Answer(200, (("content-type", "video/mp4"),), (b"abc", b"", b"defg"), 7),
    "200 stream, unknown length": Answer(200, (("content-type", "text/plain"),), (b"abc", b"", b"defg"), None),
    "206 stream, unknown length, nothing": Answer(206, (), (), None),
    "413 handler says close": Answer(413, (*JSON, ("connection", "close")), (b"{}",), 2, whole=True),
    "426 connection upgrade": Answer(426, (("upgrade", "websocket"), ("connection", "Upgrade")), (b"{}",), 2,
                                     whole=True),
}


def read_request(conn: HTTPConnection | h11.Connection, data: bytes) -> bool:
    """Feed ``data`` and drain the request; whether the body was read to its end."""
    conn.receive_data(data)
    done = False
    while True:
        event = conn.next_event()
        if event in (NEED_DATA, PAUSED):
            return done
        if isinstance(event, RequestHead):
            done = not event.has_body
        done = done or isinstance(event, (EndOfRequest, h11.EndOfMessage))
        assert isinstance(event, (RequestHead, BodyChunk, EndOfRequest, h11.Request, h11.Data, h11.EndOfMessage))


def ours(request: bytes, answer: Answer) -> tuple[bytes, bool]:
    conn = HTTPConnection()
    read_request(conn, request)
    if answer.whole:
        out = conn.send_response(answer.status, answer.headers, b"".join(answer.chunks))
    else:
        out = conn.send_head(answer.status, answer.headers, answer.length)
        out += b"".join(conn.send_body(chunk) for chunk in answer.chunks) + conn.send_end()
    return out, conn.keep_alive


def h11s(request: bytes, answer: Answer) -> tuple[bytes, bool]:
    """What h11 sends for the same answer, given as the server used to give it: the reason
    phrase, the length as a header, no body bytes for HEAD, and ``connection: close`` if the
    body is unread."""
    conn = h11.Connection(h11.SERVER)
    body_read = read_request(conn, request)
    headers = [(name.encode(), value.encode()) for name, value in answer.headers]
    if answer.length is not None:
        headers.append((b"content-length", b"%d" % answer.length))
    if not body_read:
        headers.append((b"connection", b"close"))
    reason = HTTPStatus(answer.status).phrase.encode()
    out = conn.send(h11.Response(status_code=answer.status, headers=headers, reason=reason))
    if not request.startswith(b"HEAD"):
        out += b"".join(conn.send(h11.Data(data=chunk)) for chunk in answer.chunks if chunk)
    out += conn.send(h11.EndOfMessage())
    return out, conn.our_state is h11.DONE and conn.their_state is h11.DONE


def normalized(response: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], set[bytes], bytes]:
    """Status line, headers (names lower-cased, sorted) but Connection, Connection's tokens, body.

    Connection is compared as one set of tokens: ``connection: close, upgrade`` says what
    ``connection: close`` and ``connection: upgrade`` say (RFC 9110 section 5.3).
    """
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers: list[tuple[bytes, bytes]] = []
    connection: set[bytes] = set()
    for line in lines:
        name, _, value = line.partition(b":")
        name, value = name.lower(), value.strip()
        if name == b"connection":
            connection |= {token.strip().lower() for token in value.split(b",")}
        else:
            headers.append((name, value))
    return status, sorted(headers), connection, body


@pytest.mark.parametrize(("request_name", "answer_name"), list(itertools.product(REQUESTS, ANSWERS)))
def test_the_serializer_frames_every_response_as_h11_does(request_name: str, answer_name: str):
    request, answer = REQUESTS[request_name], ANSWERS[answer_name]
    mine, mine_keep_alive = ours(request, answer)
    theirs, theirs_keep_alive = h11s(request, answer)
    assert normalized(mine) == normalized(theirs)
    assert mine_keep_alive == theirs_keep_alive


def test_keep_alive_carries_pipelined_bytes_into_the_next_cycle():
    conn = HTTPConnection()
    conn.receive_data(REQUESTS["GET 1.1"] + b"GET /second HTTP/1.1\r\nHo")
    assert isinstance(conn.next_event(), RequestHead)
    assert conn.next_event() is PAUSED
    conn.send_response(200, [], b"one")
    conn.start_next_cycle()
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"st: t\r\n\r\n")
    second = conn.next_event()
    assert isinstance(second, RequestHead) and second.target == b"/second"


def test_a_connection_that_may_not_go_on_refuses_another_cycle():
    conn = HTTPConnection()
    read_request(conn, REQUESTS["GET 1.1 close"])
    conn.send_response(200, [], b"")
    with pytest.raises(h11.LocalProtocolError):
        conn.start_next_cycle()


@pytest.mark.parametrize("value", ["a\r\nset-cookie: x=1", "a\nb", "a\rb", "a\0b"])
def test_a_header_value_cannot_split_the_response(value: str):
    conn = HTTPConnection()
    read_request(conn, REQUESTS["GET 1.1"])
    with pytest.raises(h11.LocalProtocolError):
        conn.send_response(200, [("x-next-cursor", value)], b"")
    with pytest.raises(h11.LocalProtocolError):
        conn.send_response(200, [(f"x-{value}", "1")], b"")


def test_a_declared_length_must_be_met_exactly():
    too_much = HTTPConnection()
    read_request(too_much, REQUESTS["GET 1.1"])
    too_much.send_head(200, [], 3)
    with pytest.raises(h11.LocalProtocolError):
        too_much.send_body(b"four")
    too_little = HTTPConnection()
    read_request(too_little, REQUESTS["GET 1.1"])
    too_little.send_head(200, [], 3)
    too_little.send_body(b"ab")
    with pytest.raises(h11.LocalProtocolError):
        too_little.send_end()


def test_one_response_per_request():
    conn = HTTPConnection()
    read_request(conn, REQUESTS["GET 1.1"])
    conn.send_response(200, [], b"")
    with pytest.raises(h11.LocalProtocolError):
        conn.send_response(200, [], b"")
    with pytest.raises(h11.LocalProtocolError):
        conn.send_body(b"late")


def test_no_100_continue_once_the_answer_has_started():
    conn = HTTPConnection()
    read_request(conn, b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert conn.waiting_for_continue
    out = conn.send_response(413, [], b"")
    assert b"connection: close" in out
    assert not conn.waiting_for_continue and conn.send_continue() == b""
