"""Identifiers. Object ids are random UUIDs; the owner is the Clerk user id string."""

from __future__ import annotations

import uuid
from typing import NewType

UserId = NewType("UserId", str)


def new_uuid() -> uuid.UUID:
    return uuid.uuid4()
