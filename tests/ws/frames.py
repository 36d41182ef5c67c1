"""Client-side frame bytes for sans-I/O tests: masked, as a browser would send them."""

from __future__ import annotations

import struct

MASK = b"\x01\x02\x03\x04"

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    head = bytes(((0x80 if fin else 0) | opcode,))
    size = len(payload)
    if size < 126:
        head += bytes((0x80 | size,))
    elif size < 1 << 16:
        head += struct.pack("!BH", 0x80 | 126, size)
    else:
        head += struct.pack("!BQ", 0x80 | 127, size)
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return head + MASK + masked


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
