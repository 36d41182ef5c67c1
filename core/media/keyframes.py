"""The keyframe index of a video: where its GOPs start, in timeline seconds.

Smart render and chunked render plan from it (which GOPs lie wholly inside a kept range,
where one render may be split among workers) without reading the file. The deep probe of
ingest reads every packet anyway (core.media.probe), so the index comes from that scan
and is kept beside the description (``.cache/<name>.keyframes.json``, core.media.derived);
a file nobody ingested (a job's output used as a source) is scanned on first use and its
index stored then.

The index is for planning only: a splice takes its exact ticks and decode order from
core.media.gop.scan_gops over the region it cuts.
"""

from __future__ import annotations

import bisect
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.media.derived import cache_path, read_json, write_json
from core.media.errors import MediaError
from core.media.probe import probe_indexed

log = logging.getLogger("nve.media")

INDEX = "keyframes.json"


@dataclass(frozen=True)
class KeyframeIndex:
    """Keyframe presentation ``times`` (timeline s, sorted, at least one), where the video
    ``end``s (s: the latest frame's pts plus duration) and its ``frames`` count."""

    times: tuple[float, ...]
    end: float
    frames: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyframeIndex:
        return cls(tuple(float(time) for time in data["times"]), float(data["end"]), int(data["frames"]))

    def at_or_before(self, t: float) -> float:
        """The last keyframe at or before ``t`` (the first keyframe when none is)."""
        return self.times[max(bisect.bisect_right(self.times, t) - 1, 0)]

    def after(self, t: float) -> float | None:
        """The first keyframe after ``t``, None when none is."""
        position = bisect.bisect_right(self.times, t)
        return self.times[position] if position < len(self.times) else None

    def within(self, lo: float, hi: float) -> list[float]:
        """The keyframes ``k`` with ``lo <= k < hi``."""
        return list(self.times[bisect.bisect_left(self.times, lo):bisect.bisect_left(self.times, hi)])

    @property
    def longest_gop(self) -> float:
        """The longest distance (s) from a keyframe to the next one (or to the end)."""
        bounds = (*self.times, self.end)
        return max(b - a for a, b in zip(bounds, bounds[1:]))


def store_keyframe_index(path: str | os.PathLike[str], index: dict[str, Any]) -> None:
    """Keep ``index`` (the second result of :func:`~core.media.probe.probe_indexed`) for ``path``."""
    write_json(cache_path(path, INDEX), index)


def keyframe_index(path: str | os.PathLike[str]) -> KeyframeIndex:
    """The keyframe index of ``path``: stored at ingest, or scanned now and stored.

    Raises UnsupportedMedia / CorruptMedia as the probe does for a file that is not a usable video.
    """
    data = read_json(path, INDEX)
    if data is None:
        _, data = probe_indexed(path)
        try:
            store_keyframe_index(path, data)
        except (OSError, MediaError) as error:  # a cache: a render must not fail for want of keeping it
            log.warning("the keyframe index of %s was not stored (%s)", Path(path).name, error)
    return KeyframeIndex.from_json(data)
