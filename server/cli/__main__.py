"""``python -m server.cli``: the ``nve`` command (perf/ and tests start nodes this way)."""

from server.cli import main

raise SystemExit(main())
