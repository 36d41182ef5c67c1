"""Client-side frame bytes for sans-I/O tests: masked, as a browser would send them."""

from __future__ import annotations

import struct

MASK = b"\x01\x02\x03\x04"

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def client_frame(opcode: int, payload: bytes, fin: bool = True, *, rsv: int = 0, masked: bool = True,
                 length_bytes: int | None = None) -> bytes:
    """One frame; ``rsv`` (0-7) sets RSV1-3, ``length_bytes`` (0, 2 or 8) forces how the
    length is written (default: the shortest form, the only one RFC 6455 allows)."""
    head = bytes(((0x80 if fin else 0) | (rsv & 7) << 4 | opcode,))
    bit = 0x80 if masked else 0
    size = len(payload)
    if length_bytes is None:
        length_bytes = 0 if size < 126 else 2 if size < 1 << 16 else 8
    if length_bytes == 0:
        head += bytes((bit | size,))
    elif length_bytes == 2:
        head += struct.pack("!BH", bit | 126, size)
    else:
        head += struct.pack("!BQ", bit | 127, size)
    if not masked:
        return head + payload
    # XOR as one big integer: a byte-by-byte loop takes seconds over the 1 MiB cases.
    key = (MASK * (size // 4 + 1))[:size]
    return head + MASK + (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split unmasked server bytes into (opcode, payload) pairs."""
    frames = []
    while data:
        opcode, size, offset = data[0] & 0x0F, data[1] & 0x7F, 2
        if size == 126:
            size, offset = struct.unpack("!H", data[2:4])[0], 4
        elif size == 127:
            size, offset = struct.unpack("!Q", data[2:10])[0], 10
        frames.append((opcode, data[offset:offset + size]))
        data = data[offset + size:]
    return frames


def close_code(payload: bytes) -> int:
    return struct.unpack("!H", payload[:2])[0]
