"""Opaque cursors: they carry a position, and refuse anything they were not issued for."""

from __future__ import annotations

import base64

import pytest

from flowbuilder_core.shared.errors import MalformedRequestError
from flowbuilder_core.shared.pagination import decode_cursor, encode_cursor

SCOPE = "workflows|user_1|tag=None|q=None"


def test_a_cursor_round_trips_its_position() -> None:
    cursor = encode_cursor(("2026-11-25T19:07:31.123456+00:00", "6b0c"), SCOPE)

    assert decode_cursor(cursor, SCOPE, (str, str)) == ("2026-11-25T19:07:31.123456+00:00", "6b0c")


def test_a_cursor_issued_to_another_user_or_list_is_refused() -> None:
    cursor = encode_cursor(("2026", "id"), SCOPE)

    for scope in ("workflows|user_2|tag=None|q=None", "workflows|user_1|tag='x'|q=None"):
        with pytest.raises(MalformedRequestError):
            decode_cursor(cursor, scope, (str, str))


def test_an_edited_cursor_is_refused() -> None:
    cursor = encode_cursor(("2026", "id"), SCOPE)
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    edited = base64.urlsafe_b64encode(raw.replace(b"2026", b"2027")).decode().rstrip("=")

    with pytest.raises(MalformedRequestError):
        decode_cursor(edited, SCOPE, (str, str))


@pytest.mark.parametrize("cursor", ["", "!!!", "a" * 600, "bm90IGEgY3Vyc29y", "e30"])
def test_garbage_is_refused(cursor: str) -> None:
    with pytest.raises(MalformedRequestError):
        decode_cursor(cursor, SCOPE, (str, str))


def test_a_cursor_of_another_shape_is_refused() -> None:
    cursor = encode_cursor((3,), SCOPE)

    with pytest.raises(MalformedRequestError):
        decode_cursor(cursor, SCOPE, (str, str))


def test_a_cursor_whose_digest_contains_the_separator_still_decodes() -> None:
    # Search for a position whose digest holds a "." byte: a split on the last "." would break.
    for n in range(10_000):
        cursor = encode_cursor((f"2026-{n}", "id"), SCOPE)
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        if b"." in raw[-12:]:
            break
    else:
        pytest.fail("no digest with a separator byte found")

    assert decode_cursor(cursor, SCOPE, (str, str)) == (f"2026-{n}", "id")
