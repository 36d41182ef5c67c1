"""The multipart parser, fed whole, byte by byte, and split at every position."""

from __future__ import annotations

import os

import pytest

from server.http.multipart import (
    MultipartError,
    MultipartParser,
    PartData,
    PartEnd,
    PartStart,
    parse_boundary,
    parse_header_value,
)

BOUNDARY = b"----nveBoundary7MA4YWxkTrZu0gW"


def body(*parts: tuple[bytes, bytes], preamble: bytes = b"", epilogue: bytes = b"",
         boundary: bytes = BOUNDARY) -> bytes:
    """``parts`` as (header block, content) in a multipart body."""
    out = bytearray(preamble)
    for headers, content in parts:
        out += b"--" + boundary + b"\r\n" + headers + b"\r\n\r\n" + content + b"\r\n"
    out += b"--" + boundary + b"--" + epilogue
    return bytes(out)


def file_part(content: bytes, name: str = "video", filename: str = "clip.mp4") -> tuple[bytes, bytes]:
    headers = (f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
               f"Content-Type: video/mp4").encode()
    return headers, content


def parse(chunks: list[bytes], boundary: bytes = BOUNDARY) -> list[tuple[PartStart, bytes]]:
    """Feed ``chunks``; return each part with its content, checking the event grammar."""
    parser = MultipartParser(boundary)
    parts: list[tuple[PartStart, bytearray]] = []
    open_part = False
    for chunk in chunks:
        for event in parser.feed(chunk):
            if isinstance(event, PartStart):
                assert not open_part
                parts.append((event, bytearray()))
                open_part = True
            elif isinstance(event, PartData):
                assert open_part and event.data
                parts[-1][1].extend(event.data)
            else:
                assert isinstance(event, PartEnd) and open_part
                open_part = False
    parser.finish()
    assert not open_part
    return [(start, bytes(content)) for start, content in parts]


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


# Content that looks like delimiters without being one: a CR, a CRLF, "--", the boundary
# without its CRLF, and a CRLF-- prefix that stops one byte short.
TRICKY = (b"\r\n--" + BOUNDARY[:-1] + b"x\r" + b"--" + BOUNDARY + b"\r\n-\r\n--\r")


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 1 << 20])
def test_parts_survive_any_chunking(chunk_size: int) -> None:
    content = os.urandom(3000) + TRICKY + os.urandom(100)
    data = body((b'Content-Disposition: form-data; name="title"', b"My clip"), file_part(content),
                preamble=b"ignored preamble\r\n", epilogue=b"\r\nignored epilogue")
    parts = parse(split_every(data, chunk_size))
    assert [(p.name, p.filename, p.content_type) for p, _ in parts] == [
        ("title", None, None), ("video", "clip.mp4", "video/mp4")]
    assert parts[0][1] == b"My clip"
    assert parts[1][1] == content


def test_every_split_point_of_a_small_body() -> None:
    data = body(file_part(b"ab\r\n--" + BOUNDARY[:5] + b"cd"), (b"Content-Disposition: form-data; name=x", b""))
    expected = parse([data])
    for cut in range(len(data) + 1):
        assert parse([data[:cut], data[cut:]]) == expected
    for first in range(0, len(data), 3):
        for second in range(first, len(data), 5):
            assert parse([data[:first], data[first:second], data[second:]]) == expected


def test_empty_content_and_part_without_headers() -> None:
    data = b"--" + BOUNDARY + b"\r\n\r\n\r\n--" + BOUNDARY + b"\r\n" + b"X-A: 1\r\n\r\nz\r\n--" + BOUNDARY + b"--"
    parts = parse(split_every(data, 1))
    assert [(p.headers, c) for p, c in parts] == [([], b""), ([("x-a", "1")], b"z")]


def test_transport_padding_after_boundary() -> None:
    data = b"--" + BOUNDARY + b" \t \r\nX-A: 1\r\n\r\nq\r\n--" + BOUNDARY + b"--\r\n"
    assert parse(split_every(data, 1))[0][1] == b"q"


def test_memory_stays_bounded_for_a_large_part() -> None:
    parser = MultipartParser(BOUNDARY)
    parser.feed(b"--" + BOUNDARY + b"\r\n" + file_part(b"")[0] + b"\r\n\r\n")
    total = 0
    chunk = os.urandom(65536)
    for _ in range(200):  # 12.5 MiB
        total += sum(len(e.data) for e in parser.feed(chunk) if isinstance(e, PartData))
        assert len(parser._buffer) < len(BOUNDARY) + 8
    events = parser.feed(b"\r\n--" + BOUNDARY + b"--")
    total += sum(len(e.data) for e in events if isinstance(e, PartData))
    assert total == 200 * 65536 and isinstance(events[-1], PartEnd) and parser.done


def test_epilogue_after_close_is_ignored() -> None:
    parser = MultipartParser(BOUNDARY)
    parser.feed(body(file_part(b"x")))
    assert parser.done and parser.feed(b"anything at all") == []


def test_quoted_and_extended_filenames() -> None:
    headers = (b'Content-Disposition: form-data; name="video"; filename="a \\"b\\"; c.mp4"; '
               b"filename*=UTF-8''%E2%82%AC%20rates.mp4")
    [(part, _)] = parse([body((headers, b"1"))])
    assert part.filename == "\u20ac rates.mp4" and part.params["name"] == "video"
    assert parse_header_value('form-data; name="a;b"; x=1') == ("form-data", {"name": "a;b", "x": "1"})


def test_utf8_filename_sent_raw() -> None:
    headers = 'Content-Disposition: form-data; name="video"; filename="vidéo.mp4"'.encode()
    [(part, _)] = parse([body((headers, b"1"))])
    assert part.filename == "vidéo.mp4"


def test_folded_header_line() -> None:
    headers = b'Content-Disposition: form-data;\r\n name="video"'
    [(part, _)] = parse([body((headers, b"1"))])
    assert part.name == "video"


@pytest.mark.parametrize("data, message", [
    (b"--" + BOUNDARY + b"\r\n" + b"X-A: 1\r\n\r\nabc", "ended before"),
    (b"no boundary here at all", "ended before"),
    (b"", "ended before"),
    (b"--" + BOUNDARY + b"\r\nX-A: 1\r\n\r\nabc\r\n--" + BOUNDARY, "ended before"),
])
def test_truncated_bodies(data: bytes, message: str) -> None:
    parser = MultipartParser(BOUNDARY)
    parser.feed(data)
    with pytest.raises(MultipartError, match=message):
        parser.finish()


@pytest.mark.parametrize("data, message", [
    (b"--" + BOUNDARY + b"X\r\n", "not followed by CRLF"),
    (b"--" + BOUNDARY + b"\r\nno colon here\r\n\r\n", "malformed header"),
    (b"--" + BOUNDARY + b"\r\nX-A: " + b"a" * 20000, "headers are over"),
    (b"--" + BOUNDARY + b" " * 100, "too much whitespace"),
])
def test_malformed_bodies(data: bytes, message: str) -> None:
    with pytest.raises(MultipartError, match=message):
        MultipartParser(BOUNDARY).feed(data)


def test_too_many_parts() -> None:
    parser = MultipartParser(BOUNDARY, max_parts=3)
    with pytest.raises(MultipartError, match="more than 3 parts"):
        parser.feed(body(*[(b"X-A: 1", b"x")] * 4))


@pytest.mark.parametrize("header, boundary", [
    ("multipart/form-data; boundary=abc", b"abc"),
    ('Multipart/Form-Data; charset=utf-8; boundary="a b:c"', b"a b:c"),
    ("multipart/form-data;boundary=----WebKitFormBoundaryx7", b"----WebKitFormBoundaryx7"),
])
def test_parse_boundary(header: str, boundary: bytes) -> None:
    assert parse_boundary(header) == boundary


@pytest.mark.parametrize("header", [None, "application/json", "multipart/form-data",
                                    "multipart/form-data; boundary=", "multipart/form-data; boundary=" + "a" * 71,
                                    'multipart/form-data; boundary="ends in space "'])
def test_parse_boundary_refuses(header: str | None) -> None:
    with pytest.raises(MultipartError):
        parse_boundary(header)
