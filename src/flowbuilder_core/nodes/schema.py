"""A small JSON Schema checker for node parameters, standard library only.

It understands the subset the catalogues use (type, enum, ranges, lengths, pattern,
properties, additionalProperties, propertyNames, maxProperties, items, minItems, maxItems,
uniqueItems) and reports every problem with a JSON pointer. A value that is one whole
`{{ expr }}` template is checked when the node runs, unless its schema says `x-no-template`
(a parameter read before any run, such as a trigger's).
`required` is deliberately not checked here: a saved draft may lack parameters, and only
execution needs them (see `missing_required`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flowbuilder_core.shared.errors import FieldError

JsonSchema = Mapping[str, Any]

WHOLE_TEMPLATE = re.compile(r"\s*\{\{((?:(?!\}\}).)*)\}\}\s*", re.DOTALL)
"""A string that is one `{{ expr }}` and nothing else (group 1 is `expr`); use `fullmatch`."""
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901) from path parts, escaping `~` and `/` in keys."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def is_whole_template(value: object) -> bool:
    """A string that is one whole `{{ expr }}` template: it is checked when the node runs."""
    return isinstance(value, str) and WHOLE_TEMPLATE.fullmatch(value) is not None


def check(value: object, schema: JsonSchema, at: str) -> list[FieldError]:
    """Every way `value` violates `schema`, each with a pointer below `at`."""
    if is_whole_template(value):
        if schema.get("x-no-template"):
            return [FieldError(at, "must be a value, not a template")]
        return []
    wanted = schema.get("type")
    if wanted is not None and not _has_type(value, wanted):
        names = wanted if isinstance(wanted, str) else " or ".join(wanted)
        return [FieldError(at, f"must be of type {names}")]
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(str(v) for v in schema["enum"])
        return [FieldError(at, f"must be one of: {allowed}")]
    if isinstance(value, str):
        return _check_string(value, schema, at)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _check_number(value, schema, at)
    if isinstance(value, dict):
        return _check_object(value, schema, at)
    if isinstance(value, list):
        return _check_array(value, schema, at)
    return []


def missing_required(
    value: Mapping[str, object],
    schema: JsonSchema,
    at: str,
    message: str = "is required to run this node",
) -> list[FieldError]:
    return [
        FieldError(pointer_join(at, name), message)
        for name in schema.get("required", ())
        if name not in value
    ]


def pointer_join(at: str, key: str | int) -> str:
    return at + pointer(key)


def _has_type(value: object, wanted: str | list[str]) -> bool:
    names = [wanted] if isinstance(wanted, str) else wanted
    for name in names:
        if isinstance(value, bool) and name not in ("boolean",):
            continue
        if isinstance(value, _JSON_TYPES[name]):
            return True
    return False


def _check_string(value: str, schema: JsonSchema, at: str) -> list[FieldError]:
    errors = []
    if len(value) < schema.get("minLength", 0):
        errors.append(FieldError(at, f"must be at least {schema['minLength']} characters"))
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(FieldError(at, f"must be at most {schema['maxLength']} characters"))
    if "pattern" in schema and re.search(_end_anchored(schema["pattern"]), value) is None:
        errors.append(FieldError(at, schema.get("x-pattern-message", "has the wrong format")))
    return errors


def _end_anchored(pattern: str) -> str:
    """`pattern` with a final `$` meaning the end of the text, as in JSON Schema (ECMA-262):
    Python's `$` also matches before a final newline, which would let `"value\\n"` through."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern[:-1] + r"\Z"
    return pattern


def _check_number(value: float, schema: JsonSchema, at: str) -> list[FieldError]:
    if "minimum" in schema and value < schema["minimum"]:
        return [FieldError(at, f"must be at least {schema['minimum']}")]
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        return [FieldError(at, f"must be greater than {schema['exclusiveMinimum']}")]
    if "maximum" in schema and value > schema["maximum"]:
        return [FieldError(at, f"must be at most {schema['maximum']}")]
    return []


def _check_object(value: dict[str, object], schema: JsonSchema, at: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(FieldError(at, f"must have at most {schema['maxProperties']} entries"))
    names = schema.get("propertyNames")
    if names is not None:
        for key in value:
            if not check(key, names, at):
                continue
            errors.append(FieldError(pointer_join(at, key), "is not an allowed name here"))
    properties: Mapping[str, JsonSchema] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            errors += check(item, properties[key], pointer_join(at, key))
        elif extra is False:
            errors.append(FieldError(pointer_join(at, key), "is not a known parameter"))
        elif isinstance(extra, Mapping):
            errors += check(item, extra, pointer_join(at, key))
    return errors


def _check_array(value: list[object], schema: JsonSchema, at: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if len(value) < schema.get("minItems", 0):
        errors.append(FieldError(at, f"must have at least {schema['minItems']} items"))
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(FieldError(at, f"must have at most {schema['maxItems']} items"))
    if len(value) < schema.get("minItems", 0):
        errors.append(FieldError(at, f"must have at least {schema['minItems']} items"))
    if schema.get("uniqueItems") and len({repr(item) for item in value}) < len(value):
        errors.append(FieldError(at, "must not repeat an item"))
    if "items" in schema:
        for index, item in enumerate(value):
            errors += check(item, schema["items"], pointer_join(at, index))
    return errors
