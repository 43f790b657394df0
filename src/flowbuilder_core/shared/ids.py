"""Identifiers. Object ids are random UUIDs; the owner is the Clerk user id string."""

from __future__ import annotations

import uuid
from typing import NewType

UserId = NewType("UserId", str)


def new_uuid() -> uuid.UUID:
    return uuid.uuid4()


def parse_uuid(text: str) -> uuid.UUID | None:
    """The UUID in `text`, or None when it is not one (callers turn that into NotFound)."""
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
