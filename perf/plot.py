"""The one PNG every perf scenario draws with ``--plot``: latency CDFs, and throughput over time.

matplotlib is imported here, and this module only when ``--plot`` is given, so the harness
runs without it (it is the optional ``perf`` extra).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def plot(path: Path, title: str, cdfs: Mapping[str, Sequence[float]],
         events: Mapping[str, Sequence[float]] | None = None, bin_s: float = 0.25) -> None:
    """Write ``path``: one CDF curve per ``cdfs`` entry (latencies in seconds, drawn in ms on a
    log axis) and, when ``events`` is given, one throughput curve per entry (completion
    timestamps in seconds on one clock, binned by ``bin_s`` and drawn as events per second
    from the first event of any series)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    panels = 2 if events else 1
    figure, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.5), squeeze=False)
    cdf = axes[0][0]
    for label, values in cdfs.items():
        ordered = sorted(v * 1000 for v in values)
        if ordered:
            cdf.step(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], where="post",
                     label=f"{label} (n={len(ordered)})")
    cdf.set_xscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    cdf.xaxis.set_major_formatter(plain)
    low, high = cdf.get_xlim()
    if high < 10 * low:
        cdf.xaxis.set_minor_formatter(plain)  # less than a decade has few major ticks, if any
    cdf.set_xlabel("latency (ms, log)")
    cdf.set_ylabel("fraction of samples <= x")
    cdf.set_ylim(0, 1.01)
    cdf.grid(True, which="both", alpha=0.3)
    cdf.legend(fontsize="small")
    cdf.set_title("latency CDF")
    if events:
        rate = axes[0][1]
        start = min((min(times) for times in events.values() if times), default=0.0)
        peaks = []
        for label, times in events.items():
            if not times:
                continue
            bins = [0] * (int((max(times) - start) / bin_s) + 1)
            for at in times:
                bins[int((at - start) / bin_s)] += 1
            rate.plot([(i + 0.5) * bin_s for i in range(len(bins))], [n / bin_s for n in bins], label=label)
            peaks.append(max(bins) / bin_s)
        if peaks and max(peaks) > 20 * min(peaks):
            rate.set_yscale("symlog", linthresh=1)  # so that a slow series (jobs) shows beside a fast one
        rate.set_xlabel("time (s)")
        rate.set_ylabel("per second")
        rate.grid(True, alpha=0.3)
        rate.legend(fontsize="small")
        rate.set_title(f"throughput over time ({bin_s:g} s bins)")
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
