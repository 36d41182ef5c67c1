"""Request shapes as tables: one definition both validates a body and is its JSON Schema.

The API's 400s name the exact place and say what is wrong in words a client can act on
("Field 'timelineState.edits[2].factor' must be between 0.25 and 4"), which a generic
JSON Schema validator does not produce; and the OpenAPI document must state the same
rules. So each shape is written once as a small table (:class:`Obj` of :class:`Prop`,
whose values are field kinds below), and the table can do both: ``check`` walks a decoded
JSON value and raises the :class:`~core.errors.ValidationError` with today's sentence and
``field`` path; ``schema`` emits the JSON Schema fragment (OpenAPI 3.1 dialect).

``check`` returns the value as it is to be stored: the same object, with integral floats
in integer fields made ints (``2.0`` is the integer 2, as JSON Schema says). Objects are
changed in place; keys a shape does not name are kept unless it refuses them.

What a schema cannot say (an end after its start) is a :class:`Rule` on the shape,
run once the fields it reads are checked. A kind used in several places (an edit, a file name) is wrapped
in :class:`Named`: it is then emitted once under ``components.schemas`` and referred to by
``$ref`` everywhere else.

Validation is a walk of the table, no compilation per call: a timeline is checked on
every PUT of a project.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Literal, cast

from core.errors import ValidationError
from core.storage import SAFE_NAME, is_safe_name

FLOAT_MAX = sys.float_info.max
_FLOAT_MAX_INT = int(FLOAT_MAX)
# Strings reach a shape from the JSON decoder, which refuses U+0000 in any string
# (server/http/request), so text kinds state the rule without checking it again.
NO_NUL = "^[^\\u0000]*$"


def is_number(value: object) -> bool:
    """A JSON number usable as a float: not a bool, finite, and within float range.

    JSON integers have no size limit; one past float range (``1e400`` written out in
    digits) is refused here rather than overflowing later in ``float()`` or ``math``.
    """
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -_FLOAT_MAX_INT <= value <= _FLOAT_MAX_INT
    return isinstance(value, float) and math.isfinite(value)


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


def at(where: str, key: str) -> str:
    """The path of ``key`` in the object at ``where`` ("" is the request body itself)."""
    return f"{where}.{key}" if where else key


def _invalid(field: str, rule: str) -> ValidationError:
    return ValidationError(f"Field '{field}' {rule}", field)


def _shown(value: object) -> str:
    """A client's value for an error sentence: short strings as they are, anything else by type."""
    if isinstance(value, str) and len(value) <= 40:
        return repr(value)
    return f"a {type(value).__name__}"


class Kind:
    """A field kind: checks a value (raising the field's 400) and emits its JSON Schema."""

    def check(self, value: object, field: str) -> Any:
        """``value`` as stored (integral floats of integer kinds made ints); a 400 naming ``field``."""
        raise NotImplementedError

    def absent(self, field: str) -> ValidationError:
        """The 400 for a required field that is not there: what a wrong value would get,
        unless the kind says otherwise."""
        try:
            self.check(None, field)
        except ValidationError as error:
            return error
        raise AssertionError(f"{type(self).__name__} takes null")

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Number(Kind):
    """A finite JSON number. ``maximum`` needs ``minimum`` (the sentence is "between");
    ``above`` is an exclusive minimum, with ``above_says`` as its sentence if given."""

    minimum: float | None = None
    above: float | None = None
    maximum: float | None = None
    noun: str = "a number"
    above_says: str | None = None

    def __post_init__(self) -> None:
        if self.maximum is not None and self.minimum is None:
            raise ValueError("a Number's maximum needs a minimum")

    def check(self, value: object, field: str) -> Any:
        if not is_number(value):
            raise _invalid(field, f"must be {self.noun}")
        number = cast(float, value)  # is_number: an int or a float
        if self.minimum is not None and self.maximum is not None:
            if not self.minimum <= number <= self.maximum:
                raise _invalid(field, f"must be between {self.minimum:g} and {self.maximum:g}")
        elif self.minimum is not None and number < self.minimum:
            raise _invalid(field, f"must be at least {self.minimum:g}")
        if self.above is not None and number <= self.above:
            raise _invalid(field, self.above_says or f"must be greater than {self.above:g}")
        return value

    def absent(self, field: str) -> ValidationError:
        return _invalid(field, "is required")

    def schema(self) -> dict[str, Any]:
        # Every number has a maximum: one past float range is refused (is_number).
        out: dict[str, Any] = {"type": "number"}
        if self.above is not None and (self.minimum is None or self.above >= self.minimum):
            out["exclusiveMinimum"] = self.above
        elif self.minimum is not None:
            out["minimum"] = self.minimum
        out["maximum"] = FLOAT_MAX if self.maximum is None else self.maximum
        return out


_INTEGER_NOUNS = {0: "a non-negative integer", 1: "a positive integer"}


@dataclass(frozen=True, slots=True)
class Integer(Kind):
    """A JSON integer (``2.0`` taken, stored as 2) of at least ``minimum`` (0 or 1), or -1
    where ``or_minus_one`` (a scale dimension that keeps the aspect)."""

    minimum: Literal[0, 1]
    or_minus_one: bool = False

    def check(self, value: object, field: str) -> Any:
        number = as_int(value)
        if number is None or not (number >= self.minimum or (self.or_minus_one and number == -1)):
            raise _invalid(field, f"must be {_INTEGER_NOUNS[self.minimum]}{' or -1' if self.or_minus_one else ''}")
        return number

    def schema(self) -> dict[str, Any]:
        out = {"type": "integer", "minimum": self.minimum}
        return {"anyOf": [out, {"const": -1}]} if self.or_minus_one else out


@dataclass(frozen=True, slots=True)
class Text(Kind):
    """A string (free text: anything but U+0000), at most ``max_length`` characters."""

    max_length: int | None = None
    non_empty: bool = False

    def check(self, value: object, field: str) -> Any:
        if not isinstance(value, str):
            raise _invalid(field, "must be a string")
        if self.max_length is not None and len(value) > self.max_length:
            raise _invalid(field, f"must be at most {self.max_length} characters")
        if self.non_empty and not value:
            raise _invalid(field, "must not be empty")
        return value

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string", "pattern": NO_NUL}
        if self.non_empty:
            out["minLength"] = 1
        if self.max_length is not None:
            out["maxLength"] = self.max_length
        return out


@dataclass(frozen=True, slots=True)
class FileName(Kind):
    """A file directly in the media directory (core.storage.SAFE_NAME). With ``max_length``
    (a label a result's name starts with) one sentence covers every way to be wrong."""

    max_length: int | None = None

    def check(self, value: object, field: str) -> Any:
        if self.max_length is not None:
            if not isinstance(value, str) or len(value) > self.max_length or not is_safe_name(value):
                raise _invalid(field, f"must be a plain file name of at most {self.max_length} characters")
            return value
        if not isinstance(value, str) or not value:
            raise _invalid(field, "must be a non-empty string")
        if not is_safe_name(value):
            raise _invalid(field, "must be a plain file name")
        return value

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string", "pattern": f"^{SAFE_NAME}$"}
        if self.max_length is not None:
            out["maxLength"] = self.max_length
        return out


@dataclass(frozen=True, slots=True)
class Enum(Kind):
    """One of ``values`` (strings); ``default`` is what an absent value means."""

    values: tuple[str, ...]
    default: str

    def check(self, value: object, field: str) -> Any:
        if value not in self.values:
            raise _invalid(field, f"must be one of {', '.join(self.values)}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"enum": list(self.values), "default": self.default}


@dataclass(frozen=True, slots=True)
class ArrayOf(Kind):
    items: Kind

    def check(self, value: object, field: str) -> Any:
        if not isinstance(value, list):
            raise _invalid(field, "must be an array")
        for index, item in enumerate(value):
            value[index] = self.items.check(item, f"{field}[{index}]")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": self.items.schema()}


@dataclass(frozen=True, slots=True)
class Prop:
    """A property of an :class:`Obj`: its kind, whether it must be there, whether null is
    taken (as "not given"), and what the schema says of it."""

    kind: Kind
    required: bool = False
    nullable: bool = False
    description: str | None = None

    def schema(self) -> dict[str, Any]:
        out = self.kind.schema()
        if self.nullable:
            if isinstance(out.get("type"), str):
                out["type"] = [out["type"], "null"]
            else:
                out = {"anyOf": [out, {"type": "null"}]}
        if self.description is not None:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule between two fields of an object, which a schema cannot state: ``holds`` of
    their values (both already checked), else "Field '<field>' <says>". It runs as soon as
    the later of the two has been checked, so a body with several faults is told the same
    first one whatever the rules are."""

    reads: tuple[str, str]
    holds: Callable[[Any, Any], bool]
    field: str
    says: str


def greater(later: str, earlier: str) -> Rule:
    """``later`` must be greater than ``earlier``."""
    return Rule((later, earlier), lambda high, low: high > low, later, f"must be greater than {earlier}")


def not_both(first: str, second: str, value: object) -> Rule:
    """``first`` and ``second`` are not both ``value``."""
    return Rule((first, second), lambda one, two: not one == two == value, first,
                f"and {second} cannot both be {value}")


@dataclass(frozen=True, slots=True)
class Obj(Kind):
    """A JSON object: ``props`` checked in their order, each of ``rules`` once it can be.

    ``missing`` is how absent required fields are told: ``"each"`` in turn, with the
    field's own sentence; ``"together"`` first, one sentence listing every one that is
    absent, null or "" (a request body's top level). ``additional``: None leaves other keys
    as they are and unstated; True states that they are kept; False refuses them ("is not
    allowed on ``noun``").
    """

    props: Mapping[str, Prop]
    missing: Literal["each", "together"] = "each"
    additional: bool | None = None
    noun: str = "this object"
    rules: tuple[Rule, ...] = ()
    description: str | None = None
    _known: frozenset[str] = dataclass_field(init=False, repr=False, compare=False)
    # The walk: each prop with the rules to run once it is checked (the later field a rule reads).
    _plan: tuple[tuple[str, Prop, tuple[Rule, ...]], ...] = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        order = list(self.props)
        plan = tuple((key, prop, tuple(rule for rule in self.rules if max(rule.reads, key=order.index) == key))
                     for key, prop in self.props.items())
        object.__setattr__(self, "_known", frozenset(self.props))
        object.__setattr__(self, "_plan", plan)

    def check(self, value: object, field: str, tag: str | None = None) -> Any:
        """:meth:`Kind.check`; ``tag`` is a key the object may carry besides its props (a variant's)."""
        if not isinstance(value, dict):
            raise _invalid(field, "must be an object")
        if self.additional is False:
            extra = value.keys() - self._known - {tag}
            if extra:
                raise _invalid(at(field, min(extra)), f"is not allowed on {self.noun}")
        if self.missing == "together":
            absent = [key for key, prop in self.props.items()
                      if prop.required and value.get(key) in (None, "")]
            if absent:
                raise ValidationError(f"Missing required fields: {', '.join(absent)}")
        prefix = f"{field}." if field else ""
        for key, prop, rules in self._plan:
            if key not in value:
                if prop.required:
                    raise prop.kind.absent(prefix + key)
                continue
            if not (prop.nullable and value[key] is None):
                value[key] = prop.kind.check(value[key], prefix + key)
            for rule in rules:
                first, second = rule.reads
                if first in value and second in value and not rule.holds(value[first], value[second]):
                    raise _invalid(prefix + rule.field, rule.says)
        return value

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "object"}
        required = [key for key, prop in self.props.items() if prop.required]
        if required:
            out["required"] = required
        out["properties"] = {key: prop.schema() for key, prop in self.props.items()}
        if self.additional is not None:
            out["additionalProperties"] = self.additional
        if self.description is not None:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class Variants(Kind):
    """One of several objects, told apart by the string at ``tag`` (its name in ``variants``)."""

    tag: str
    variants: Mapping[str, Obj]
    description: str | None = None

    def check(self, value: object, field: str) -> Any:
        if not isinstance(value, dict):
            raise _invalid(field, "must be an object")
        name = value.get(self.tag)
        variant = self.variants.get(name) if isinstance(name, str) else None
        if variant is None:
            raise _invalid(at(field, self.tag),
                           f"must be one of {', '.join(self.variants)} (got {_shown(name)})")
        return variant.check(value, field, self.tag)

    def schema(self) -> dict[str, Any]:
        def variant(name: str, obj: Obj) -> dict[str, Any]:
            out = obj.schema()
            out["required"] = [self.tag, *out.get("required", ())]
            out["properties"] = {self.tag: {"const": name}, **out["properties"]}
            return out

        out: dict[str, Any] = {"oneOf": [variant(name, obj) for name, obj in self.variants.items()]}
        if self.description is not None:
            out = {"description": self.description, **out}
        return out


@dataclass(frozen=True, slots=True)
class Named(Kind):
    """A kind with a name in ``components.schemas``: checked as ``kind``, emitted as a ``$ref``."""

    name: str
    kind: Kind
    description: str | None = None

    def check(self, value: object, field: str) -> Any:
        return self.kind.check(value, field)

    def absent(self, field: str) -> ValidationError:
        return self.kind.absent(field)

    def schema(self) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{self.name}"}

    def definition(self) -> dict[str, Any]:
        """The schema under ``components.schemas[name]``."""
        out = self.kind.schema()
        if self.description is not None:
            out["description"] = self.description
        return out
