"""Schemathesis over every operation of /api/openapi.json against a real server.

Each operation gets Schemathesis's examples, coverage and fuzzing phases, positive and
negative data, and every check: no 5xx, every status documented, every body, header and
content type as documented, schema-valid requests accepted and schema-violating ones
rejected. The run is bounded (schemathesis_setup.MAX_EXAMPLES fuzzed cases per operation,
a fixed seed) and excludes no operation.

Where the document cannot state a rule, a check is told which extra answers are right,
with the reason next to it (``OPERATIONS``). What random data cannot reach (a real video,
a project or job that exists) is in test_positive_cases.py.
"""

from __future__ import annotations

import json
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, settings

from server.routes import document
from tests.hostile.conftest import ThreadedServer
from tests.hostile.schemathesis_setup import load_schema

# Schemathesis's own defaults for the two checks, which the overrides below extend.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "5xx"]


def _accepting(*statuses: str) -> dict[str, object]:
    """Checks config: positive (schema-valid) data may also be answered ``statuses``."""
    return {"positive_data_acceptance": {
        "expected-statuses": [*ACCEPTED, *statuses]}}


OPERATIONS: list[dict[str, object]] = [
    # Random bytes are a schema-valid `binary`, but not a video: 415 (unknown format) or 422.
    {"include-name": "POST /api/upload", "checks": _accepting("415", "422")},
    # A cursor is opaque: only one this server issued decodes, any other string is a 400.
    {"include-name": "GET /api/projects", "checks": _accepting("400")},
    # Upload-Metadata values must be base64 of UTF-8 with unique keys (400), and a
    # filetype that is not video/* is refused (415): not expressible for one header.
    {"include-name-regex": "^POST /api/uploads/?$", "checks": _accepting("400", "415")},
    # A webhook URL is taken only when its host resolves, and only to public addresses (SSRF):
    # no schema can say that, and generated hosts resolve nowhere (400, field url).
    {"include-name": "POST /api/webhooks", "checks": _accepting("400")},
    # The body's Content-Type is checked first: a PATCH that lacks Upload-Offset and has no
    # body is refused for the body (415), which is as right as a 400.
    {"include-name": "PATCH /api/uploads/{id}", "checks": {"missing_required_header": {
        "expected-statuses": ["400", "412", "415"]}}},
    # The handshake's answer is 101, which is neither an error nor a 2xx; a wrong Upgrade or
    # Sec-WebSocket-Version (a negative case) gets 426, as RFC 6455 section 4.2.2 says.
    {"include-name": "GET /ws", "checks": {
        **_accepting("101"), "not_a_server_error": {"expected-statuses": ["101", "2xx", "3xx", "4xx"]},
        "negative_data_rejection": {"expected-statuses": [*REJECTED, "426"]},
        "missing_required_header": {"expected-statuses": ["400", "426"]}}},
]

schema = load_schema(
    checks={
        # 412: tus's answer to a missing or wrong Tus-Resumable; 413: over a size limit.
        "negative_data_rejection": {"expected-statuses": [*REJECTED, "412", "413"]},
        # tus 1.0 answers a missing Tus-Resumable with 412, not 400.
        "missing_required_header": {"expected-statuses": ["400", "412"]},
    },
    operations=OPERATIONS,
)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _ordered(pair: dict[str, Any], low: str, high: str) -> None:
    """Make ``pair[high]`` greater than ``pair[low]`` when both are numbers, keeping their values."""
    if _number(pair.get(low)) and _number(pair.get(high)) and pair[high] <= pair[low]:
        pair[low], pair[high] = pair[high], pair[low] + 1 if pair[high] == pair[low] else pair[low]


def _follow_cross_field_rules(edits: object) -> None:
    for edit in edits if isinstance(edits, list) else []:
        if isinstance(edit, dict) and edit.get("type") in ("trim", "cut"):
            _ordered(edit, "start", "end")
        if isinstance(edit, dict) and edit.get("type") == "scale" and edit.get("width") == edit.get("height") == -1:
            edit["width"] = 1


@schema.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    """Bring generated bodies within the rules JSON Schema cannot state (a range's end after its start,
    scale not -1 by -1), so a schema-valid body the server refuses is still a failure. Values move
    only between the fields involved, so a negative case stays negative; Schemathesis revalidates."""
    body = case.body
    if isinstance(body, dict):
        _ordered(body, "startTime", "endTime")
        _follow_cross_field_rules(body.get("edits"))
        timeline = body.get("timelineState")
        if isinstance(timeline, dict):
            _follow_cross_field_rules(timeline.get("edits"))
    return case


@schema.parametrize()
# One server serves all of an operation's cases, as a deployment would: that is the point.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
def test_operation_conforms(case: schemathesis.Case, threaded_server: ThreadedServer) -> None:
    case.call_and_validate(base_url=threaded_server.base_url)


def test_the_served_document_is_the_tested_one_and_valid(threaded_server: ThreadedServer) -> None:
    """Schemathesis reads document() directly (it must be known at collection); the server serves the
    same, and it is valid OpenAPI 3.1 (Schemathesis checks it against the specification's schema)."""
    served = requests.get(f"{threaded_server.base_url}/api/openapi.json", timeout=10).json()
    assert served == json.loads(json.dumps(document()))
    schema.validate()
