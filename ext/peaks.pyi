"""Describes the compiled ext.peaks module (built from ext/peaks.pyx) for type checkers.

Only the names core/ and perf/ import are declared; change them with the .pyx.
"""

from array import array

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer, disjoint_base

@disjoint_base  # a cdef class: no second extension base beside it
class BlockPeaks:
    """The running max |sample| of consecutive ``block``-sample blocks of a planar stream."""

    @property
    def block(self) -> int: ...
    def __init__(self, block: int = 256) -> None: ...
    def feed(self, samples: npt.NDArray[np.float32] | Buffer) -> None:
        """``samples``: C-contiguous float32, shape (channels, samples)."""
    def finish(self) -> array[float]: ...

def reduce_peaks(blocks: array[float] | npt.NDArray[np.float32] | Buffer, buckets: int) -> list[float]:
    """``blocks``: C-contiguous float32, one dimension."""
