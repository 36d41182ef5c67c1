# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Waveform peak reduction, compiled: the one per-sample loop of the timeline derivatives.

Decoded audio arrives as planar float32 frames (channels x samples). :class:`BlockPeaks`
streams them into the largest absolute sample of every ``block`` samples across all
channels (taking the max, not a mix, so channels in opposite phase do not cancel), and
:func:`reduce_peaks` folds those blocks into the number of peaks the timeline asked for.
Measured by perf/render_bench.py: plain Python manages ~4 M samples/s, numpy needs a
temporary array per step; this streams each frame once, in place.
"""

from array import array

from libc.math cimport fabsf


cdef inline float _larger(float a, float b) noexcept nogil:
    # A plain comparison compiles to one maxss; fmaxf's NaN rules make it a library call.
    return a if a > b else b


cdef inline float _max_abs(const float* values, Py_ssize_t count, float peak) noexcept nogil:
    """max(peak, |values[0..count)|), with four running maxima so the loop is not latency-bound."""
    cdef float m0 = peak, m1 = 0.0, m2 = 0.0, m3 = 0.0
    cdef Py_ssize_t i = 0
    while i + 4 <= count:
        m0 = _larger(fabsf(values[i]), m0)
        m1 = _larger(fabsf(values[i + 1]), m1)
        m2 = _larger(fabsf(values[i + 2]), m2)
        m3 = _larger(fabsf(values[i + 3]), m3)
        i += 4
    while i < count:
        m0 = _larger(fabsf(values[i]), m0)
        i += 1
    return _larger(_larger(m0, m1), _larger(m2, m3))


cdef class BlockPeaks:
    """The running max |sample| of consecutive ``block``-sample blocks of a planar stream."""

    cdef readonly Py_ssize_t block
    cdef float current
    cdef Py_ssize_t filled
    cdef object peaks

    def __init__(self, Py_ssize_t block=256):
        if block < 1:
            raise ValueError("block must be at least one sample")
        self.block = block
        self.current = 0.0
        self.filled = 0
        self.peaks = array("f")

    def feed(self, const float[:, ::1] samples):
        """Add one frame of planar samples, shape (channels, samples)."""
        cdef Py_ssize_t channels = samples.shape[0]
        cdef Py_ssize_t count = samples.shape[1]
        cdef Py_ssize_t pos = 0, take, c
        while pos < count:
            take = min(self.block - self.filled, count - pos)
            for c in range(channels):
                self.current = _max_abs(&samples[c, pos], take, self.current)
            self.filled += take
            pos += take
            if self.filled == self.block:
                self.peaks.append(self.current)
                self.current = 0.0
                self.filled = 0

    def finish(self):
        """The block peaks as an ``array('f')``, the last partial block included."""
        if self.filled:
            self.peaks.append(self.current)
            self.current = 0.0
            self.filled = 0
        return self.peaks


def reduce_peaks(const float[::1] blocks, Py_ssize_t buckets):
    """``buckets`` peaks in 0..1 from block peaks: bucket i is the max of its share of blocks.

    Bucket i covers blocks ``[i*n // buckets, (i+1)*n // buckets)`` (at least one block, so
    asking for more peaks than there are blocks repeats blocks rather than inventing zeros).
    Values above full scale are clipped to 1.0. No blocks give an empty list.
    """
    cdef Py_ssize_t n = blocks.shape[0]
    cdef Py_ssize_t i, j, lo, hi
    cdef float peak
    out = []
    if n == 0 or buckets <= 0:
        return out
    for i in range(buckets):
        lo = i * n // buckets
        hi = (i + 1) * n // buckets
        if hi <= lo:
            hi = lo + 1
        peak = 0.0
        for j in range(lo, hi):
            if blocks[j] > peak:
                peak = blocks[j]
        out.append(1.0 if peak > 1.0 else peak)
    return out
