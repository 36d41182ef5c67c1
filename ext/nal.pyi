"""Describes the compiled ext.nal module (built from ext/nal.pyx) for type checkers.

Only the names core/ and perf/ import are declared; change them with the .pyx.
"""

from typing_extensions import Buffer

def annexb_to_length_prefixed(data: Buffer, length_size: int = 4) -> bytes: ...
def avcc_length_size(extradata: bytes | None) -> int: ...
def avcc_parameter_sets(extradata: bytes | None, length_size: int) -> bytes: ...
