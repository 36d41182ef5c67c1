"""Autobahn|Testsuite sections 9 and 12/13 over a real socket: limits and permessage-deflate.

Section 9 (performance) becomes: bursts answered completely and in order, a message at
our 1 MiB limit served in one frame or in the most fragments allowed, and a message
over it refused with 1009 before the server buffers it, however large its frame claims
to be (and the 1009 read by a client still sending), and a client that sends but never
reads closed 1013 at its hard cap. Sections 12/13 (permessage-deflate) become: the extension is never agreed, so
broadcast frames are built once, uncompressed, for every client, and a client that
compresses anyway (RSV1) is closed 1002 without anything being inflated.
"""

from __future__ import annotations

import json
import struct
import zlib

import pytest
import websockets

from tests.ws.frames import BINARY, CLOSE, CONTINUATION, MASK, PING, PONG, TEXT, client_frame
from tests.ws.raw_client import (  # noqa: F401
    MAX_MESSAGE,
    RawClient,
    client,
    fragmented,
    json_ping,
    neighbour,
    no_errors_logged,
    ws_server,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-webkit-deflate-frame\r\n"


def deflated(payload: bytes) -> bytes:
    """``payload`` as permessage-deflate would send it (raw DEFLATE, the final 00 00 ff ff cut)."""
    compressor = zlib.compressobj(wbits=-15)
    return (compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


# -- 9 limits -------------------------------------------------------------------------------

@pytest.mark.parametrize("chop", [None, 1000], ids=["one-write", "chops-of-1000"])
async def test_9_burst_of_small_messages_is_answered_in_order(client: RawClient, neighbour: RawClient,
                                                              chop: int | None) -> None:
    count = 1000
    await client.send(b"".join(client_frame(TEXT, b'{"type":"ping","data":%d}' % i) for i in range(count)), chop)
    assert [(await client.message())["data"] for _ in range(count)] == list(range(count))
    await neighbour.assert_alive()


async def test_9_burst_of_mixed_frames_is_answered_in_order(client: RawClient) -> None:
    # JSON pings, protocol pings, unsolicited pongs and a fragmented message, 100 rounds.
    rounds = b""
    for i in range(100):
        rounds += (client_frame(PING, b"%d" % i) + client_frame(PONG, b"ignored")
                   + fragmented(TEXT, b'{"type":"ping","data":%d}' % i, 3))
    await client.send(rounds)
    for i in range(100):
        frame = await client.frame()
        assert (frame.opcode, frame.payload) == (PONG, b"%d" % i)
        await client.pong(i)


@pytest.mark.parametrize("fragments", [1, 128])
async def test_9_message_at_the_limit_is_answered(client: RawClient, neighbour: RawClient, fragments: int) -> None:
    payload, data = json_ping(MAX_MESSAGE)
    await client.send(fragmented(TEXT, payload, fragments), chop=65536)
    frame = await client.frame()
    assert frame.opcode == TEXT and len(frame.payload) == MAX_MESSAGE
    assert json.loads(frame.payload) == {"type": "pong", "data": data}
    await neighbour.assert_alive()


async def test_9_message_at_the_limit_in_multibyte_text_is_answered(client: RawClient) -> None:
    # The limit counts UTF-8 bytes, not characters: 2-byte characters up to the byte.
    payload, data = json_ping(MAX_MESSAGE - 1, "é")
    await client.send(fragmented(TEXT, payload, 16), chop=65536)
    await client.pong(data)


async def test_9_binary_message_at_the_limit_is_refused_with_an_error_message(client: RawClient) -> None:
    await client.send(client_frame(BINARY, b"\x00" * MAX_MESSAGE), chop=65536)
    assert await client.error() == "Binary messages are not supported: send JSON text"
    await client.assert_alive()


async def test_9_message_over_the_limit_closes_1009_before_it_ends(client: RawClient,
                                                                   neighbour: RawClient) -> None:
    # A first fragment just under the limit, then a continuation claiming 1 GiB of which only
    # 11 bytes ever come: the close must not wait for (or buffer) the announced payload.
    first = client_frame(TEXT, b"[" + b" " * (MAX_MESSAGE - 11), fin=False)
    head = struct.pack("!BBQ", 0x80 | CONTINUATION, 0x80 | 127, 1 << 30) + MASK
    masked_tail = client_frame(CONTINUATION, b"a" * 11)[2 + len(MASK):]  # same mask, same offsets
    await client.send(first + head + masked_tail, chop=65536)
    assert await client.closed() == (1009, b"message larger than 1048576 bytes")
    await neighbour.assert_alive()


async def test_9_client_still_sending_past_the_limit_reads_the_1009(client: RawClient) -> None:
    # The server refuses at 1 MiB while 4 MiB more are on their way. Closing a socket with
    # unread input makes the kernel answer RST, which would wipe out the close frame; the
    # server must instead read the rest (and drop it) until the client ends its stream.
    await client.send(client_frame(TEXT, b"a" * (MAX_MESSAGE + (4 << 20))), chop=65536)
    assert await client.closed() == (1009, b"message larger than 1048576 bytes")


async def test_9_client_that_sends_but_never_reads_is_closed_1013(client: RawClient,
                                                                 neighbour: RawClient) -> None:
    # 16 MiB of pings whose pongs nobody reads: past the 4 MiB hard cap the client is closed
    # 1013 while its own pings are being answered (no_errors_logged: without a crash).
    payload, data = json_ping(512 << 10)
    frame = client_frame(TEXT, payload)
    for _ in range(32):
        await client.send(frame)
    while (received := await client.frame()).opcode == TEXT:
        assert json.loads(received.payload) == {"type": "pong", "data": data}
    assert received.opcode == CLOSE and received.payload == struct.pack("!H", 1013) + b"slow consumer"
    assert await client.reader.read() == b""
    await neighbour.assert_alive()


# -- 12/13 permessage-deflate ---------------------------------------------------------------

async def test_12_deflate_offer_is_declined(ws_server, neighbour: RawClient) -> None:
    offering = await RawClient.connect(ws_server.port, DEFLATE_OFFER)
    try:
        assert offering.header("sec-websocket-extensions") is None
        await offering.assert_alive()  # plain frames, both ways
    finally:
        offering.abort()
    await neighbour.assert_alive()


async def test_12_library_client_offering_deflate_ends_up_without_it(ws_server) -> None:
    # websockets offers permessage-deflate by default and would inflate frames with RSV1.
    async with websockets.connect(f"ws://127.0.0.1:{ws_server.port}/ws") as ws:
        assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert ws.protocol.extensions == []
        assert json.loads(await ws.recv())["type"] == "ping"


async def test_12_broadcast_to_a_client_that_offered_deflate_is_not_compressed(ws_server) -> None:
    offering = await RawClient.connect(ws_server.port, DEFLATE_OFFER)
    try:
        message = "x" * 32768  # as compressible as it gets
        await ws_server.app.hub.publish("progress", {"operationId": "deflate-1", "operation": "process",
                                                     "progress": 50, "message": message})
        frame = await offering.frame()  # frame() asserts RSV1-3 are clear
        assert frame.opcode == TEXT and json.loads(frame.payload)["data"]["message"] == message
    finally:
        offering.abort()


@pytest.mark.parametrize("payload", [b'{"type":"ping","data":1}', b"\x00" * (64 << 20)], ids=["ping", "64-MiB-bomb"])
async def test_13_compressed_frame_closes_1002_without_inflating(ws_server, neighbour: RawClient,
                                                                 payload: bytes) -> None:
    offering = await RawClient.connect(ws_server.port, DEFLATE_OFFER)
    compressed = deflated(payload)
    assert len(compressed) < 100 << 10
    await offering.send(client_frame(TEXT, compressed, rsv=4))  # RSV1: "this message is compressed"
    assert await offering.close_code() == 1002
    await neighbour.assert_alive()
