"""The request shapes' two faces agree: what the validators take, the emitted JSON Schema takes.

Every sample body goes through a validator (core.timeline, core.projects,
core.jobs.operations) and through a JSON Schema validator (jsonschema_rs, which
Schemathesis uses) over ``core.components.components()``. The refused samples are
tests/test_timeline.py's own bad cases, read from its parametrize marks, so a case added
there is checked here too. The only bodies the two may disagree on are those that break
a cross-field rule (core.shapes.Rule), which a schema cannot state: those the validators
refuse and the schema takes, as its description says.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from core.components import REQUESTS, components
from core.errors import ValidationError
from core.jobs import operations
from core.projects import NewProject, ProjectChanges
from core.timeline import validate_edits, validate_timeline
from tests import test_timeline

BAD_EDITS = [edit for edit, _ in test_timeline.test_bad_edits_name_index_and_field.pytestmark[0].args[1]]
BAD_TIMELINES = [state for state, _ in test_timeline.test_bad_timelines.pytestmark[0].args[1]]
# Refused by a cross-field rule only: the schema takes them.
CROSS_FIELD = [{"type": "trim", "start": 5, "end": 5}, {"type": "scale", "width": -1, "height": -1}]


@functools.cache
def _validator(name: str) -> jsonschema_rs.Validator:
    document = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": components(64)}}
    return jsonschema_rs.Draft202012Validator(document)


def _schema_takes(name: str, value: Any) -> bool:
    return bool(_validator(name).is_valid(value))


def _refused(check: Any, value: Any) -> bool:
    try:
        check(copy.deepcopy(value))
    except ValidationError:
        return True
    return False


def test_every_request_shape_is_a_component() -> None:
    assert {shape.name for shape in REQUESTS} <= set(components(64))


@pytest.mark.parametrize("edit", test_timeline.GOOD_EDITS, ids=lambda edit: edit["type"])
def test_good_edits_pass_both(edit: dict[str, Any]) -> None:
    assert not _refused(lambda value: validate_edits([value], "edits"), edit)
    assert _schema_takes("EditOperation", edit)


@pytest.mark.parametrize("edit", BAD_EDITS, ids=repr)
def test_bad_edits_are_refused_by_both(edit: Any) -> None:
    assert _refused(lambda value: validate_edits([value], "edits"), edit)
    assert _schema_takes("EditOperation", edit) == (edit in CROSS_FIELD)


def test_integral_floats_are_integers_to_both() -> None:
    edit = {"type": "crop", "x": 2.0, "y": 0, "width": 100.0, "height": 50}
    assert _schema_takes("EditOperation", edit)
    (stored,) = validate_edits([edit], "edits")
    assert stored == {"type": "crop", "x": 2, "y": 0, "width": 100, "height": 50}
    assert isinstance(stored["x"], int) and isinstance(stored["width"], int)


def test_a_good_timeline_passes_both() -> None:
    state = {"currentTime": 1.5, "zoom": 0.5, "markers": [{"time": 0, "label": "a"}],
             "edits": list(test_timeline.GOOD_EDITS), "ui": {"kept": True}}
    assert _schema_takes("TimelineState", state)
    assert validate_timeline(copy.deepcopy(state)) == state


@pytest.mark.parametrize("state", BAD_TIMELINES, ids=repr)
def test_bad_timelines_are_refused_by_both(state: Any) -> None:
    assert _refused(validate_timeline, state)
    assert not _schema_takes("TimelineState", state)


_PROJECT = {"name": "a", "videoFilename": "clip.mp4", "videoUrl": "/videos/clip.mp4"}


@pytest.mark.parametrize("body, takes", [
    (_PROJECT, True),
    ({**_PROJECT, "description": None, "timelineState": None}, True),
    ({**_PROJECT, "description": "d", "timelineState": {"zoom": 2, "edits": [{"type": "split", "at": 1}]}}, True),
    ({**_PROJECT, "name": "x" * 255}, True),
    ({**_PROJECT, "name": "x" * 256}, False),
    ({**_PROJECT, "name": ""}, False),
    ({"name": "a", "videoUrl": "u"}, False),
    ({**_PROJECT, "videoUrl": 3}, False),
    ({**_PROJECT, "description": 1}, False),
    ({**_PROJECT, "timelineState": {"zoom": 0}}, False),
    ([], False),
])
def test_new_project(body: Any, takes: bool) -> None:
    assert _refused(NewProject.from_body, body) is not takes
    assert _schema_takes("NewProject", body) is takes


@pytest.mark.parametrize("body, takes", [
    ({}, True),
    ({"name": "b", "description": None}, True),
    ({"timelineState": {"markers": [{"time": 1, "label": "m"}]}}, True),
    ({"name": ""}, False),
    ({"name": None}, False),
    ({"name": "x" * 256}, False),
    ({"timelineState": None}, False),
    ({"timelineState": {"edits": [{"type": "speed", "factor": 5}]}}, False),
])
def test_project_changes(body: Any, takes: bool) -> None:
    assert _refused(ProjectChanges.from_body, body) is not takes
    assert _schema_takes("ProjectChanges", body) is takes


@pytest.fixture
def media(tmp_path: Path) -> Path:
    (tmp_path / "clip.mp4").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize("body, takes", [
    ({"filename": "clip.mp4", "startTime": 0, "endTime": 1}, True),
    ({"filename": "clip.mp4", "startTime": 0.5, "endTime": 1, "mode": "accurate"}, True),
    ({"filename": "clip.mp4", "startTime": -1, "endTime": 1}, False),
    ({"filename": "clip.mp4", "startTime": "0", "endTime": 1}, False),
    ({"filename": "clip.mp4", "endTime": 1}, False),
    ({"filename": "clip.mp4", "startTime": 0, "endTime": 1, "mode": "fast"}, False),
    ({"filename": "../clip.mp4", "startTime": 0, "endTime": 1}, False),
])
def test_trim_request(media: Path, body: Any, takes: bool) -> None:
    assert _refused(lambda value: operations.trim_params(value, media), body) is not takes
    assert _schema_takes("TrimRequest", body) is takes


def test_trim_end_before_start_is_a_rule_of_its_own(media: Path) -> None:
    body = {"filename": "clip.mp4", "startTime": 2, "endTime": 1}
    assert _refused(lambda value: operations.trim_params(value, media), body)
    assert _schema_takes("TrimRequest", body)


@pytest.mark.parametrize("body, takes", [
    ({"filename": "clip.mp4", "splitTime": 1}, True),
    ({"filename": "clip.mp4", "splitTime": 1, "mode": "copy"}, True),
    ({"filename": "clip.mp4", "splitTime": 0}, False),
    ({"filename": "clip.mp4", "splitTime": -1}, False),
    ({"filename": "clip.mp4", "splitTime": 1, "mode": None}, False),
    ({"filename": "", "splitTime": 1}, False),
])
def test_split_request(media: Path, body: Any, takes: bool) -> None:
    assert _refused(lambda value: operations.split_params(value, media), body) is not takes
    assert _schema_takes("SplitRequest", body) is takes


@pytest.mark.parametrize("output, takes", [
    ("final", True), ("final.mp4", True), ("x" * 100, True),
    ("x" * 101, False), ("my cut (1)", False), (".hidden", False), (3, False),
])
def test_process_output(output: Any, takes: bool) -> None:
    body = {"filename": "clip.mp4", "edits": [], "output": output}
    assert _refused(operations.output_label, body) is not takes
    assert _schema_takes("ProcessRequest", body) is takes


@pytest.mark.parametrize("value, sentence", [
    ({"type": "speed", "factor": 9}, "Field 'e[0].factor' must be between 0.25 and 4"),
    ({"type": "split", "at": -1}, "Field 'e[0].at' must be at least 0"),
    ({"type": "split"}, "Field 'e[0].at' is required"),
    ({"type": "cut", "start": 1, "end": "2"}, "Field 'e[0].end' must be a number"),
    ({"type": "cut", "start": 1, "end": 1}, "Field 'e[0].end' must be greater than start"),
    ({"type": "scale", "width": 0, "height": 1}, "Field 'e[0].width' must be a positive integer or -1"),
    ({"type": "scale", "width": -1, "height": -1}, "Field 'e[0].width' and height cannot both be -1"),
    ({"type": "crop", "x": -1, "y": 0, "width": 1, "height": 1}, "Field 'e[0].x' must be a non-negative integer"),
    ({"type": "crop", "x": 0, "y": 0, "height": 1}, "Field 'e[0].width' must be a positive integer"),
    ({"type": "fade", "in": 1, "gain": 1}, "Field 'e[0].gain' is not allowed on a fade edit"),
    ({"type": "blur"}, ("Field 'e[0].type' must be one of trim, cut, split, speed, fade, volume, scale, crop "
                        "(got 'blur')")),
    (1, "Field 'e[0]' must be an object"),
])
def test_edit_sentences(value: Any, sentence: str) -> None:
    with pytest.raises(ValidationError, match=f"^{re.escape(sentence)}$"):
        validate_edits([value], "e")


@pytest.mark.parametrize("state, sentence", [
    ({"zoom": 0}, "Field 'timelineState.zoom' must be greater than 0"),
    ({"markers": [{"time": 1}]}, "Field 'timelineState.markers[0].label' must be a string"),
    ({"markers": 1}, "Field 'timelineState.markers' must be an array"),
    ("x", "Field 'timelineState' must be an object"),
])
def test_timeline_sentences(state: Any, sentence: str) -> None:
    with pytest.raises(ValidationError) as raised:
        validate_timeline(state)
    assert str(raised.value) == sentence


def test_project_sentences() -> None:
    with pytest.raises(ValidationError, match="^Missing required fields: name, videoUrl$"):
        NewProject.from_body({"name": "", "videoFilename": "a.mp4", "videoUrl": None})
    with pytest.raises(ValidationError, match="^Field 'name' must be at most 255 characters$"):
        NewProject.from_body({**_PROJECT, "name": "x" * 256})
    with pytest.raises(ValidationError, match="^Field 'name' must not be empty$"):
        ProjectChanges.from_body({"name": ""})
