"""Autobahn|Testsuite section 7 over a real socket: the closing handshake.

A valid close is echoed (same code, same reason; an empty close with an empty close),
then the server ends the stream; a close that breaks RFC 6455 section 7.4 or 5.5 (one
byte of payload, an over-long payload, a code no endpoint may send) is answered 1002, a
reason that is not UTF-8 1007. What the peer sends after its close gets no answer.
"""

from __future__ import annotations

import struct

import pytest

from tests.ws.frames import CLOSE, CONTINUATION, PING, TEXT, client_frame
from tests.ws.raw_client import RawClient, client, json_ping, neighbour, no_errors_logged, ws_server  # noqa: F401

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROTOCOL_ERROR = 1002
INVALID_PAYLOAD = 1007

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
"""Below 1000, unassigned in 1000-2999, the local-only 1005/1006/1015, and above 4999."""


def close_frame(code: int | None, reason: bytes = b"") -> bytes:
    return client_frame(CLOSE, b"" if code is None else struct.pack("!H", code) + reason)


@pytest.mark.parametrize("chop", [None, 1], ids=["one-write", "byte-by-byte"])
async def test_7_1_1_close_is_echoed_then_the_stream_ends(client: RawClient, neighbour: RawClient,
                                                         chop: int | None) -> None:
    await client.send(close_frame(1000, b"bye"), chop)
    assert await client.closed() == (1000, b"bye")
    await neighbour.assert_alive()


async def test_7_3_1_empty_close_is_echoed_empty(client: RawClient) -> None:
    await client.send(close_frame(None))
    assert await client.closed() == (None, b"")


@pytest.mark.parametrize("after", [
    close_frame(1001), client_frame(PING, b"after"), client_frame(TEXT, b'{"type":"ping","data":"after"}'),
    client_frame(TEXT, b"\xff"), b"\x8f\xff garbage",
], ids=["second-close", "ping", "text", "invalid-utf8", "garbage"])
async def test_7_1_what_follows_a_close_is_ignored(client: RawClient, after: bytes) -> None:
    # closed() asserts nothing but the end of the stream follows the echoed close.
    await client.send(close_frame(1000) + after)
    assert await client.closed() == (1000, b"")


async def test_7_1_what_follows_a_close_in_a_later_write_is_ignored(client: RawClient) -> None:
    await client.send(close_frame(1000))
    await client.send(client_frame(PING, b"late") + client_frame(TEXT, b'{"type":"ping","data":"late"}'))
    assert await client.closed() == (1000, b"")


async def test_7_1_5_close_in_the_middle_of_a_fragmented_message(client: RawClient) -> None:
    await client.send(client_frame(TEXT, b'{"type":"ping",', fin=False) + close_frame(1000)
                      + client_frame(CONTINUATION, b'"data":1}'))
    assert await client.closed() == (1000, b"")


async def test_7_1_6_big_message_then_close_then_ping(client: RawClient, neighbour: RawClient) -> None:
    payload, data = json_ping(256 << 10)
    await client.send(client_frame(TEXT, payload) + close_frame(1000) + client_frame(PING, b"after"))
    await client.pong(data)  # sent before the close, so answered before it
    assert await client.closed() == (1000, b"")
    await neighbour.assert_alive()


async def test_7_3_2_close_with_one_byte_of_payload_is_a_protocol_error(client: RawClient) -> None:
    await client.send(client_frame(CLOSE, b"\x03"))
    assert await client.close_code() == PROTOCOL_ERROR


async def test_7_3_5_close_reason_of_123_bytes_is_echoed(client: RawClient) -> None:
    await client.send(close_frame(1000, b"r" * 123))
    assert await client.closed() == (1000, b"r" * 123)


async def test_7_3_6_close_payload_over_125_bytes_is_a_protocol_error(client: RawClient) -> None:
    await client.send(close_frame(1000, b"r" * 124))
    assert await client.close_code() == PROTOCOL_ERROR


@pytest.mark.parametrize("reason", [b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", b"\xff",
                                    b"\xe2\x82"], ids=["surrogate", "ff", "truncated"])
async def test_7_5_1_close_reason_not_utf8_closes_1007(client: RawClient, neighbour: RawClient,
                                                      reason: bytes) -> None:
    await client.send(close_frame(1000, reason))
    assert await client.close_code() == INVALID_PAYLOAD
    await neighbour.assert_alive()


@pytest.mark.parametrize("code", VALID_CODES)
async def test_7_7_valid_close_code_is_echoed(client: RawClient, code: int) -> None:
    await client.send(close_frame(code, b"reason"))
    assert await client.closed() == (code, b"reason")


@pytest.mark.parametrize("code", INVALID_CODES)
async def test_7_9_invalid_close_code_is_a_protocol_error(client: RawClient, neighbour: RawClient, code: int) -> None:
    await client.send(close_frame(code))
    assert await client.close_code() == PROTOCOL_ERROR
    await neighbour.assert_alive()


async def test_7_peer_that_ends_the_stream_without_closing_is_let_go(client: RawClient, neighbour: RawClient) -> None:
    # No close frame at all: the client's half-close ends it (1006, no close frame to send);
    # the fixture checks the server then lets go of the client.
    client.writer.write_eof()
    assert await client.reader.read() == b""
    await neighbour.assert_alive()
