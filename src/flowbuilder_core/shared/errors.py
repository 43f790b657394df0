"""Error kinds of the core. Each kind has a stable `code`; a driving adapter (HTTP) decides how
each kind is shown (its status and title) from one table of its own.

Messages never carry secrets, tokens or request bodies: they are safe to show to the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar


class Location(Enum):
    """Which part of the caller's input a field is in."""

    BODY = "body"
    QUERY = "query"
    HEADER = "header"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one input field. `field` is a JSON pointer into the body
    (`/definition/nodes/2/parameters/url`; "" is the whole body), or the name of a query
    parameter or header, as `location` says."""

    field: str
    message: str
    location: Location = Location.BODY

    @classmethod
    def query(cls, name: str, message: str) -> FieldError:
        return cls(name, message, Location.QUERY)

    @classmethod
    def header(cls, name: str, message: str) -> FieldError:
        return cls(name, message, Location.HEADER)


class FlowbuilderError(Exception):
    """Base of every error the core raises on purpose. `code` is stable and public."""

    code: ClassVar[str] = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def extensions(self) -> dict[str, object]:
        """Facts the caller may act on beyond `detail`, as JSON values by name (say, the
        workflows that still use a credential)."""
        return {}


class NotFoundError(FlowbuilderError):
    """The object does not exist, or belongs to someone else: the caller cannot tell which."""

    code = "not-found"


class ConflictError(FlowbuilderError):
    """The request is well formed but conflicts with the current state of the object."""

    code = "conflict"


class InvalidInputError(FlowbuilderError):
    """The input fails validation; `errors` lists every problem found, not just the first.

    `summary` is a sentence for the caller when the errors alone do not say what went wrong;
    None when they do (the detail then merely summarises them, for logs).
    """

    code = "invalid-input"

    def __init__(self, errors: Iterable[FieldError], summary: str | None = None) -> None:
        self.errors = tuple(errors)
        self.summary = summary
        super().__init__(summary or _summarise(self.errors))


class MalformedRequestError(FlowbuilderError):
    """The request cannot be read at all (a malformed or foreign pagination cursor, say)."""

    code = "malformed-request"


class PreconditionFailedError(FlowbuilderError):
    """The caller's expected version of the object is not the current one."""

    code = "precondition-failed"


class UnauthenticatedError(FlowbuilderError):
    """No valid credentials were presented. The detail is for logs, never for the caller."""

    code = "unauthenticated"


class RateLimitedError(FlowbuilderError):
    """The caller is over a rate limit; `retry_after` is in whole seconds."""

    code = "rate-limited"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class OverloadedError(FlowbuilderError):
    """The service holds as much queued work as it is configured to; `retry_after` is in whole
    seconds. Nothing was stored: the same request may be sent again."""

    code = "overloaded"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class DependencyUnavailableError(FlowbuilderError):
    """A service the request needs (database, key set, queue) cannot be reached right now."""

    code = "dependency-unavailable"


def _summarise(errors: tuple[FieldError, ...]) -> str:
    if len(errors) == 1:
        return f"{errors[0].field}: {errors[0].message}"
    return f"{len(errors)} fields are invalid"
