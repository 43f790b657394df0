"""Error kinds of the core. Each kind has a stable `code`; the HTTP adapter maps kinds to statuses.

Messages never carry secrets, tokens or request bodies: they are safe to show to the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one input field. `field` is a JSON pointer into the request body
    (`/definition/nodes/2/parameters/url`), or `query:<name>` / `header:<name>`."""

    field: str
    message: str


class FlowbuilderError(Exception):
    """Base of every error the core raises on purpose. `code` is stable and public."""

    code: ClassVar[str] = "error"
    title: ClassVar[str] = "Error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def extensions(self) -> dict[str, object]:
        """Extra members for the problem document (JSON values), beyond type/title/detail."""
        return {}


class NotFoundError(FlowbuilderError):
    """The object does not exist, or belongs to someone else: the caller cannot tell which."""

    code = "not-found"
    title = "Not found"


class ConflictError(FlowbuilderError):
    """The request is well formed but conflicts with the current state of the object."""

    code = "conflict"
    title = "Conflict"


class InvalidInputError(FlowbuilderError):
    """The input fails validation; `errors` lists every problem found, not just the first."""

    code = "invalid-input"
    title = "Invalid input"

    def __init__(self, errors: Iterable[FieldError], detail: str | None = None) -> None:
        self.errors = tuple(errors)
        super().__init__(detail or _summarise(self.errors))


class MalformedRequestError(FlowbuilderError):
    """The request cannot be read at all (a malformed or foreign pagination cursor, say)."""

    code = "malformed-request"
    title = "Malformed request"


class PreconditionFailedError(FlowbuilderError):
    """The caller's expected version of the object is not the current one."""

    code = "precondition-failed"
    title = "Precondition failed"


class UnauthenticatedError(FlowbuilderError):
    """No valid credentials were presented. The detail is for logs, never for the caller."""

    code = "unauthenticated"
    title = "Unauthenticated"


class RateLimitedError(FlowbuilderError):
    """The caller is over a rate limit; `retry_after` is in whole seconds."""

    code = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class DependencyUnavailableError(FlowbuilderError):
    """A service the request needs (database, key set, queue) cannot be reached right now."""

    code = "dependency-unavailable"
    title = "Service unavailable"


def _summarise(errors: tuple[FieldError, ...]) -> str:
    if len(errors) == 1:
        return f"{errors[0].field}: {errors[0].message}"
    return f"{len(errors)} fields are invalid"
