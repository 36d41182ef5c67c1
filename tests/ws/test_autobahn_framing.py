"""Autobahn|Testsuite sections 1-4 over a real socket: framing, pings/pongs, reserved bits, opcodes.

The suite's fuzzingclient echoes messages; /ws speaks JSON instead, so where Autobahn
expects an echo these cases send a JSON ping and expect the pong with the same data
(``{"type":"pong",...}`` is as long as the ping, so the answer uses the same length
form: 7, 16 or 64 bits). Every violation must end in the exact close code, after the
answers to what came before it, with nothing sent after the close frame; and the
``neighbour`` connected meanwhile must still be served.
"""

from __future__ import annotations

import struct

import pytest

from tests.ws.frames import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, client_frame
from tests.ws.raw_client import (  # noqa: F401
    MAX_MESSAGE,
    PING_FLOOR,
    RawClient,
    client,
    json_ping,
    neighbour,
    no_errors_logged,
    ws_server,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROTOCOL_ERROR = 1002
SIZES = [PING_FLOOR, 125, 126, 127, 128, 65535, 65536]
"""Payload lengths on both sides of the 7-bit (<=125) and 16-bit (<=65535) length forms."""

BINARY_REFUSED = "Binary messages are not supported: send JSON text"


def before_and_after(frame: bytes) -> bytes:
    """``frame`` between a JSON ping ("before", to be answered) and a protocol ping (never answered)."""
    return (client_frame(TEXT, b'{"type":"ping","data":"before"}') + frame + client_frame(PING, b"after"))


async def failed_after_answering(client: RawClient, code: int) -> None:
    """The JSON ping before the bad frame was answered, then the close with ``code``, then nothing."""
    await client.pong("before")
    assert await client.close_code() == code


# -- 1 framing ------------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("chop", [None, 997], ids=["one-write", "chops-of-997"])
async def test_1_1_text_message_of_each_length_form_is_answered(client: RawClient, size: int,
                                                                chop: int | None) -> None:
    payload, data = json_ping(size)
    await client.send(client_frame(TEXT, payload), chop)
    frame = await client.frame()
    assert frame.opcode == TEXT and len(frame.payload) == size
    assert frame.payload == payload.replace(b'"ping"', b'"pong"')


async def test_1_1_empty_text_message_is_an_error_message(client: RawClient, neighbour: RawClient) -> None:
    await client.send(client_frame(TEXT, b""))
    assert await client.error() == "Message is not valid JSON"
    await client.assert_alive()
    await neighbour.assert_alive()


@pytest.mark.parametrize("size", [0, 125, 126, 127, 128, 65535, 65536])
async def test_1_2_binary_message_is_refused_with_an_error_message(client: RawClient, size: int) -> None:
    # Documented reaction (docs/CONTRACT.md section 3): an error message; the connection stays.
    await client.send(client_frame(BINARY, bytes(range(256)) * (size // 256) + bytes(size % 256)))
    assert await client.error() == BINARY_REFUSED
    await client.assert_alive()


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
async def test_1_frame_over_the_limit_closes_1009(client: RawClient, neighbour: RawClient, opcode: int) -> None:
    await client.send(client_frame(opcode, b"a" * (MAX_MESSAGE + 1)), chop=65536)
    assert await client.closed() == (1009, b"message larger than 1048576 bytes")
    await neighbour.assert_alive()


@pytest.mark.parametrize(("size", "length_bytes"), [(5, 2), (125, 2), (5, 8), (65535, 8)],
                         ids=["5-in-16-bit", "125-in-16-bit", "5-in-64-bit", "65535-in-64-bit"])
async def test_1_length_not_in_its_shortest_form_is_a_protocol_error(client: RawClient, size: int,
                                                                     length_bytes: int) -> None:
    # RFC 6455 5.2: "the minimal number of bytes MUST be used to encode the length".
    await client.send(before_and_after(client_frame(TEXT, b"a" * size, length_bytes=length_bytes)))
    await failed_after_answering(client, PROTOCOL_ERROR)


async def test_1_64_bit_length_with_the_top_bit_set_is_a_protocol_error(client: RawClient) -> None:
    head = struct.pack("!BBQ", 0x80 | TEXT, 0x80 | 127, 1 << 63) + b"\0\0\0\0"
    await client.send(before_and_after(head))
    await failed_after_answering(client, PROTOCOL_ERROR)  # refused at the length, before any payload


async def test_1_unmasked_client_frame_is_a_protocol_error(client: RawClient, neighbour: RawClient) -> None:
    await client.send(before_and_after(client_frame(TEXT, b'{"type":"ping","data":1}', masked=False)))
    await failed_after_answering(client, PROTOCOL_ERROR)
    await neighbour.assert_alive()


# -- 2 pings and pongs ----------------------------------------------------------------------

@pytest.mark.parametrize("payload", [b"", b"Hello, world!", bytes(range(0xC0, 0x100)) + b"\x00\xfe\xff",
                                     bytes(range(125))], ids=["empty", "text", "binary", "125-bytes"])
@pytest.mark.parametrize("chop", [None, 1], ids=["one-write", "byte-by-byte"])
async def test_2_ping_is_answered_with_its_payload(client: RawClient, payload: bytes, chop: int | None) -> None:
    await client.send(client_frame(PING, payload), chop)
    frame = await client.frame()
    assert (frame.opcode, frame.payload) == (PONG, payload)


async def test_2_5_ping_of_126_bytes_is_a_protocol_error(client: RawClient, neighbour: RawClient) -> None:
    await client.send(before_and_after(client_frame(PING, b"a" * 126)))
    await failed_after_answering(client, PROTOCOL_ERROR)
    await neighbour.assert_alive()


@pytest.mark.parametrize("payload", [b"", b"unsolicited"], ids=["empty", "with-payload"])
async def test_2_7_unsolicited_pong_is_ignored(client: RawClient, payload: bytes) -> None:
    await client.send(client_frame(PONG, payload) + client_frame(PING, b"then a ping"))
    frame = await client.frame()  # nothing for the pong: the first answer is the ping's
    assert (frame.opcode, frame.payload) == (PONG, b"then a ping")
    await client.assert_alive()


@pytest.mark.parametrize("chop", [None, 1], ids=["one-write", "byte-by-byte"])
async def test_2_10_pings_in_a_burst_are_answered_in_order(client: RawClient, chop: int | None) -> None:
    payloads = [f"payload-{i}".encode() for i in range(10)]
    await client.send(b"".join(client_frame(PING, p) for p in payloads), chop)
    assert [(await client.frame()).payload for _ in payloads] == payloads


async def test_2_ping_in_the_middle_of_a_fragmented_message(client: RawClient, neighbour: RawClient) -> None:
    await client.send(client_frame(TEXT, b'{"type":"ping",', fin=False) + client_frame(PING, b"between")
                      + client_frame(CONTINUATION, b'"data":"whole"}'))
    frame = await client.frame()
    assert (frame.opcode, frame.payload) == (PONG, b"between")
    await client.pong("whole")
    await neighbour.assert_alive()


# -- 3 reserved bits ------------------------------------------------------------------------

@pytest.mark.parametrize("rsv", range(1, 8))
async def test_3_reserved_bits_on_a_text_frame_are_a_protocol_error(client: RawClient, rsv: int) -> None:
    await client.send(before_and_after(client_frame(TEXT, b'{"type":"ping","data":1}', rsv=rsv)))
    await failed_after_answering(client, PROTOCOL_ERROR)


@pytest.mark.parametrize(("opcode", "payload", "rsv"), [
    (BINARY, b"\x00\xff", 5), (PING, b"ping", 3), (PONG, b"", 1), (CLOSE, struct.pack("!H", 1000), 7),
    (CONTINUATION, b"", 2),
], ids=["binary", "ping", "pong", "close", "continuation"])
async def test_3_reserved_bits_on_other_frames_are_a_protocol_error(client: RawClient, neighbour: RawClient,
                                                                    opcode: int, payload: bytes, rsv: int) -> None:
    await client.send(before_and_after(client_frame(opcode, payload, rsv=rsv)))
    await failed_after_answering(client, PROTOCOL_ERROR)
    await neighbour.assert_alive()


# -- 4 opcodes ------------------------------------------------------------------------------

@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
@pytest.mark.parametrize("payload", [b"", b"reserved opcode"], ids=["empty", "with-payload"])
async def test_4_reserved_opcode_is_a_protocol_error(client: RawClient, neighbour: RawClient, opcode: int,
                                                     payload: bytes) -> None:
    await client.send(before_and_after(client_frame(opcode, payload)))
    await failed_after_answering(client, PROTOCOL_ERROR)
    await neighbour.assert_alive()
