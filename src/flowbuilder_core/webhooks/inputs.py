"""The input of a run a webhook starts: the request, as JSON every store can keep.

`{"method", "path", "query", "headers", "body", "received_at"}`:

- `query`: each name once; its value a string, or a list of strings when it is repeated.
- `headers`: names lower-case, without those that carry credentials or signatures
  (`signatures.AUTH_HEADERS`); a repeated header's values joined with ", " (RFC 9110).
- `body`: null when empty; parsed when the media type is JSON (`application/json` or
  `+json`) and it parses, is nested at most MAX_DEPTH levels and holds only finite numbers
  of at most 64 bits; otherwise the text (UTF-8, invalid bytes as U+FFFD).
- The NUL character, which no database keeps in JSON, becomes U+FFFD everywhere (keys
  included): a third party's request is taken as it is, never refused for it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from flowbuilder_core.executions.model import Json
from flowbuilder_core.webhooks.model import WebhookRequest
from flowbuilder_core.webhooks.signatures import AUTH_HEADERS
from flowbuilder_core.workflows.validation import MAX_DEPTH

_INT64: Final = 2**63


class _NotStorableError(ValueError):
    pass


def run_input(request: WebhookRequest, received_at: datetime) -> dict[str, Json]:
    return {
        "method": request.method,
        "path": request.path,
        "query": _grouped(request.query),
        "headers": _headers(request.headers),
        "body": _body(request.body, request.header("content-type") or ""),
        "received_at": received_at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
    }


def _clean(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def _grouped(pairs: Sequence[tuple[str, str]]) -> dict[str, Json]:
    grouped: dict[str, Json] = {}
    for raw_name, raw_value in pairs:
        name, value = _clean(raw_name), _clean(raw_value)
        if name not in grouped:
            grouped[name] = value
        elif isinstance(grouped[name], list):
            grouped[name].append(value)
        else:
            grouped[name] = [grouped[name], value]
    return grouped


def _headers(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in pairs:
        if name in AUTH_HEADERS:
            continue
        key = _clean(name)
        joined[key] = f"{joined[key]}, {_clean(value)}" if key in joined else _clean(value)
    return joined


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _body(body: bytes, content_type: str) -> Json:
    if not body:
        return None
    text = body.decode("utf-8", "replace")
    if _is_json(content_type):
        try:
            return _storable(
                json.loads(text, parse_float=_finite, parse_int=_int64, parse_constant=_refuse)
            )
        except (ValueError, RecursionError):
            pass  # not JSON we can keep as JSON: it is kept as text
    return _clean(text)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotStorableError(text)
    return value


def _int64(text: str) -> int:
    if len(text) > 20:
        raise _NotStorableError(text)
    value = int(text)
    if not -_INT64 <= value < _INT64:
        raise _NotStorableError(text)
    return value


def _refuse(text: str) -> Any:
    raise _NotStorableError(text)  # NaN, Infinity, -Infinity


def _storable(value: Json) -> Json:
    """`value` with NUL replaced in every string and key; _NotStorableError when it is nested
    deeper than MAX_DEPTH. Iterative, rebuilding containers in place of the originals."""
    root: list[Json] = [value]
    stack: list[tuple[Any, Any, int]] = [(root, 0, 0)]
    while stack:
        parent, key, depth = stack.pop()
        item = parent[key]
        if depth > MAX_DEPTH:
            raise _NotStorableError("too deep")
        if isinstance(item, str):
            parent[key] = _clean(item)
        elif isinstance(item, dict):
            rebuilt = {_clean(k): v for k, v in item.items()}
            parent[key] = rebuilt
            stack.extend((rebuilt, k, depth + 1) for k in rebuilt)
        elif isinstance(item, list):
            stack.extend((item, i, depth + 1) for i in range(len(item)))
    return root[0]
