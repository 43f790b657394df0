"""Who is asking: the authenticated principal, and the port that establishes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from flowbuilder_core.shared.ids import UserId


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user. Every object belongs to exactly one user id."""

    user_id: UserId


class TokenVerifier(Protocol):
    """Turns a bearer token into a Principal.

    Raises UnauthenticatedError for any token that is missing, malformed, expired, unsigned,
    signed with a foreign key or algorithm, or for another audience; the error's detail says
    why, for the log only. Raises DependencyUnavailableError when no key is obtainable to check
    the token against (the key set endpoint is down and nothing is cached).
    """

    async def verify(self, token: str) -> Principal: ...
