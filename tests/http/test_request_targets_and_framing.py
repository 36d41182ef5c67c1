"""Over real sockets: ambiguous framing is refused and closed, every request-target form is understood."""

from __future__ import annotations

import re

import httpx

from tests.test_server_behaviour import raw_exchange

PROJECT = b'{"name":"s","videoFilename":"a.mp4","videoUrl":"/videos/a.mp4"}'


def statuses(out: bytes) -> list[bytes]:
    return re.findall(rb"HTTP/1\.1 (\d{3}) ", out)


async def test_transfer_encoding_with_content_length_is_refused_and_the_connection_closed(server):
    # A proxy that frames by Content-Length sees one request; framing by the chunked body
    # would run the DELETE after it as a second, smuggled one.
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(PROJECT), PROJECT)
    smuggled = b"DELETE /api/projects/999999 HTTP/1.1\r\nHost: localhost\r\n\r\n"
    out = await raw_exchange(server.port, b"POST /api/projects HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n"
                             b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
                             + chunked + smuggled)
    assert statuses(out) == [b"400"]  # the second request is never answered
    assert b"connection: close" in out
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        assert (await client.get("/api/projects")).json() == []  # nor was the first one run


async def test_absolute_form_target_is_routed_by_its_path(server):
    out = await raw_exchange(server.port, b"GET http://127.0.0.1:%d/healthz?x=1 HTTP/1.1\r\nHost: t\r\n\r\n"
                             b"GET HTTP://LOCALHOST/api/projects HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                             % server.port)
    assert statuses(out) == [b"200", b"200"]


async def test_absolute_form_authority_replaces_host(server):
    # The same-origin check compares Origin with the request's host: the target's, not Host's.
    origin = b"http://127.0.0.1:%d" % server.port
    request = (b"POST %s/api/projects HTTP/1.1\r\nHost: %s\r\nOrigin: " + origin + b"\r\nConnection: close\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" + PROJECT)
    same = await raw_exchange(server.port, request % (origin, b"elsewhere.example", len(PROJECT)))
    assert statuses(same) == [b"201"]
    other = await raw_exchange(server.port, request % (b"http://elsewhere.example", origin[7:], len(PROJECT)))
    assert statuses(other) == [b"403"]


async def test_asterisk_and_malformed_targets(server):
    # OPTIONS * is a request like any other (no route: 404) and the connection goes on;
    # "*" for another method, or a target of no form at all, is a 400 and a close.
    out = await raw_exchange(server.port, b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n"
                             b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert statuses(out) == [b"404", b"200"] and out.count(b'{"error":') == 1
    for target in (b"*", b"healthz", b"ftp://t/healthz", b"http://user@t/healthz", b"http:///healthz"):
        out = await raw_exchange(server.port, b"GET %s HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\n"
                                 b"Host: t\r\n\r\n" % target)
        assert statuses(out) == [b"400"], target
