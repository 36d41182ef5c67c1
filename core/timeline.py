"""TimelineState and EditOperation (docs/CONTRACT.md section 2): their shapes, which both check
a client's value and are the OpenAPI document's schemas (core.shapes).

Errors name the exact place: ``timelineState.edits[2].factor``. Unknown keys of a
timeline state are kept as given; an edit carries exactly the fields of its type.

Numbers are JSON's: any number past float range is refused (it could not be a time or a
factor), and an integer field takes ``2.0`` as 2 (stored as 2), as JSON Schema's "integer" does.
"""

from __future__ import annotations

from typing import Any

from core.shapes import (
    ArrayOf,
    Integer,
    Named,
    Number,
    Obj,
    Prop,
    Rule,
    Text,
    Variants,
    as_int,
    greater,
    is_number,
    not_both,
)

# as_int and is_number are the timeline's number rules; callers took them from here before core.shapes.
__all__ = ["EDITS", "EDIT_OPERATION", "GAIN_RANGE", "MARKER", "SECONDS", "SPEED_RANGE", "TIMELINE_STATE", "as_int",
           "is_number", "validate_edits", "validate_timeline"]

SPEED_RANGE = (0.25, 4.0)
GAIN_RANGE = (0.0, 4.0)

SECONDS = Number(minimum=0)
"""A time on the source, in seconds."""


def _edit(kind: str, props: dict[str, Prop], *rules: Rule) -> Obj:
    """One EditOperation variant: exactly its type's fields (any other is a 400)."""
    return Obj(props, additional=False, noun=f"a {kind} edit", rules=rules)


_RANGE = {"start": Prop(SECONDS, required=True), "end": Prop(SECONDS, required=True)}
_KEEP_ASPECT = Integer(minimum=1, or_minus_one=True)
_POSITIVE = Prop(Integer(minimum=1), required=True)
_OFFSET = Prop(Integer(minimum=0), required=True)

EDIT_OPERATION = Named("EditOperation", Variants("type", {
    "trim": _edit("trim", _RANGE, greater("end", "start")),
    "cut": _edit("cut", _RANGE, greater("end", "start")),
    "split": _edit("split", {"at": Prop(SECONDS, required=True)}),
    "speed": _edit("speed", {"factor": Prop(Number(minimum=SPEED_RANGE[0], maximum=SPEED_RANGE[1]),
                                            required=True)}),
    "fade": _edit("fade", {"in": Prop(SECONDS), "out": Prop(SECONDS)}),
    "volume": _edit("volume", {"gain": Prop(Number(minimum=GAIN_RANGE[0], maximum=GAIN_RANGE[1]),
                                            required=True)}),
    "scale": _edit("scale", {"width": Prop(_KEEP_ASPECT, required=True),
                             "height": Prop(_KEEP_ASPECT, required=True)},
                   not_both("width", "height", -1)),
    "crop": _edit("crop", {"x": _OFFSET, "y": _OFFSET, "width": _POSITIVE, "height": _POSITIVE}),
}, description="Cross-field rules the schema cannot state: a range's end is after its start, "
               "and scale's width and height are not both -1."))

MARKER = Named("Marker", Obj({"time": Prop(SECONDS, required=True), "label": Prop(Text(), required=True)}))

EDITS = ArrayOf(EDIT_OPERATION)

TIMELINE_STATE = Named("TimelineState", Obj({
    "currentTime": Prop(SECONDS),
    "zoom": Prop(Number(above=0)),
    "markers": Prop(ArrayOf(MARKER)),
    "edits": Prop(EDITS),
}, additional=True, description="Unknown keys are kept as given."))


def validate_edits(edits: object, where: str) -> list[dict[str, Any]]:
    """Check an edit list; return it (integral floats in integer fields made ints). ``where``
    prefixes field names in errors."""
    checked: list[dict[str, Any]] = EDITS.check(edits, where)
    return checked


def validate_timeline(state: object, where: str = "timelineState") -> dict[str, Any]:
    """Check a TimelineState; unknown keys are kept as given. Return it (edits as validate_edits leaves them)."""
    checked: dict[str, Any] = TIMELINE_STATE.check(state, where)
    return checked
