"""What no database stores faithfully, checked in every JSON document a request stores."""

from __future__ import annotations

from typing import Any

from flowbuilder_core.nodes.schema import pointer
from flowbuilder_core.shared.errors import FieldError

MAX_DEPTH = 64


def unstorable_values(raw: object, at: str) -> list[FieldError]:
    """Values no database stores faithfully: NUL characters (Postgres text and JSONB refuse
    them) and nesting deeper than MAX_DEPTH. Walked iteratively, so depth cannot hurt us. Every
    JSON document a request stores goes through it (a definition, an execution's input).

    Each value carries its path as a link to its parent's, `(parent, key)`; the pointer string
    is built only for a value in error, not for every value of a (usually valid) definition.
    """
    errors: list[FieldError] = []
    stack: list[tuple[object, _Path, int]] = [(raw, None, 0)]
    while stack and len(errors) < 20:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            message = f"must not be nested deeper than {MAX_DEPTH} levels"
            errors.append(FieldError(_pointer(at, path), message))
        elif isinstance(value, str):
            if "\x00" in value:
                errors.append(FieldError(_pointer(at, path), "must not contain the NUL character"))
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    message = "keys must not contain the NUL character"
                    errors.append(FieldError(_pointer(at, path), message))
                stack.append((item, (path, key), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, (path, i), depth + 1) for i, item in enumerate(value))
    return sorted(errors, key=lambda e: e.field)


_Path = tuple[Any, str | int] | None  # (the parent's _Path, this key), None at the root


def _pointer(at: str, path: _Path) -> str:
    keys: list[str | int] = []
    while path is not None:
        path, key = path
        keys.append(key)
    return at + pointer(*reversed(keys))
