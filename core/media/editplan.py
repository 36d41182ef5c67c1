"""Turn a contract edit list into a render plan: what to keep of the source and what to apply.

The API layer has already checked types and the documented ranges of every edit; this module
re-checks what only the source can tell (a range past its end, a crop outside the frame, a
fade longer than the result) and reduces the list to a :class:`RenderPlan`.

Semantics (docs/CONTRACT.md, EditOperation): ranges first, then effects.

- Ranges are in seconds of the SOURCE's timeline (core.media.probe.Timeline: 0 is its first
  presented frame). Every ``trim`` keeps ``[start, end)`` (several trims intersect), every
  ``cut`` removes ``[start, end)``; what remains is joined in source order.
  ``split`` is a timeline marker and changes nothing (its ``at`` is still checked).
- ``speed`` factors and ``volume`` gains compose by multiplication, as applying one edit after
  another would; ``fade`` ``in``/``out`` apply to the ends of the result (a later edit's value
  replaces an earlier one for the same end).
- ``scale`` and ``crop`` apply in the order they appear, each to the picture the previous one
  produced, starting from the picture as SHOWN (upright, square pixels: probe's displayed
  size). ``-1`` in a scale keeps the aspect ratio. Dimensions are rounded to even numbers
  because H.264 in 4:2:0 needs them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.media.errors import InvalidRequest

# Ranges may overshoot the probed duration by this much (rounding in clients) and are clamped.
END_TOLERANCE = 1e-3
# Kept pieces shorter than this are floating-point residue of cuts, not content.
MIN_RANGE = 1e-3
# atempo keeps quality within this factor range per instance; larger speeds chain instances.
ATEMPO_MIN, ATEMPO_MAX = 0.5, 2.0


@dataclass(frozen=True)
class Scale:
    """Resize the picture to exactly ``width`` x ``height`` (already resolved and even)."""

    width: int
    height: int


@dataclass(frozen=True)
class Crop:
    """Keep the ``width`` x ``height`` rectangle whose top-left corner is at ``x``, ``y``."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class RenderPlan:
    """Everything a render needs, resolved against one source.

    ``ranges`` are the kept source intervals in order; ``duration`` is the expected duration
    of the output (kept time divided by ``speed``); ``width``/``height`` are the output's.
    """

    ranges: tuple[tuple[float, float], ...]
    speed: float
    fade_in: float
    fade_out: float
    gain: float
    geometry: tuple[Scale | Crop, ...]
    width: int
    height: int
    duration: float

    @property
    def kept(self) -> float:
        """Seconds of source material the output is made of."""
        return sum(end - start for start, end in self.ranges)

    def spans(self, gap: float) -> list[tuple[float, float]]:
        """The stretches of the source to decode: the kept ranges, joined where at most
        ``gap`` seconds lie between them (decoding on is then cheaper than a seek)."""
        spans = [self.ranges[0]]
        for start, end in self.ranges[1:]:
            if start - spans[-1][1] <= gap:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
        return spans


def atempo_chain(speed: float) -> list[float]:
    """Factors for consecutive ``atempo`` filters whose product is ``speed``, each in [0.5, 2]."""
    factors: list[float] = []
    while speed > ATEMPO_MAX:
        factors.append(ATEMPO_MAX)
        speed /= ATEMPO_MAX
    while speed < ATEMPO_MIN:
        factors.append(ATEMPO_MIN)
        speed /= ATEMPO_MIN
    if not math.isclose(speed, 1.0, abs_tol=1e-9) or not factors:
        factors.append(speed)
    return factors


def even(value: float) -> int:
    """The nearest even integer to ``value`` (halves round up), at least 2."""
    return max(2, math.floor(value / 2.0 + 0.5) * 2)


def build_plan(edits: list[dict[str, Any]], *, duration: float, width: int, height: int) -> RenderPlan:
    """Reduce ``edits`` to a :class:`RenderPlan` for a source of the given duration and displayed size.

    Raises :class:`InvalidRequest` naming the edit index and field when an edit does not fit
    the source, or when the edits leave nothing to render.
    """
    if duration <= 0:
        raise InvalidRequest("The video has no duration to edit")
    keep: list[tuple[float, float]] = [(0.0, duration)]
    speed = 1.0
    gain = 1.0
    fades: dict[str, tuple[int, float]] = {}
    geometry: list[Scale | Crop] = []
    cur_w, cur_h = width, height

    for index, edit in enumerate(edits):
        kind = edit.get("type")
        if kind in ("trim", "cut"):
            start, end = _range(edit, index, duration)
            keep = _intersect(keep, start, end) if kind == "trim" else _subtract(keep, start, end)
        elif kind == "split":
            at = _number(edit, index, "at")
            if not 0 <= at <= duration + END_TOLERANCE:
                raise _bad(index, "at", f"{at:g} s is outside the video (0 to {duration:.3f} s)")
        elif kind == "speed":
            speed *= _number(edit, index, "factor", low=0.25, high=4.0)
        elif kind == "volume":
            gain *= _number(edit, index, "gain", low=0.0, high=4.0)
        elif kind == "fade":
            for field in ("in", "out"):
                if edit.get(field) is not None:
                    fades[field] = (index, _number(edit, index, field, low=0.0))
        elif kind == "scale":
            step = _scale(edit, index, cur_w, cur_h)
            geometry.append(step)
            cur_w, cur_h = step.width, step.height
        elif kind == "crop":
            crop = _crop(edit, index, cur_w, cur_h)
            geometry.append(crop)
            cur_w, cur_h = crop.width, crop.height
        else:
            raise _bad(index, "type", f"unknown edit type {kind!r}")

    ranges = tuple((s, e) for s, e in keep if e - s >= MIN_RANGE)
    if not ranges:
        raise InvalidRequest("The edits leave nothing of the video to render")
    if cur_w % 2 or cur_h % 2:
        # An odd source with no resize: drop the last column/row rather than fail in x264.
        crop = Crop(0, 0, cur_w - cur_w % 2, cur_h - cur_h % 2)
        geometry.append(crop)
        cur_w, cur_h = crop.width, crop.height
    out_duration = sum(e - s for s, e in ranges) / speed
    fade_in = fade_out = 0.0
    for field, (index, seconds) in fades.items():
        if seconds > out_duration + END_TOLERANCE:
            raise _bad(index, field, f"a {seconds:g} s fade is longer than the result ({out_duration:.3f} s)")
        if field == "in":
            fade_in = min(seconds, out_duration)
        else:
            fade_out = min(seconds, out_duration)
    return RenderPlan(ranges=ranges, speed=speed, fade_in=fade_in, fade_out=fade_out, gain=gain,
                      geometry=tuple(geometry), width=cur_w, height=cur_h, duration=out_duration)


def plan_for(edits: list[dict[str, Any]], info: dict[str, Any]) -> RenderPlan:
    """:func:`build_plan` against the source ``info`` describes (core.media.probe: its
    duration and its displayed size)."""
    return build_plan(edits, duration=float(info["duration"]), width=info["display_width"],
                      height=info["display_height"])


def _bad(index: int, field: str, reason: str) -> InvalidRequest:
    return InvalidRequest(f"Edit {index}: field '{field}' is invalid: {reason}")


def _number(edit: dict[str, Any], index: int, field: str, *, low: float | None = None,
            high: float | None = None) -> float:
    value = edit.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(index, field, "a finite number is required")
    if low is not None and value < low:
        raise _bad(index, field, f"{value:g} is below {low:g}")
    if high is not None and value > high:
        raise _bad(index, field, f"{value:g} is above {high:g}")
    return float(value)


def _range(edit: dict[str, Any], index: int, duration: float) -> tuple[float, float]:
    start = _number(edit, index, "start", low=0.0)
    end = _number(edit, index, "end", low=0.0)
    if start >= duration:
        raise _bad(index, "start", f"{start:g} s is past the end of the video ({duration:.3f} s)")
    if end > duration + END_TOLERANCE:
        raise _bad(index, "end", f"{end:g} s is past the end of the video ({duration:.3f} s)")
    if end <= start:
        raise _bad(index, "end", f"{end:g} s is not after start ({start:g} s)")
    return start, min(end, duration)


def _intersect(keep: list[tuple[float, float]], start: float, end: float) -> list[tuple[float, float]]:
    return [(max(s, start), min(e, end)) for s, e in keep if min(e, end) > max(s, start)]


def _subtract(keep: list[tuple[float, float]], start: float, end: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in keep:
        if s < start:
            out.append((s, min(e, start)))
        if e > end:
            out.append((max(s, end), e))
    return out


def _scale(edit: dict[str, Any], index: int, cur_w: int, cur_h: int) -> Scale:
    w = _number(edit, index, "width")
    h = _number(edit, index, "height")
    for field, value in (("width", w), ("height", h)):
        if value != -1 and value < 2:
            raise _bad(index, field, f"{value:g} is neither -1 nor a size of at least 2 pixels")
    if w == -1 and h == -1:
        return Scale(even(cur_w), even(cur_h))
    if w == -1:
        return Scale(even(cur_w * h / cur_h), even(h))
    if h == -1:
        return Scale(even(w), even(cur_h * w / cur_w))
    return Scale(even(w), even(h))


def _crop(edit: dict[str, Any], index: int, cur_w: int, cur_h: int) -> Crop:
    x = _number(edit, index, "x", low=0.0)
    y = _number(edit, index, "y", low=0.0)
    w = _number(edit, index, "width", low=2.0)
    h = _number(edit, index, "height", low=2.0)
    if x + w > cur_w:
        raise _bad(index, "width", f"x + width ({x + w:g}) is wider than the picture ({cur_w})")
    if y + h > cur_h:
        raise _bad(index, "height", f"y + height ({y + h:g}) is taller than the picture ({cur_h})")
    # Round the size down to even so the rectangle never grows past the frame.
    return Crop(int(x), int(y), int(w) - int(w) % 2, int(h) - int(h) % 2)
