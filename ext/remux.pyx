"""The per-packet loops of stream copy: keyframe scanning, windowing with timestamp
rebasing, and muxing with throttled progress.

These are the only parts of a copy trim / split that run Python code per packet (FFmpeg
does the rest). Timestamps stay integers in each input stream's own time base; a packet
is only converted to seconds once, for progress and ordering.

- ``scan_video(packets, index, until)``: keyframes and frame times of one video stream.
- ``Track(out, start, end, origin, seconds, video)``: what to copy from one input stream.
- ``copy_packets(packets, tracks)``: yields ``(output_seconds, packet)`` re-timed for
  the output, stopping once every track has passed its end.
- ``mux_packets(output, timed_packets, throttle, offset=0.0)``: muxes them, reporting
  ``offset + output_seconds`` to an ``ext.progress.Throttle`` (which also cancels).

Written in Cython's pure-Python syntax so that ``perf/media_bench.py`` can also run this
very file as plain Python and show what compiling it gains.
"""

import cython


@cython.cclass
class Track:
    """Which packets of one input stream to copy into which output stream, and how.

    A packet is kept when ``pts >= start``; the track stops (and never keeps another
    packet) at the first packet with ``pts >= end`` for audio, and for video at the
    first packet with ``dts >= end`` or a keyframe with ``pts >= end``. Video stops by
    decode order, so that a B-frame shown before ``end`` keeps the later reference
    frame it is predicted from; when ``end`` is a keyframe, the track ends exactly at
    the GOP boundary. Kept packets are shifted by ``origin`` (pts and dts alike).
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
    stop: cython.bint
    open_tracks: cython.Py_ssize_t = len(tracks)
    for packet in packets:
        found = tracks.get(packet.stream_index)
        if found is None:
            continue
        track = found
        if track.done:
            continue
        value = packet.pts
        if value is None:  # the demuxer's empty end-of-stream packets
            continue
        pts = value
        value = packet.dts
        dts = pts if value is None else value
        if track.video:
            stop = dts >= track.end or (pts >= track.end and packet.is_keyframe)
        else:
            stop = pts >= track.end
        if stop:
            track.done = True
            open_tracks -= 1
            if open_tracks == 0:
                return
            continue
        if pts < track.start:
            continue
        packet.pts = pts - track.origin
        packet.dts = dts - track.origin
        packet.stream = track.out
        track.packets += 1
        if pts < track.first_pts:
            track.first_pts = pts
        if pts + packet.duration > track.end_pts:
            track.end_pts = pts + packet.duration
        yield (pts - track.origin) * track.seconds, packet


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
    """Read the packets of video stream ``index`` up to the first one with ``dts > until``.

    Returns ``(keyframes, frames, end, reached)``: the keyframes as ``(pts, dts)`` pairs
    and the pts of all frames seen, both sorted by pts, the end (pts + duration) of the latest frame, and whether a
    packet past ``until`` was seen (False: the stream ended first).
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
        dts = pts if value is None else value
        if dts > until:
            reached = True
            break
        frames.append(pts)
        if packet.is_keyframe:
            keyframes.append((pts, dts))
        if pts + packet.duration > end:
            end = pts + packet.duration
    keyframes.sort()
    frames.sort()
    return keyframes, frames, end, reached
