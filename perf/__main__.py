"""``python -m perf <scenario> [options]``: the load harness's one entry point."""

from __future__ import annotations

import importlib
import sys

SCENARIOS = {  # name -> "module" (its main) or "module:function"
    "http-crud": "perf.http_crud",
    "ws-fanout": "perf.ws_bench",
    "ws-rtt": "perf.ws_bench:rtt_main",
    "ws-floor": "perf.ws_floor",
    "cache": "perf.cache_bench",
    "jobs": "perf.jobs_bench",
    "upload": "perf.upload_bench",
    "media": "perf.media_bench",
    "render": "perf.render_bench",
    "smart-render": "perf.smart_bench",
    "chunk-render": "perf.chunk_bench",
    "ingest": "perf.ingest_bench",
    "mixed": "perf.mixed",
    "soak": "perf.soak",
    "cluster": "perf.cluster",
    "webhooks": "perf.webhooks_bench",
    "scale": "perf.scale_bench",
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in SCENARIOS:
        print("usage: python -m perf <scenario> [--help]\nscenarios: " + ", ".join(sorted(SCENARIOS)))
        raise SystemExit(2)
    module, _, function = SCENARIOS[sys.argv[1]].partition(":")
    getattr(importlib.import_module(module), function or "main")(sys.argv[2:])


if __name__ == "__main__":
    main()
