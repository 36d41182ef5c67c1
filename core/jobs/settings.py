"""JobSettings: the knobs of the job queue and its worker processes.

They travel to worker processes through the environment (:meth:`JobSettings.to_env`),
so a supervisor and the workers it spawns always agree, and ``nve worker`` on another
machine reads the same variables.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping


def default_codec_threads() -> int:
    """All cores but one for codecs, so the server's event loop keeps a core (docs/MEDIA.md)."""
    return max(1, (os.cpu_count() or 2) - 1)


@dataclasses.dataclass(frozen=True, slots=True)
class JobSettings:
    lease_seconds: float = 30.0
    """How long a claim holds without a heartbeat; a killed worker's job is requeued after it."""
    poll_interval: float = 2.0
    """Idle workers look for work (and expired leases) this often even without a NOTIFY."""
    max_attempts: int = 3
    """Claims a job gets before a lost lease fails it (a graceful hand-back does not count)."""
    progress_interval: float = 0.2
    """Least time between two progress writes of one job to its row (and so to clients)."""
    job_timeout: float = 4 * 3600.0
    """Longest run of one attempt; past it the job fails instead of holding a worker forever."""
    nice: int = 10
    """Added to the worker processes' niceness: media work yields the CPU to the server."""
    codec_threads: int = dataclasses.field(default_factory=default_codec_threads)
    render_chunk_seconds: float = 30.0
    """Output seconds per chunk of a full-re-encode ``process`` job spread over the workers
    (core/jobs/worker.py); 0 never chunks. Chunks start at source keyframes, so each is this
    long plus up to a GOP; a render shorter than two chunks runs in one piece.

    Why 30 s: each chunk pays fixed costs the single render does not: a job row claimed and
    polled, a decoder opened and sought, an encoder started (x264's lookahead refills, so a
    chunk's first frames encode slower), the frame that closes it decoded from the next
    chunk's keyframe, and a piece joined by stream copy (a few ms). Against 30 s of encoding
    that is a few percent; and a ten-minute render still makes twenty chunks, enough for
    every worker of a small cluster. Chunks of a few GOPs let the per-chunk costs dominate
    and gain nothing once there are more chunks than free workers (docs/DEPLOYMENT.md,
    "Distributed rendering": the measured overhead and the model for N machines).
    """

    @property
    def heartbeat_interval(self) -> float:
        return self.lease_seconds / 3

    _ENV = {"lease_seconds": ("NVE_JOB_LEASE", float), "poll_interval": ("NVE_JOB_POLL", float),
            "max_attempts": ("NVE_JOB_MAX_ATTEMPTS", int),
            "progress_interval": ("NVE_JOB_PROGRESS_INTERVAL", float),
            "job_timeout": ("NVE_JOB_TIMEOUT", float),
            "nice": ("NVE_WORKER_NICE", int), "codec_threads": ("NVE_CODEC_THREADS", int),
            "render_chunk_seconds": ("NVE_RENDER_CHUNK_SECONDS", float)}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JobSettings:
        env = os.environ if env is None else env
        values = {field: kind(env[name]) for field, (name, kind) in cls._ENV.items() if name in env}
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        return {name: str(getattr(self, field)) for field, (name, _) in self._ENV.items()}
