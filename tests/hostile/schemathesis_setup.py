"""What the Schemathesis runs in this folder share: run size, seed, generation rules, tus bodies.

``NVE_SCHEMATHESIS_EXAMPLES`` and ``NVE_SCHEMATHESIS_SEED`` make a deeper or a different
run locally (``NVE_SCHEMATHESIS_EXAMPLES=500``); CI keeps the defaults, so it replays the
same bounded set of cases every time.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

from server.routes import document

MAX_EXAMPLES = int(os.environ.get("NVE_SCHEMATHESIS_EXAMPLES", "12"))
SEED = int(os.environ.get("NVE_SCHEMATHESIS_SEED", "20240608"))
GENERATION = {
    "max-examples": MAX_EXAMPLES,
    "mode": "all",  # positive and negative data
    # The server refuses U+0000 in every JSON string (PostgreSQL cannot store it), free-form
    # values included, which a schema cannot say for `additionalProperties`;
    # test_json_bodies.py sends it on purpose.
    "allow-x00": False,
    # Unknown headers and query parameters are ignored, as RFC 9110 section 5.1 says a
    # recipient must: sending them is no negative case.
    "allow-extra-parameters": False,
}

# tus PATCH bodies are raw bytes under a media type of their own: sent as octet-stream is.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


def load_schema(**config: Any) -> schemathesis.BaseSchema:
    """The server's OpenAPI document with this folder's settings plus ``config`` (schemathesis.toml keys)."""
    settings = schemathesis.Config.from_dict({"seed": SEED, "generation": GENERATION, "request-timeout": 30,
                                              **config})
    return schemathesis.openapi.from_dict(document(), config=settings)
