"""The per-packet loops of stream copy: keyframe scanning, windowing with timestamp
rebasing, and muxing with throttled progress.

These are the only parts of a copy trim / split that run Python code per packet (FFmpeg
does the rest). Timestamps stay integers in each input stream's own time base; a packet
is only converted to seconds once, for progress and ordering.

- ``scan_video(packets, index, until)``: keyframes and frame times of one video stream.
- ``Origin``: finds the first presented frame of a video stream from its first packets.
- ``index_packets(packets, video, audio)``: what a whole file holds, packet by packet.
- ``Track(out, start, end, origin, seconds, video)``: what to copy from one input stream.
- ``video_stop(packets, index, track)``: where a video Track's copy will end, read ahead.
- ``copy_packets(packets, tracks)``: yields ``(output_seconds, packet)`` re-timed for
  the output, stopping once every track has passed its end.
- ``mux_packets(output, timed_packets, throttle, offset=0.0)``: muxes them, reporting
  ``offset + output_seconds`` to an ``ext.progress.Throttle`` (which also cancels).

A packet without a decode time (Matroska stores presentation times only; FFmpeg leaves
the dts of the first packets of a B-frame stream unset) is held back by ``copy_packets``
until a packet with one arrives, and given decode times that fit between its neighbours:
MP4 needs one on every packet, increasing.

Written in Cython's pure-Python syntax so that ``perf/media_bench.py`` can also run this
very file as plain Python and show what compiling it gains.
"""

import cython


@cython.ccall
def presented_at(packet) -> object:
    """A packet's presentation time: its pts, else its dts (AVI gives only that), else None
    (the demuxer's empty end-of-stream packets)."""
    value = packet.pts
    return packet.dts if value is None else value


@cython.cclass
class Track:
    """Which packets of one input stream to copy into which output stream, and how.

    A packet is kept when ``pts >= start``; the track stops (and never keeps another
    packet) at the first packet with ``pts >= end`` for audio, and for video at the
    first keyframe with ``pts >= end``, or the first packet with ``pts >= end`` that is
    shown after every packet kept so far (the next reference frame in decode order: the
    B-frames shown before it have all been read) once the frames kept reach ``end``. A reference frame shown past ``end`` is
    kept while frames shown before ``end`` are still to come (the B-frames that follow
    it in decode order), so the copied frames are shown without a hole and stop within
    a frame of ``end``; when ``end`` is a keyframe, the track ends exactly at the GOP
    boundary.
    Decode times are not needed (Matroska has none on some packets). Kept packets are
    shifted by ``origin`` (pts and dts alike).
    ``seconds`` is the length of one tick of the input time base.
    """

    out = cython.declare(object, visibility="public")
    start = cython.declare(cython.longlong, visibility="public")
    end = cython.declare(cython.longlong, visibility="public")
    origin = cython.declare(cython.longlong, visibility="public")
    seconds = cython.declare(cython.double, visibility="public")
    video = cython.declare(cython.bint, visibility="public")
    done = cython.declare(cython.bint, visibility="public")
    packets = cython.declare(cython.longlong, visibility="public")
    first_pts = cython.declare(cython.longlong, visibility="public")
    end_pts = cython.declare(cython.longlong, visibility="public")
    last_dts = cython.declare(cython.longlong)
    last_pts = cython.declare(cython.longlong)
    shown_end = cython.declare(cython.longlong)
    kept = cython.declare(cython.bint)
    has_dts = cython.declare(cython.bint)
    pending = cython.declare(list)

    def __init__(self, out, start: cython.longlong, end: cython.longlong,
                 origin: cython.longlong, seconds: cython.double, video: cython.bint):
        self.out = out
        self.start = start
        self.end = end
        self.origin = origin
        self.seconds = seconds
        self.video = video
        self.done = False
        self.packets = 0
        self.first_pts = end
        self.end_pts = start
        self.has_dts = False
        self.last_dts = 0
        self.last_pts = start
        self.shown_end = start
        self.kept = False
        self.pending = []

    @cython.ccall
    def stops(self, pts: cython.longlong, keyframe: cython.bint) -> cython.bint:
        """Whether a packet presented at ``pts`` ends the track (see the class)."""
        if pts < self.end:
            return False
        if not self.video or not self.kept or keyframe:
            return True
        return pts > self.last_pts and self.shown_end >= self.end

    @cython.ccall
    def accept(self, pts: cython.longlong, duration: cython.longlong) -> cython.void:
        """Note a kept packet's ``pts`` and ``duration``."""
        if not self.kept or pts > self.last_pts:
            self.last_pts = pts
        if not self.kept or pts + duration > self.shown_end:
            self.shown_end = pts + duration
        self.kept = True

    @property
    def span(self) -> tuple:
        """(first kept pts, end of the last kept packet) in seconds of the input."""
        return self.first_pts * self.seconds, self.end_pts * self.seconds


def copy_packets(packets, tracks: dict):
    """Yield ``(output_seconds, packet)`` for every packet the tracks keep, re-timed.

    ``packets`` is a demux iterator; ``tracks`` maps an input stream index to its Track.
    The packet's stream becomes the track's output stream; its time base stays the
    input's, which the muxer rescales.
    """
    track: Track
    pts: cython.longlong
    dts: cython.longlong
    known: cython.bint
    open_tracks: cython.Py_ssize_t = len(tracks)
    for packet in packets:
        found = tracks.get(packet.stream_index)
        if found is None:
            continue
        track = found
        if track.done:
            continue
        value = presented_at(packet)
        if value is None:
            continue
        pts = value
        value = packet.dts
        known = value is not None
        dts = value if known else pts
        if track.stops(pts, packet.is_keyframe):
            yield from _release(track, 0, False)
            track.done = True
            open_tracks -= 1
            if open_tracks == 0:
                return
            continue
        if pts < track.start:
            continue
        track.accept(pts, packet.duration)
        packet.pts = pts
        if not known:
            track.pending.append(packet)
            continue
        yield from _release(track, dts, True)
        yield _kept(track, packet, pts, dts)
    for found in tracks.values():
        yield from _release(found, 0, False)


def _release(track: Track, next_dts: cython.longlong, bounded: cython.bint):
    """Yield the packets ``track`` held back for want of a dts, with decode times that
    increase from the last one given up to ``next_dts`` (when ``bounded``)."""
    pending: list = track.pending
    count: cython.Py_ssize_t = len(pending)
    i: cython.Py_ssize_t
    step: cython.longlong
    dts: cython.longlong
    if count == 0:
        return
    track.pending = []
    for i in range(count):
        packet = pending[i]
        step = packet.duration if packet.duration > 0 else 1
        if track.has_dts and bounded:
            dts = track.last_dts + (next_dts - track.last_dts) * (i + 1) // (count + 1)
        elif bounded:
            dts = next_dts - (count - i) * step
        elif track.has_dts:
            dts = track.last_dts + step
        else:
            dts = min([p.pts for p in pending]) - (count - i)
        yield _kept(track, packet, packet.pts, dts)


def _kept(track: Track, packet, pts: cython.longlong, dts: cython.longlong) -> tuple:
    """``packet`` re-timed into ``track``'s output, counted; ``(output_seconds, packet)``."""
    track.has_dts = True
    track.last_dts = dts
    packet.pts = pts - track.origin
    packet.dts = dts - track.origin
    packet.stream = track.out
    track.packets += 1
    if pts < track.first_pts:
        track.first_pts = pts
    if pts + packet.duration > track.end_pts:
        track.end_pts = pts + packet.duration
    return (pts - track.origin) * track.seconds, packet


def video_stop(packets, index: cython.Py_ssize_t, track: Track) -> cython.longlong:
    """Where ``track`` (a video Track) will stop showing frames: the end (pts + duration)
    of the latest frame it keeps, read from ``packets`` (demuxed from a keyframe at or
    before its ``end``) without keeping any. Lets a copy end its audio with its video.
    """
    pts: cython.longlong
    for packet in packets:
        if packet.stream_index != index:
            continue
        value = presented_at(packet)
        if value is None:
            continue
        pts = value
        if track.stops(pts, packet.is_keyframe):
            break
        if pts >= track.start:
            track.accept(pts, packet.duration)
    return max(track.shown_end, track.end)


def mux_packets(output, timed_packets, throttle, offset: cython.double = 0.0) -> cython.longlong:
    """Mux ``(output_seconds, packet)`` pairs in order; return how many were muxed.

    The throttle sees ``offset + output_seconds`` after each packet (``offset`` places
    this file inside a larger job, e.g. the second part of a split) and raises
    Cancelled when the caller cancels.
    """
    count: cython.longlong = 0
    mux = output.mux_one
    update = throttle.update
    for position, packet in timed_packets:
        mux(packet)
        count += 1
        update(offset + position)
    return count


def scan_video(packets, index: cython.Py_ssize_t, until: cython.longlong) -> tuple:
    """Read the packets of video stream ``index`` up to the first one decoded after ``until``.

    Returns ``(keyframes, frames, end, reached)``: the keyframes as ``(pts, dts)`` pairs
    and the pts of all frames seen, both sorted by pts, the end (pts + duration) of the latest frame, and whether a
    packet past ``until`` was seen (False: the stream ended first). A packet without a
    dts is past ``until`` only if it is a keyframe presented after it.
    """
    keyframes: list = []
    frames: list = []
    pts: cython.longlong
    dts: cython.longlong
    end: cython.longlong = -(1 << 62)
    reached: cython.bint = False
    for packet in packets:
        if packet.stream_index != index:
            continue
        value = packet.pts
        if value is None:
            continue
        pts = value
        value = packet.dts
        if (value is not None and value > until) or (value is None and packet.is_keyframe and pts > until):
            reached = True
            break
        dts = pts if value is None else value
        frames.append(pts)
        if packet.is_keyframe:
            keyframes.append((pts, dts))
        if pts + packet.duration > end:
            end = pts + packet.duration
    keyframes.sort()
    frames.sort()
    return keyframes, frames, end, reached


ORIGIN_WINDOW = 32
"""Packets after the first keyframe whose presentation times are compared: more than any
B-frame pyramid delays a frame (H.264 and HEVC reorder at most 16)."""


@cython.cclass
class Origin:
    """The pts of the first presented frame of a video stream, fed its packets in decode order.

    Packets before the first keyframe cannot be decoded (a stream cut mid-GOP, as a
    broadcast capture is) and are not shown; from the first keyframe on, the smallest pts
    among the next ``ORIGIN_WINDOW`` packets is the first frame a player shows. ``value``
    is None until a keyframe was fed.
    """

    value = cython.declare(object, visibility="public")
    seen = cython.declare(cython.Py_ssize_t, visibility="public")

    def __init__(self):
        self.value = None
        self.seen = 0

    def feed(self, pts, keyframe: cython.bint) -> None:
        if pts is None or self.seen >= ORIGIN_WINDOW or (self.value is None and not keyframe):
            return
        self.seen += 1
        if self.value is None or pts < self.value:
            self.value = pts


def index_packets(packets, video: cython.Py_ssize_t, audio: cython.Py_ssize_t) -> dict:
    """Read every packet of video stream ``video`` and audio stream ``audio`` (-1: none).

    Returns, in ticks of each stream's time base: ``origin`` (the first presented video
    frame, see :class:`Origin`), ``video_end`` (the latest pts + duration), ``keyframes``
    (keyframe pts, sorted), ``frames`` (video pts, sorted), ``audio_start``/``audio_end``
    (None without audio packets), and ``error`` (the exception that stopped the read
    early, else None: a damaged tail ends the file there).
    """
    origin = Origin()
    keyframes: list = []
    frames: list = []
    pts: cython.longlong
    end: cython.longlong
    video_end: cython.longlong = -(1 << 62)
    audio_start: cython.longlong = 1 << 62
    audio_end: cython.longlong = -(1 << 62)
    error = None
    try:
        for packet in packets:
            value = presented_at(packet)
            if value is None:
                continue
            pts = value
            end = pts + packet.duration
            if packet.stream_index == video:
                origin.feed(pts, packet.is_keyframe)
                frames.append(pts)
                if packet.is_keyframe:
                    keyframes.append(pts)
                if end > video_end:
                    video_end = end
            elif packet.stream_index == audio:
                if pts < audio_start:
                    audio_start = pts
                if end > audio_end:
                    audio_end = end
    except Exception as failure:  # FFmpeg's read error on a damaged tail: the data ends there
        error = failure
    keyframes.sort()
    frames.sort()
    has_audio: cython.bint = audio_end > -(1 << 62)
    return {"origin": origin.value, "video_end": video_end if frames else None, "keyframes": keyframes,
            "frames": frames, "audio_start": audio_start if has_audio else None,
            "audio_end": audio_end if has_audio else None, "error": error}
