"""The ownership rule every use case applies to the object it is asked about."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from flowbuilder_core.shared.errors import NotFoundError
from flowbuilder_core.shared.ids import UserId


class Owned(Protocol):
    @property
    def owner_id(self) -> UserId: ...


T = TypeVar("T", bound=Owned)


def owned_by(owner: UserId, found: T | None, missing: Callable[[], NotFoundError]) -> T:
    """`found`, when `owner` owns it; else raise `missing()`. Another owner's object answers
    exactly as a missing one (NotFound, never Forbidden), so ids reveal nothing."""
    if found is None or found.owner_id != owner:
        raise missing()
    return found
