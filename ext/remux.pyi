"""Describes the compiled ext.remux module (built from ext/remux.pyx) for type checkers.

Only the names core/ and perf/ import are declared; change them with the .pyx.
"""

from collections.abc import Iterable, Iterator
from typing import Any

from av.container.output import OutputContainer
from av.packet import Packet
from av.stream import Stream
from typing_extensions import disjoint_base

from ext.progress import Throttle

def presented_at(packet: Packet[Any]) -> int | None: ...

@disjoint_base  # a cdef class: no second extension base beside it
class Track:
    """Which packets of one input stream to copy into which output stream, and how."""

    out: Stream | None
    start: int
    end: int
    origin: int
    seconds: float
    video: bool
    done: bool
    packets: int
    first_pts: int
    end_pts: int
    def __init__(self, out: Stream | None, start: int, end: int, origin: int, seconds: float, video: bool) -> None: ...
    def stops(self, pts: int, keyframe: bool) -> bool: ...
    def accept(self, pts: int, duration: int) -> None: ...
    @property
    def span(self) -> tuple[float, float]: ...

def copy_packets(packets: Iterable[Packet[Any]], tracks: dict[int, Track]) -> Iterator[tuple[float, Packet[Any]]]: ...
def video_stop(packets: Iterable[Packet[Any]], index: int, track: Track) -> int: ...
def mux_packets(
    output: OutputContainer, timed_packets: Iterable[tuple[float, Packet[Any]]], throttle: Throttle, offset: float = 0.0
) -> int: ...
def scan_video(
    packets: Iterable[Packet[Any]], index: int, until: int
) -> tuple[list[tuple[int, int]], list[int], int, bool]: ...
def index_packets(packets: Iterable[Packet[Any]], video: int, audio: int) -> dict[str, Any]: ...
