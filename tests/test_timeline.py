"""TimelineState and EditOperation validation: every rule, and the field each error names."""

from __future__ import annotations

import pytest

from core.errors import ValidationError
from core.timeline import validate_edits, validate_timeline

GOOD_EDITS = [
    {"type": "trim", "start": 0, "end": 10.5},
    {"type": "cut", "start": 2, "end": 3},
    {"type": "split", "at": 4},
    {"type": "speed", "factor": 0.25},
    {"type": "speed", "factor": 4},
    {"type": "fade", "in": 1},
    {"type": "fade", "out": 2},
    {"type": "fade"},
    {"type": "volume", "gain": 0},
    {"type": "volume", "gain": 4},
    {"type": "scale", "width": 1280, "height": -1},
    {"type": "crop", "x": 0, "y": 10, "width": 100, "height": 50},
]


def test_good_edits_pass_unchanged():
    assert validate_edits(GOOD_EDITS, "edits") == GOOD_EDITS


@pytest.mark.parametrize("edit, field", [
    ({"type": "trim", "start": 5, "end": 5}, "edits[0].end"),
    ({"type": "trim", "start": -1, "end": 5}, "edits[0].start"),
    ({"type": "trim", "start": 0}, "edits[0].end"),
    ({"type": "cut", "start": "0", "end": 1}, "edits[0].start"),
    ({"type": "cut", "start": True, "end": 1}, "edits[0].start"),
    ({"type": "split"}, "edits[0].at"),
    ({"type": "speed", "factor": 0.2}, "edits[0].factor"),
    ({"type": "speed", "factor": 4.01}, "edits[0].factor"),
    ({"type": "fade", "in": -1}, "edits[0].in"),
    ({"type": "volume", "gain": -0.1}, "edits[0].gain"),
    ({"type": "volume", "gain": 4.5}, "edits[0].gain"),
    ({"type": "scale", "width": -1, "height": -1}, "edits[0].width"),
    ({"type": "scale", "width": 0, "height": 10}, "edits[0].width"),
    ({"type": "scale", "width": 10.5, "height": 10}, "edits[0].width"),
    ({"type": "crop", "x": -1, "y": 0, "width": 1, "height": 1}, "edits[0].x"),
    ({"type": "crop", "x": 0, "y": 0, "width": -1, "height": 1}, "edits[0].width"),
    ({"type": "blur"}, "edits[0].type"),
    ({"start": 1}, "edits[0].type"),
    ({"type": "trim", "start": 0, "end": 1, "extra": 1}, "edits[0].extra"),
    ("trim", "edits[0]"),
])
def test_bad_edits_name_index_and_field(edit, field):
    with pytest.raises(ValidationError) as raised:
        validate_edits([edit], "edits")
    assert raised.value.field == field
    assert field in str(raised.value)


def test_the_index_is_that_of_the_bad_edit():
    with pytest.raises(ValidationError) as raised:
        validate_edits([{"type": "split", "at": 1}, {"type": "split", "at": 2}, {"type": "speed", "factor": 0}],
                       "timelineState.edits")
    assert raised.value.field == "timelineState.edits[2].factor"


def test_nan_and_infinity_are_not_numbers():
    for value in (float("nan"), float("inf")):
        with pytest.raises(ValidationError):
            validate_timeline({"currentTime": value})


def test_timeline_keeps_unknown_keys():
    state = {"currentTime": 1, "zoom": 0.5, "markers": [{"time": 0, "label": ""}], "edits": [], "ui": {"x": 1}}
    assert validate_timeline(state) == state


@pytest.mark.parametrize("state, field", [
    ([], "timelineState"),
    ({"currentTime": -0.1}, "timelineState.currentTime"),
    ({"zoom": 0}, "timelineState.zoom"),
    ({"zoom": "2"}, "timelineState.zoom"),
    ({"markers": {}}, "timelineState.markers"),
    ({"markers": [1]}, "timelineState.markers[0]"),
    ({"markers": [{"time": -1, "label": "a"}]}, "timelineState.markers[0].time"),
    ({"markers": [{"time": 1, "label": 2}]}, "timelineState.markers[0].label"),
    ({"edits": {}}, "timelineState.edits"),
])
def test_bad_timelines(state, field):
    with pytest.raises(ValidationError) as raised:
        validate_timeline(state)
    assert raised.value.field == field
