"""Autobahn|Testsuite sections 5 and 6 over a real socket: fragmentation and UTF-8.

A fragmented message must be reassembled whatever the frame and write boundaries (even
inside a multi-byte character), with control frames between its fragments answered in
place; fragmentation rules broken close 1002, and text that is not UTF-8 closes 1007 as
soon as the bad byte arrives ("fail fast"), not only when the message ends.
"""

from __future__ import annotations

import json

import pytest

from tests.ws.frames import BINARY, CONTINUATION, PING, PONG, TEXT, client_frame
from tests.ws.raw_client import RawClient, client, fragmented, json_ping, neighbour, no_errors_logged, ws_server  # noqa: F401

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROTOCOL_ERROR = 1002
INVALID_PAYLOAD = 1007
PING_HEAD = b'{"type":"ping","data":"'
PING_TAIL = b'"}'

# -- 5 fragmentation ------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [PING, PONG])
async def test_5_1_fragmented_control_frame_is_a_protocol_error(client: RawClient, neighbour: RawClient,
                                                               opcode: int) -> None:
    await client.send(client_frame(opcode, b"frag", fin=False) + client_frame(CONTINUATION, b"ment"))
    assert await client.close_code() == PROTOCOL_ERROR
    await neighbour.assert_alive()


@pytest.mark.parametrize("fragments", [2, 3, 25, 128])
@pytest.mark.parametrize("chop", [None, 1], ids=["one-write", "byte-by-byte"])
async def test_5_3_fragmented_text_is_reassembled(client: RawClient, fragments: int, chop: int | None) -> None:
    payload, data = json_ping(64)
    await client.send(fragmented(TEXT, payload, fragments), chop)
    await client.pong(data)


async def test_5_empty_fragments_count_for_nothing(client: RawClient) -> None:
    await client.send(client_frame(TEXT, b"", fin=False) + client_frame(CONTINUATION, b'{"type":"ping",', fin=False)
                      + client_frame(CONTINUATION, b"", fin=False) + client_frame(CONTINUATION, b'"data":0}', fin=False)
                      + client_frame(CONTINUATION, b""))
    await client.pong(0)


async def test_5_message_in_more_fragments_than_allowed_closes_1009(client: RawClient,
                                                                    neighbour: RawClient) -> None:
    # Our limit (WsSettings.max_fragments = 128), not Autobahn's: refused at fragment 129.
    await client.send(client_frame(TEXT, b"{", fin=False)
                      + b"".join(client_frame(CONTINUATION, b" ", fin=False) for _ in range(128)))
    assert await client.closed() == (1009, b"message in more than 128 fragments")
    await neighbour.assert_alive()


@pytest.mark.parametrize("fragments", [2, 5])
@pytest.mark.parametrize("chop", [None, 1], ids=["one-write", "byte-by-byte"])
async def test_5_6_pings_between_fragments_are_answered_in_place(client: RawClient, fragments: int,
                                                                 chop: int | None) -> None:
    payload, data = json_ping(60)
    step = -(-len(payload) // fragments)
    frames = b""
    for i in range(fragments):
        frames += client_frame(TEXT if i == 0 else CONTINUATION, payload[i * step:(i + 1) * step],
                               fin=i == fragments - 1)
        if i < fragments - 1:
            frames += client_frame(PING, b"between %d" % i)
    await client.send(frames, chop)
    for i in range(fragments - 1):
        frame = await client.frame()
        assert (frame.opcode, frame.payload) == (PONG, b"between %d" % i)
    await client.pong(data)


@pytest.mark.parametrize("fin", [True, False], ids=["fin", "no-fin"])
@pytest.mark.parametrize("chop", [None, 1], ids=["one-write", "byte-by-byte"])
async def test_5_9_continuation_with_nothing_to_continue_is_a_protocol_error(client: RawClient, fin: bool,
                                                                             chop: int | None) -> None:
    await client.send(client_frame(CONTINUATION, b"fragment", fin=fin) + client_frame(TEXT, b'{"type":"ping"}'), chop)
    assert await client.close_code() == PROTOCOL_ERROR


async def test_5_15_continuation_after_a_finished_fragmented_message(client: RawClient,
                                                                     neighbour: RawClient) -> None:
    payload, data = json_ping(40)
    await client.send(fragmented(TEXT, payload, 2) + client_frame(CONTINUATION, b"fragment3", fin=False)
                      + client_frame(CONTINUATION, b"fragment4") + client_frame(TEXT, b'{"type":"ping"}'))
    await client.pong(data)  # the finished message is answered, then the stray continuation fails it
    assert await client.close_code() == PROTOCOL_ERROR
    await neighbour.assert_alive()


@pytest.mark.parametrize("second", [TEXT, BINARY])
@pytest.mark.parametrize("second_fin", [True, False], ids=["fin", "no-fin"])
async def test_5_16_new_message_while_one_is_fragmented_is_a_protocol_error(client: RawClient, second: int,
                                                                            second_fin: bool) -> None:
    await client.send(client_frame(TEXT, b'{"type":', fin=False) + client_frame(second, b'"ping"}', fin=second_fin))
    assert await client.close_code() == PROTOCOL_ERROR


# -- 6 UTF-8 --------------------------------------------------------------------------------

KOSME = "κόσμε"
VALID = {
    "kosme": KOSME,
    "mixed": "Hello-µ@ßöäüàá-UTF-8!!",
    "first-2-byte": "\u0080", "last-2-byte": "\u07ff", "first-3-byte": "\u0800",
    "last-before-surrogates": "\ud7ff", "first-after-surrogates": "\ue000", "replacement": "\ufffd",
    "noncharacter-fffe": "\ufffe", "last-3-byte": "\uffff", "first-4-byte": "\U00010000",
    "last-code-point": "\U0010ffff",
}
INVALID = {
    "lone-continuation": b"\x80", "continuations": b"\x80\xbf\x80", "lead-then-space": b"\xc0 ",
    "overlong-slash-2": b"\xc0\xaf", "overlong-slash-3": b"\xe0\x80\xaf", "overlong-slash-4": b"\xf0\x80\x80\xaf",
    "overlong-max-2": b"\xc1\xbf", "overlong-max-3": b"\xe0\x9f\xbf", "overlong-max-4": b"\xf0\x8f\xbf\xbf",
    "5-byte": b"\xf8\x88\x80\x80\x80", "6-byte": b"\xfc\x84\x80\x80\x80\x80",
    "surrogate-high": b"\xed\xa0\x80", "surrogate-low": b"\xed\xbf\xbf", "surrogate-pair": b"\xed\xa0\x80\xed\xb0\x80",
    "above-10ffff": b"\xf4\x90\x80\x80", "fe": b"\xfe", "ff": b"\xff", "fefeffff": b"\xfe\xfe\xff\xff",
    "kosme-then-bad": KOSME.encode() + b"\xed\xa0\x80edited",
}
TRUNCATED = {"2-byte-cut": b"\xce", "3-byte-cut": b"\xe2\x82", "4-byte-cut": b"\xf0\x90\x80"}


def ping_bytes(middle: bytes) -> bytes:
    return PING_HEAD + middle + PING_TAIL


@pytest.mark.parametrize("text", VALID.values(), ids=VALID.keys())
async def test_6_valid_utf8_is_accepted(client: RawClient, text: str) -> None:
    await client.send(client_frame(TEXT, ping_bytes(text.encode())))
    await client.pong(text)


async def test_6_2_valid_text_split_at_every_byte_is_reassembled(client: RawClient, neighbour: RawClient) -> None:
    payload = ping_bytes((KOSME + "-\U0010ffff").encode())
    for cut in range(1, len(payload)):  # mid-character cuts included
        await client.send(client_frame(TEXT, payload[:cut], fin=False) + client_frame(CONTINUATION, payload[cut:]))
        await client.pong(KOSME + "-\U0010ffff")
    await client.send(fragmented(TEXT, payload, len(payload)))  # one frame per byte
    await client.pong(KOSME + "-\U0010ffff")
    await neighbour.assert_alive()


@pytest.mark.parametrize("bad", [*INVALID.values(), *TRUNCATED.values()], ids=[*INVALID, *TRUNCATED])
async def test_6_invalid_utf8_closes_1007(client: RawClient, bad: bytes) -> None:
    await client.send(client_frame(TEXT, ping_bytes(bad)))
    assert await client.close_code() == INVALID_PAYLOAD


@pytest.mark.parametrize("bad", INVALID.values(), ids=INVALID.keys())
async def test_6_4_invalid_bytes_in_a_later_fragment_fail_fast(client: RawClient, bad: bytes) -> None:
    # The message is never finished: the close must come from the bad fragment alone.
    await client.send(client_frame(TEXT, PING_HEAD + KOSME.encode(), fin=False)
                      + client_frame(CONTINUATION, bad, fin=False))
    assert await client.close_code() == INVALID_PAYLOAD


async def test_6_4_invalid_bytes_fail_fast_inside_an_unfinished_frame(client: RawClient,
                                                                      neighbour: RawClient) -> None:
    frame = client_frame(CONTINUATION, b"\xf4\x90\x80\x80" + b"edited" * 100)
    # Header (2), mask (4) and the four bad bytes of a 604-byte frame; the rest never comes.
    await client.send(client_frame(TEXT, PING_HEAD + KOSME.encode(), fin=False) + frame[:10])
    assert await client.close_code() == INVALID_PAYLOAD
    await neighbour.assert_alive()


@pytest.mark.parametrize("cut", TRUNCATED.values(), ids=TRUNCATED.keys())
async def test_6_character_cut_by_a_fragment_then_not_continued_closes_1007(client: RawClient, cut: bytes) -> None:
    # The first fragment ends inside a character; the next one does not complete it.
    await client.send(client_frame(TEXT, PING_HEAD + cut, fin=False) + client_frame(CONTINUATION, b"A" + PING_TAIL))
    assert await client.close_code() == INVALID_PAYLOAD


async def test_6_error_message_for_valid_utf8_that_is_not_json(client: RawClient) -> None:
    # UTF-8 but not JSON is the application's business: an error message, not a close.
    await client.send(fragmented(TEXT, KOSME.encode(), 3))
    assert await client.error() == "Message is not valid JSON"
    await client.send(client_frame(TEXT, json.dumps([KOSME]).encode()))
    assert await client.error() == 'A message must be an object {"type": ..., "data": ...}'
    await client.assert_alive()
