"""WsConnection, sans-I/O: messages, fragments, limits, UTF-8, control frames, never raising."""

from __future__ import annotations

import random
import struct

from server.ws.connection import (
    BinaryReceived,
    Closed,
    PingReceived,
    PongReceived,
    TextReceived,
    WsConnection,
    text_frame,
)
from tests.ws.frames import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, client_frame, close_code, server_frames


def test_text_message() -> None:
    conn = WsConnection()
    assert conn.receive(client_frame(TEXT, b'{"type":"ping"}')) == [TextReceived('{"type":"ping"}')]


def test_message_split_across_reads_and_fragments() -> None:
    conn = WsConnection()
    data = (client_frame(TEXT, "héllo ".encode(), fin=False) + client_frame(CONTINUATION, b"wor", fin=False)
            + client_frame(CONTINUATION, "ld ✓".encode()))
    events = []
    for i in range(len(data)):  # one byte at a time: partial headers, partial payloads
        events += conn.receive(data[i:i + 1])
    assert events == [TextReceived("héllo world ✓")]


def test_control_frame_between_fragments() -> None:
    conn = WsConnection()
    events = conn.receive(client_frame(TEXT, b"ab", fin=False) + client_frame(PING, b"x")
                          + client_frame(CONTINUATION, b"cd"))
    assert events == [PingReceived(b"\x8a\x01x"), TextReceived("abcd")]  # the ping's answer: an unmasked pong
    assert conn.data_to_send() == b""


def test_oversized_message_closes_1009_before_buffering_it() -> None:
    conn = WsConnection(max_message_bytes=1000)
    # A frame header announcing 1 GiB; only its first chunk is ever fed.
    head = struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 30) + b"\0\0\0\0"
    events = conn.receive(head + b"a" * 1001)
    assert events == [Closed(1009, "message larger than 1000 bytes")]
    [(opcode, payload)] = server_frames(conn.data_to_send())
    assert opcode == CLOSE and close_code(payload) == 1009
    assert conn.closed and conn.receive(b"a" * 100) == []


def test_oversized_fragmented_message_closes_1009() -> None:
    conn = WsConnection(max_message_bytes=1000)
    events = []
    for opcode in (TEXT, CONTINUATION, CONTINUATION):
        events += conn.receive(client_frame(opcode, b"a" * 400, fin=False))
    assert events == [Closed(1009, "message larger than 1000 bytes")]  # type: ignore[union-attr]


def test_multibyte_text_counts_bytes_not_characters() -> None:
    conn = WsConnection(max_message_bytes=10)
    assert conn.receive(client_frame(TEXT, "✓✓✓✓".encode()))[0] == Closed(1009, "message larger than 10 bytes")


def test_too_many_fragments_close_1009() -> None:
    conn = WsConnection(max_fragments=4)
    data = client_frame(TEXT, b"a", fin=False) + b"".join(client_frame(CONTINUATION, b"a", fin=False)
                                                          for _ in range(4))
    assert conn.receive(data)[-1] == Closed(1009, "message in more than 4 fragments")


def test_invalid_utf8_closes_1007() -> None:
    conn = WsConnection()
    events = conn.receive(client_frame(TEXT, b"\xff\xfe"))
    assert isinstance(events[0], Closed) and events[0].code == 1007
    assert close_code(server_frames(conn.data_to_send())[0][1]) == 1007


def test_invalid_utf8_split_across_fragments_closes_1007() -> None:
    conn = WsConnection()
    events = conn.receive(client_frame(TEXT, b"ok\xe2\x9c", fin=False) + client_frame(CONTINUATION, b"A"))
    assert events[-1].code == 1007  # type: ignore[union-attr]


def test_binary_message_is_reported_not_kept() -> None:
    assert WsConnection().receive(client_frame(BINARY, b"\x00" * 50)) == [BinaryReceived(50)]


def test_ping_is_answered_and_pong_reported() -> None:
    conn = WsConnection()
    assert conn.receive(client_frame(PING, b"abc") + client_frame(PONG, b"")) == [
        PingReceived(b"\x8a\x03abc"), PongReceived(b"")]


def test_peer_close_is_answered_with_its_code() -> None:
    conn = WsConnection()
    assert conn.receive(client_frame(CLOSE, struct.pack("!H", 1000) + b"bye")) == [Closed(1000, "bye")]
    assert close_code(server_frames(conn.data_to_send())[0][1]) == 1000


def test_unmasked_client_frame_is_a_protocol_error() -> None:
    conn = WsConnection()
    events = conn.receive(text_frame(b"hi"))  # a server-style, unmasked frame
    assert events[0].code == 1002  # type: ignore[union-attr]


def test_compressed_frame_without_extension_is_a_protocol_error() -> None:
    frame = bytearray(client_frame(TEXT, b"hi"))
    frame[0] |= 0x40  # RSV1: permessage-deflate was never agreed
    assert WsConnection().receive(bytes(frame))[0].code == 1002  # type: ignore[union-attr]


def test_end_of_stream_is_1006_and_garbage_never_raises() -> None:
    assert WsConnection().receive(None) == [Closed(1006)]
    conn = WsConnection()
    events = conn.receive(b"\x8f\xff" + b"\xff" * 64)  # reserved opcode
    assert events[0].code == 1002  # type: ignore[union-attr]


def test_local_close_then_nothing_more() -> None:
    conn = WsConnection()
    conn.close(1001, "bye")
    assert close_code(server_frames(conn.data_to_send())[0][1]) == 1001
    conn.close(1000)
    assert conn.data_to_send() == b""


def test_text_frame_lengths() -> None:
    for size in (0, 125, 126, 65535, 65536):
        [(opcode, payload)] = server_frames(text_frame(b"a" * size))
        assert opcode == TEXT and len(payload) == size


def test_random_bytes_never_raise() -> None:
    rng = random.Random(7)
    for _ in range(300):
        conn = WsConnection(max_message_bytes=4096, max_fragments=8)
        valid = client_frame(TEXT, b'{"type":"ping"}')
        data = valid + bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
        for start in range(0, len(data), 37):
            for event in conn.receive(data[start:start + 37]):
                assert isinstance(event, (TextReceived, BinaryReceived, PingReceived, PongReceived, Closed))
        conn.data_to_send()
