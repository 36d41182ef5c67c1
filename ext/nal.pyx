# cython: language_level=3
"""H.264 byte-stream surgery for the smart cut: splicing re-encoded edges into a copy.

An MP4 track stores H.264 as length-prefixed NAL units described by an ``avcC`` record
(its SPS/PPS), while libx264 emits Annex B (start-code delimited) units with its own
SPS/PPS in-band. To mux re-encoded edge GOPs into the source's track they are rewritten
to length-prefixed form, and the source's SPS/PPS are put back in-band at the first
copied keyframe so a decoder switches back to the source's parameters.

- ``annexb_to_length_prefixed(data, length_size=4) -> bytes``
- ``avcc_length_size(extradata) -> int``: NAL length size of an avcC record, 0 if the
  extradata is not avcC (e.g. Annex B extradata from an MPEG-TS source).
- ``avcc_parameter_sets(extradata, length_size) -> bytes``: the record's SPS and PPS as
  length-prefixed NAL units, ready to prepend to a packet.
- ``has_idr(data, length_size) -> bool``: whether a length-prefixed access unit holds an
  IDR slice. A keyframe of an open-GOP stream is a plain I picture (a recovery point):
  a splice that switches parameter sets must land on an IDR instead (core.media.smartrender).
"""

from libc.string cimport memcpy


cdef inline void _put_length(unsigned char* out, Py_ssize_t at, Py_ssize_t value, int size):
    cdef int i
    for i in range(size):
        out[at + i] = (value >> (8 * (size - 1 - i))) & 0xFF


def annexb_to_length_prefixed(const unsigned char[::1] data, int length_size=4) -> bytes:
    """Rewrite Annex B start codes (00 00 01 / 00 00 00 01) as NAL length prefixes."""
    cdef Py_ssize_t n = data.shape[0]
    cdef Py_ssize_t i = 0, start = -1, end, out_len = 0
    cdef bytearray out
    cdef unsigned char* dst
    if length_size not in (1, 2, 4):
        raise ValueError(f"NAL length size must be 1, 2 or 4, not {length_size}")
    # A unit grows by at most one byte (a 3-byte start code becomes a 4-byte length),
    # and units are at least 3 bytes apart, so this buffer is always large enough.
    out = bytearray(n + n // 3 + 8)
    dst = out
    while i + 2 < n:
        if data[i] == 0 and data[i + 1] == 0 and data[i + 2] == 1:
            if start >= 0:
                end = i
                # A zero just before 00 00 01 belongs to a four-byte start code.
                while end > start and data[end - 1] == 0:
                    end -= 1
                out_len = _append(dst, out_len, &data[start], end - start, length_size)
            i += 3
            start = i
        else:
            i += 1
    if start < 0:
        raise ValueError("no Annex B start code in the packet")
    out_len = _append(dst, out_len, &data[start], n - start, length_size)
    return bytes(out[:out_len])


cdef Py_ssize_t _append(unsigned char* dst, Py_ssize_t at, const unsigned char* nal,
                        Py_ssize_t size, int length_size) except -1:
    if size <= 0:
        return at
    if length_size < 4 and size >= (1 << (8 * length_size)):
        raise ValueError("NAL unit too large for the track's length size")
    _put_length(dst, at, size, length_size)
    memcpy(dst + at + length_size, nal, size)
    return at + length_size + size


def avcc_length_size(bytes extradata) -> int:
    """The NAL length size an avcC record declares, or 0 when it is not avcC."""
    if extradata is None or len(extradata) < 7 or extradata[0] != 1:
        return 0
    return (extradata[4] & 0x03) + 1


def avcc_parameter_sets(bytes extradata, int length_size) -> bytes:
    """The SPS and PPS units of an avcC record, each with a ``length_size`` prefix."""
    cdef Py_ssize_t at = 5, count, size, n = len(extradata) if extradata is not None else 0
    cdef list units = []
    if avcc_length_size(extradata) == 0:
        raise ValueError("extradata is not an avcC record")
    for mask in (0x1F, 0xFF):  # the SPS count shares its byte with reserved bits
        if at >= n:
            raise ValueError("truncated avcC record")
        count = extradata[at] & mask
        at += 1
        for _ in range(count):
            if at + 2 > n:
                raise ValueError("truncated avcC record")
            size = (extradata[at] << 8) | extradata[at + 1]
            at += 2
            if at + size > n:
                raise ValueError("truncated avcC record")
            units.append(int(size).to_bytes(length_size, "big") + extradata[at:at + size])
            at += size
    return b"".join(units)


def has_idr(const unsigned char[::1] data, int length_size) -> bool:
    """Whether the length-prefixed access unit ``data`` holds an IDR slice (NAL type 5)."""
    cdef Py_ssize_t n = data.shape[0], at = 0, size
    cdef int i
    while at + length_size < n:
        size = 0
        for i in range(length_size):
            size = (size << 8) | data[at + i]
        at += length_size
        if size <= 0 or at + size > n:
            return False
        if (data[at] & 0x1F) == 5:
            return True
        at += size
    return False
