"""Percentiles and table printing shared by every perf scenario."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def summarize(latencies: list[float]) -> dict[str, float]:
    """p50 / p99 / max in milliseconds."""
    ordered = sorted(latencies)
    return {"p50_ms": percentile(ordered, 0.50) * 1000, "p99_ms": percentile(ordered, 0.99) * 1000,
            "max_ms": (ordered[-1] * 1000) if ordered else float("nan")}


def print_table(rows: list[dict[str, object]], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(_fmt(row.get(c)).ljust(widths[c]) for c in columns))


def write_json(path: Path | None, payload: object) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 100 else f"{value:.2f}"
    return "" if value is None else str(value)
