"""The web UI reads only fields that job messages have (core/jobs/messages.py).

The browser code is not typed against the Python definition, so this test reads it. Each
place that receives WebSocket job messages is named below by its method; in that method,
every ``data.<field>`` / ``detail.<field>`` (optional chaining included) is a read of the
message kind named by the nearest message-type string before it (``type === "progress"``,
``on("complete", ...)``): it must be a field of that kind. A read before any such string
applies to every kind, so it must be a field they all have (``operationId``).

Deliberately simple: a regular expression and brace matching, no JavaScript parser. What it
cannot follow (destructuring, a handler moved to a method not listed here) makes it fail
loudly rather than pass quietly: each listed method must exist and read job fields.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.jobs.messages import FIELDS

JS = Path(__file__).resolve().parents[2] / "server" / "static" / "js"

READERS = [
    ("jobs.js", "handle"),        # the jobs panel: every job message, by type
    ("nve-ws.js", "_dispatch"),   # the socket client: tells job errors from protocol errors
    ("preview.js", "start"),      # the editor's preview: its ingest job's messages
]

CONNECTION_KINDS = frozenset({"ping", "pong", "authenticated"})
"""Section 3's other server messages (server/ws/messages.py): not job messages, not checked here."""

_KIND = re.compile(r'"(' + "|".join(sorted(CONNECTION_KINDS | FIELDS.keys())) + r')"')
_READ = re.compile(r"\b(?:data|detail)\??\.([A-Za-z_$][\w$]*)")


def method_body(source: str, name: str) -> str:
    """The text of method ``name`` (a line ``name(...) {``) up to its matching brace."""
    match = re.search(rf"^\s*(?:async\s+)?{re.escape(name)}\(.*\)\s*\{{\s*$", source, re.MULTILINE)
    assert match is not None, f"method {name}() not found"
    depth = 0
    for index in range(match.end() - 1, len(source)):
        depth += {"{": 1, "}": -1}.get(source[index], 0)
        if depth == 0:
            return source[match.start():index + 1]
    raise AssertionError(f"method {name}() never ends")


def job_reads(code: str) -> list[tuple[str | None, str]]:
    """(kind, field) of each job message field read in ``code``; kind None: before any kind is named."""
    reads = []
    for read in _READ.finditer(code):
        kinds = _KIND.findall(code, 0, read.start())
        kind = kinds[-1] if kinds else None
        if kind not in CONNECTION_KINDS:
            reads.append((kind, read.group(1)))
    return reads


def unknown(reads: list[tuple[str | None, str]]) -> list[tuple[str | None, str]]:
    common = frozenset.intersection(*FIELDS.values())
    return [(kind, field) for kind, field in reads if field not in (FIELDS[kind] if kind else common)]


@pytest.mark.parametrize("filename, method", READERS)
def test_the_ui_reads_only_fields_of_the_definition(filename: str, method: str) -> None:
    reads = job_reads(method_body((JS / filename).read_text(encoding="utf-8"), method))
    assert reads, f"{filename} {method}() reads no job message field: has the handler moved?"
    assert unknown(reads) == [], f"{filename} {method}() reads fields job messages do not have"


def test_the_check_catches_a_misread_field() -> None:
    code = """
      handle({ type, data }) {
        if (!data?.operationId) return;
        if (type === "progress") show(data.percent, data?.message);
        else if (type === "complete") show(data.progress, data.result?.url);
        else if (type === "ping") note(data.timestamp);
        else if (type === "error") fail(data.error, data.status);
      }
    """
    reads = job_reads(method_body(code, "handle"))
    assert ("progress", "message") in reads and ("complete", "result") in reads
    assert unknown(reads) == [("progress", "percent"), ("complete", "progress"), ("error", "status")]
