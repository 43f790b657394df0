"""Keyset pagination: pages of items and the opaque cursors that continue them.

A cursor holds the keyset position of the last item of a page (for example its `created_at` and
id), plus a digest over that position and the list's scope: the owner, the list and its filters.
A cursor that was edited, or issued to another user or for another list, fails the digest and is
refused. Positions are not secret and every list query is scoped to its owner anyway, so the
digest guards integrity and scope, not confidentiality; it needs no key to manage.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from flowbuilder_core.shared.errors import FieldError, InvalidInputError, MalformedRequestError

T = TypeVar("T")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_DIGEST_BYTES = 12
_MAX_CURSOR_CHARS = 512

Position = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, newest first; `next_cursor` is None on the last page."""

    items: tuple[T, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Where a page starts (`after` a keyset position, or at the top) and how long it is."""

    limit: int
    after: Position | None


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError([FieldError.query("limit", f"must be between 1 and {MAX_LIMIT}")])
    return limit


def encode_cursor(position: Position, scope: str) -> str:
    payload = json.dumps(list(position), separators=(",", ":")).encode()
    token = payload + b"." + _digest(payload, scope)
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode_cursor(cursor: str, scope: str, shape: Sequence[type]) -> Position:
    """The position in `cursor`, checked against `scope` and the expected element `shape`.

    Raises MalformedRequestError for anything that is not a cursor this list issued to this user.
    """
    invalid = MalformedRequestError("The cursor is malformed or does not belong to this list.")
    if not cursor or len(cursor) > _MAX_CURSOR_CHARS:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        # The digest has a fixed length and may itself contain any byte, "." included.
        payload, separator, digest = (
            raw[: -_DIGEST_BYTES - 1],
            raw[-_DIGEST_BYTES - 1 : -_DIGEST_BYTES],
            raw[-_DIGEST_BYTES:],
        )
        if separator != b"." or not hmac.compare_digest(digest, _digest(payload, scope)):
            raise invalid
        values = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise invalid from None
    if not isinstance(values, list) or len(values) != len(shape):
        raise invalid
    for value, kind in zip(values, shape, strict=True):
        if type(value) is not kind:
            raise invalid
    return tuple(values)


def time_id_position(created_at: datetime, item_id: uuid.UUID) -> Position:
    """The keyset position of lists ordered by `(created_at, id)`."""
    return (created_at.isoformat(), str(item_id))


def decode_time_id_cursor(cursor: str, scope: str) -> Position:
    """A `(created_at, id)` position from `cursor`. The digest proves the cursor is ours, but
    its key is no secret, so the values are parsed here before any adapter sees them."""
    created_at, item_id = decode_cursor(cursor, scope, (str, str))
    try:
        datetime.fromisoformat(str(created_at))
        uuid.UUID(str(item_id))
    except ValueError:
        raise MalformedRequestError("The cursor is malformed.") from None
    return (created_at, item_id)


def page_of(
    rows: Sequence[T], request: PageRequest, position_of: Callable[[T], Position], scope: str
) -> Page[T]:
    """Cut a page from `rows` fetched with `limit + 1`: an extra row means a next page."""
    items = tuple(rows[: request.limit])
    if len(rows) <= request.limit:
        return Page(items, None)
    return Page(items, encode_cursor(position_of(items[-1]), scope))


def _digest(payload: bytes, scope: str) -> bytes:
    message = scope.encode() + b"\x00" + payload
    return hmac.new(b"flowbuilder.cursor.v1", message, hashlib.sha256).digest()[:_DIGEST_BYTES]
