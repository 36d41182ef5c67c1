"""The ``process`` operation: the smart render when the edits allow it, else the full render.

:func:`choose` decides cheaply, from the stored description, the edit plan and the
keyframe index (core.media.keyframes), without decoding anything:

- the full render (core.media.render) when an edit changes every frame's pixels or
  timing (speed, scale, crop), when the picture must be turned or squared (rotation,
  non-square pixels), when the source is not H.264 in an MP4-style (avcC) track in 4:2:0,
  or has a variable frame rate (see core.media.smartrender for why), or when too little
  would be copied: the frames to re-encode, estimated from the keyframe index, above
  ``MAX_REENCODED_SHARE`` of the output (a GOP longer than the kept pieces gains nothing);
- the smart render (core.media.smartrender) otherwise.

The estimate cannot see which keyframes are IDR frames (an open GOP's are not): the smart
render's exact plan re-checks the share and the full render runs instead when it is too
high. Either way the result says which path ran, why not the smart one, and how many
frames were re-encoded and copied.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.media.editplan import RenderPlan, plan_for
from core.media.keyframes import KeyframeIndex, keyframe_index
from core.media.probe import described, open_input
from core.media.render import Progress, render
from core.media.smartrender import NotWorthIt, smart_render
from ext.nal import avcc_length_size

MAX_REENCODED_SHARE = 0.5
# Frames after a range's last copied packet that are still re-encoded, on average: the
# copy stops at a mini-GOP's end (one to three B-frames), estimated without reading them.
TAIL_FRAMES = 2


@dataclass(frozen=True)
class Choice:
    """Which render ``process`` runs: ``path`` "smart" or "full", and ``reason`` (a
    sentence) why not smart, None when smart."""

    path: str
    reason: str | None = None


def _refusal(src: str | os.PathLike[str], info: dict[str, Any], plan: RenderPlan) -> str | None:
    """Why the edits of this source need the full render, None when nothing does."""
    if plan.speed != 1:
        return "A speed change retimes every frame."
    if plan.geometry:
        return "A scale or crop changes every frame's picture."
    if info["codec"] != "h264":
        return f"The source's video is {info['codec']}, not H.264."
    if info["pix_fmt"] != "yuv420p":
        return f"The source's pixel format is {info['pix_fmt']}, not yuv420p."
    if info["rotation"]:
        return "The source is rotated: the output is turned upright."
    if info["sample_aspect"] != "1:1":
        return "The source's pixels are not square: the output's are."
    if info["vfr"]:
        return "The source has a variable frame rate: the output's is made constant."
    with open_input(src) as container:
        if avcc_length_size(container.streams.video[0].codec_context.extradata) == 0:
            return "The source's H.264 is in Annex B form (an MPEG-TS), not an MP4-style track."
    return None


def estimate_reencoded(plan: RenderPlan, index: KeyframeIndex, fps: float) -> int:
    """Frames the smart render re-encodes, estimated from the keyframe index: for each kept
    range, those before its first keyframe (and after the fade-in) and a few at its end,
    the whole range when no keyframe falls in it; the faded frames."""
    frames = 0.0
    at = 0.0  # output second where the range starts
    fade_out = plan.duration - plan.fade_out
    for start, end in plan.ranges:
        length = end - start
        lo = start + max(0.0, plan.fade_in - at)  # where frames stop being faded in
        hi = end - max(0.0, at + length - fade_out) if plan.fade_out else end
        keys = index.within(lo, hi) if lo < hi else []
        if not keys:
            frames += length * fps
        else:
            frames += (keys[0] - start) * fps + min(TAIL_FRAMES, (hi - keys[0]) * fps) + (end - hi) * fps
        at += length
    return math.ceil(frames)


def choose(src: str | os.PathLike[str], edits: list[dict[str, Any]]) -> Choice:
    """The render ``process`` should run for ``edits`` of ``src`` (see the module docstring)."""
    info = described(src)
    plan = plan_for(edits, info)
    reason = _refusal(src, info, plan)
    if reason is not None:
        return Choice("full", reason)
    fps = float(info["fps"] or 25)
    total = max(1, round(plan.duration * fps))
    reencoded = estimate_reencoded(plan, keyframe_index(src), fps)
    if reencoded > MAX_REENCODED_SHARE * total:
        return Choice("full", f"Too little to gain: about {reencoded} of the {total} frames would be "
                              "re-encoded (keyframes too far apart for the kept pieces).")
    return Choice("smart")


def process(src: str | os.PathLike[str], dst: str | os.PathLike[str], edits: list[dict[str, Any]],
            progress: Progress | None = None, should_cancel: Callable[[], bool] | None = None, *,
            threads: int | None = None) -> dict[str, Any]:
    """Render ``edits`` of ``src`` into ``dst`` (H.264/AAC MP4), smart when :func:`choose` allows.

    Returns ``{"duration", "width", "height", "render": {"path", "reencodedFrames",
    "copiedFrames", "reason"?}}``; raises as :func:`core.media.render.render` does.
    """
    choice = choose(src, edits)
    reason = choice.reason
    if choice.path == "smart":
        try:
            done = smart_render(src, dst, edits, progress, should_cancel, max_share=MAX_REENCODED_SHARE,
                                threads=threads)
        except NotWorthIt as refused:
            reason = f"Too little to gain: {refused} (no IDR frame to splice at where one is needed)."
        else:
            return {"duration": done["duration"], "width": done["width"], "height": done["height"],
                    "render": {"path": "smart", "reencodedFrames": done["reencodedFrames"],
                               "copiedFrames": done["copiedFrames"]}}
    done = render(src, dst, edits, progress, should_cancel, threads=threads)
    return {"duration": done["duration"], "width": done["width"], "height": done["height"],
            "render": {"path": "full", "reencodedFrames": done["frames"], "copiedFrames": 0, "reason": reason}}
