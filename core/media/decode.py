"""Decoding that survives a few bad packets, as the ffmpeg CLI does.

PyAV raises on the first undecodable packet and would abort a whole job where the CLI
logs and continues; here each decode call is guarded, errors are counted, and the job
fails (CorruptMedia) only once more than ``limit`` packets were bad.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, Protocol, TypeVar

import av
from av.codec.context import CodecContext
from av.frame import Frame

from core.media.errors import CorruptMedia

FrameT = TypeVar("FrameT", bound=Frame)


class Decodable(Protocol[FrameT]):
    """What a TolerantDecoder needs of its stream: PyAV's VideoStream (frames: VideoFrame)
    and AudioStream (AudioFrame) both fit; their base, Stream, declares no ``decode``."""

    @property
    def type(self) -> str: ...

    @property
    def codec_context(self) -> CodecContext: ...

    def decode(self, packet: av.Packet[Any] | None = None) -> list[FrameT]: ...


class TolerantDecoder(Generic[FrameT]):
    """Decodes the packets of one stream, skipping up to ``limit`` undecodable ones."""

    def __init__(self, stream: Decodable[FrameT], name: str, limit: int = 10) -> None:
        stream.codec_context.thread_type = "AUTO"
        self.stream = stream
        self.name = name
        self.limit = limit
        self.errors = 0

    def decode(self, packet: av.Packet[Any] | None = None) -> list[FrameT]:
        """Frames from ``packet`` (None flushes the decoder); [] for a bad packet."""
        try:
            return self.stream.decode(packet)
        except av.error.InvalidDataError as error:
            self.errors += 1
            if self.errors > self.limit:
                raise CorruptMedia(
                    f"{self.name}: more than {self.limit} {self.stream.type} packets cannot be decoded"
                ) from error
            return []

    def frames(self, packets: Iterable[av.Packet[Any]], check: Callable[[], None]) -> Iterator[FrameT]:
        """Frames decoded from ``packets``, then those the flush releases.

        ``check()`` (a cancellation check) runs once per packet; the demuxer's empty
        end-of-stream packets are skipped, the decoder being flushed once at the end.
        """
        for packet in packets:
            check()
            if packet.size:
                yield from self.decode(packet)
        yield from self.decode(None)
