"""Validation of TimelineState and EditOperation (CONTRACT.md section 2).

The checks are hand-written rather than derived from a schema because the contract wants
sentences that name the exact place: ``timelineState.edits[2].factor``. Unknown keys of a
timeline state are kept as given; an edit carries exactly the fields of its type.

Numbers are JSON's: any number past float range is refused (it could not be a time or a
factor), and an integer field takes ``2.0`` as 2, as JSON Schema's "integer" does.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

from core.errors import ValidationError

SPEED_RANGE = (0.25, 4.0)
GAIN_RANGE = (0.0, 4.0)
_FLOAT_MAX = int(sys.float_info.max)


def is_number(value: object) -> bool:
    """A JSON number usable as a float: not a bool, finite, and within float range.

    JSON integers have no size limit; one past float range (``1e400`` written out in
    digits) is refused here rather than overflowing later in ``float()`` or ``math``.
    """
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -_FLOAT_MAX <= value <= _FLOAT_MAX
    return isinstance(value, float) and math.isfinite(value)


def _shown(value: object) -> str:
    """A client's value for an error sentence: short strings as they are, anything else by type."""
    if isinstance(value, str) and len(value) <= 40:
        return repr(value)
    return f"a {type(value).__name__}"


def as_int(value: object) -> int | None:
    """``value`` as a JSON integer, else None: an int, or a float with no fraction part
    (JSON has one number type, so ``2.0`` is the integer 2, as JSON Schema's "integer" says)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _number(obj: dict[str, Any], key: str, where: str, *, minimum: float | None = None,
            above: float | None = None, maximum: float | None = None, required: bool = True) -> None:
    field = f"{where}.{key}"
    if key not in obj:
        if required:
            raise ValidationError(f"Field '{field}' is required", field)
        return
    value = obj[key]
    if not is_number(value):
        raise ValidationError(f"Field '{field}' must be a number", field)
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        raise ValidationError(f"Field '{field}' must be between {minimum:g} and {maximum:g}", field)
    if minimum is not None and value < minimum:
        raise ValidationError(f"Field '{field}' must be at least {minimum:g}", field)
    if above is not None and value <= above:
        raise ValidationError(f"Field '{field}' must be greater than {above:g}", field)


def _dimension(obj: dict[str, Any], key: str, where: str, *, keep_allowed: bool) -> None:
    field = f"{where}.{key}"
    value = as_int(obj.get(key))
    if value is None or not (value > 0 or (keep_allowed and value == -1)):
        rule = "a positive integer or -1" if keep_allowed else "a positive integer"
        raise ValidationError(f"Field '{field}' must be {rule}", field)
    obj[key] = value  # 2.0 is stored (and rendered) as 2


def _range(edit: dict[str, Any], where: str) -> None:
    _number(edit, "start", where, minimum=0)
    _number(edit, "end", where, minimum=0)
    if edit["end"] <= edit["start"]:
        raise ValidationError(f"Field '{where}.end' must be greater than start", f"{where}.end")


def _split(edit: dict[str, Any], where: str) -> None:
    _number(edit, "at", where, minimum=0)


def _speed(edit: dict[str, Any], where: str) -> None:
    _number(edit, "factor", where, minimum=SPEED_RANGE[0], maximum=SPEED_RANGE[1])


def _fade(edit: dict[str, Any], where: str) -> None:
    _number(edit, "in", where, minimum=0, required=False)
    _number(edit, "out", where, minimum=0, required=False)


def _volume(edit: dict[str, Any], where: str) -> None:
    _number(edit, "gain", where, minimum=GAIN_RANGE[0], maximum=GAIN_RANGE[1])


def _scale(edit: dict[str, Any], where: str) -> None:
    _dimension(edit, "width", where, keep_allowed=True)
    _dimension(edit, "height", where, keep_allowed=True)
    if edit["width"] == -1 and edit["height"] == -1:
        raise ValidationError(f"Field '{where}.width' and height cannot both be -1", f"{where}.width")


def _crop(edit: dict[str, Any], where: str) -> None:
    for key in ("x", "y"):
        value = as_int(edit.get(key))
        if value is None or value < 0:
            raise ValidationError(f"Field '{where}.{key}' must be a non-negative integer", f"{where}.{key}")
        edit[key] = value
    _dimension(edit, "width", where, keep_allowed=False)
    _dimension(edit, "height", where, keep_allowed=False)


EDIT_FIELDS: dict[str, tuple[frozenset[str], Callable[[dict[str, Any], str], None]]] = {
    "trim": (frozenset({"start", "end"}), _range),
    "cut": (frozenset({"start", "end"}), _range),
    "split": (frozenset({"at"}), _split),
    "speed": (frozenset({"factor"}), _speed),
    "fade": (frozenset({"in", "out"}), _fade),
    "volume": (frozenset({"gain"}), _volume),
    "scale": (frozenset({"width", "height"}), _scale),
    "crop": (frozenset({"x", "y", "width", "height"}), _crop),
}


def validate_edits(edits: object, where: str) -> list[dict[str, Any]]:
    """Check an edit list; return it (integral floats in integer fields made ints). ``where``
    prefixes field names in errors."""
    if not isinstance(edits, list):
        raise ValidationError(f"Field '{where}' must be an array", where)
    for index, edit in enumerate(edits):
        at = f"{where}[{index}]"
        if not isinstance(edit, dict):
            raise ValidationError(f"Field '{at}' must be an object", at)
        kind = edit.get("type")
        if not isinstance(kind, str) or kind not in EDIT_FIELDS:
            raise ValidationError(
                f"Field '{at}.type' must be one of {', '.join(EDIT_FIELDS)} (got {_shown(kind)})", f"{at}.type")
        allowed, check = EDIT_FIELDS[kind]
        extra = sorted(set(edit) - allowed - {"type"})
        if extra:
            raise ValidationError(f"Field '{at}.{extra[0]}' is not allowed on a {kind} edit", f"{at}.{extra[0]}")
        check(edit, at)
    return edits


def validate_timeline(state: object, where: str = "timelineState") -> dict[str, Any]:
    """Check a TimelineState; unknown keys are kept as given. Return it (edits as validate_edits leaves them)."""
    if not isinstance(state, dict):
        raise ValidationError(f"Field '{where}' must be an object", where)
    _number(state, "currentTime", where, minimum=0, required=False)
    _number(state, "zoom", where, above=0, required=False)
    if "markers" in state:
        markers = state["markers"]
        if not isinstance(markers, list):
            raise ValidationError(f"Field '{where}.markers' must be an array", f"{where}.markers")
        for index, marker in enumerate(markers):
            at = f"{where}.markers[{index}]"
            if not isinstance(marker, dict):
                raise ValidationError(f"Field '{at}' must be an object", at)
            _number(marker, "time", at, minimum=0)
            if not isinstance(marker.get("label"), str):
                raise ValidationError(f"Field '{at}.label' must be a string", f"{at}.label")
    if "edits" in state:
        validate_edits(state["edits"], f"{where}.edits")
    return state
