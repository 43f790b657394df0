"""RFC 9457 problem details: the one table from core error kinds to HTTP statuses and titles,
and the exception handlers that answer every error, the framework's own included, as
problem+json. Where a core error names its field (a body pointer, a query parameter, a header),
this module writes it as the API shows it: `/name`, `query:limit`, `header:If-Match`."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from flowbuilder_core.credentials.errors import CredentialNotFoundError
from flowbuilder_core.executions.errors import ExecutionNotFoundError
from flowbuilder_core.shared.errors import (
    ConflictError,
    DependencyUnavailableError,
    FieldError,
    FlowbuilderError,
    InvalidInputError,
    Location,
    MalformedRequestError,
    NotFoundError,
    OverloadedError,
    PreconditionFailedError,
    RateLimitedError,
    UnauthenticatedError,
)
from flowbuilder_core.webhooks.errors import WebhookUnauthenticatedError
from flowbuilder_core.workflows.errors import WorkflowNotFoundError
from flowbuilder_http.observability import current_request_id

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:flowbuilder:problem:"

MAX_BODY_BYTES = 1024 * 1024
"""The largest request body the app reads (`create_app`); a larger one is a 413 problem."""
_BODY_LIMIT = f"{MAX_BODY_BYTES / 2**20:g} MiB"


@dataclass(frozen=True, slots=True)
class ProblemType:
    """How the API shows an error kind (its problem `type` is the kind's own `code`)."""

    status: int
    title: str


PROBLEM_TYPES: Final[Mapping[type[FlowbuilderError], ProblemType]] = {
    MalformedRequestError: ProblemType(400, "Malformed request"),
    UnauthenticatedError: ProblemType(401, "Unauthenticated"),
    NotFoundError: ProblemType(404, "Not found"),
    ConflictError: ProblemType(409, "Conflict"),
    PreconditionFailedError: ProblemType(412, "Precondition failed"),
    InvalidInputError: ProblemType(422, "Invalid input"),
    RateLimitedError: ProblemType(429, "Too many requests"),
    OverloadedError: ProblemType(503, "Service unavailable"),
    DependencyUnavailableError: ProblemType(503, "Service unavailable"),
}
"""Every kind not here (nor below one that is) is a server error: a bare 500."""

_FIELD_PREFIX: Final[Mapping[str, str]] = {
    Location.QUERY.value: "query:",
    Location.HEADER.value: "header:",
    "cookie": "cookie:",  # the framework's own parameter sources use the same words
}

_MISSING_BY_COLLECTION: Final[Mapping[str, Callable[[], NotFoundError]]] = {
    "workflows": WorkflowNotFoundError,
    "executions": ExecutionNotFoundError,
    "credentials": CredentialNotFoundError,
}
"""The answer to a malformed id in the path (`/api/<collection>/<id>...`), by the collection it
names: the very answer a well-formed id that does not exist gets, so that no client can tell
the two apart."""

UNAUTHENTICATED_DETAIL = "A valid bearer token is required."
WEBHOOK_UNAUTHENTICATED_DETAIL = "The request's signature or token is not valid."
_log = logging.getLogger(__name__)
_MSGSPEC_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_QUOTED_FIELD = re.compile(r"field `([^`]+)`")


class ProblemFieldError(msgspec.Struct):
    field: str
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem document (its schema for OpenAPI; `problem()` builds the body)."""

    type: str
    title: str
    status: int
    detail: str
    request_id: str
    errors: list[ProblemFieldError] | None = None


def problem_type_of(exc: FlowbuilderError) -> ProblemType | None:
    return next((PROBLEM_TYPES[k] for k in type(exc).__mro__ if k in PROBLEM_TYPES), None)


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    errors: list[ProblemFieldError] | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, object] | None = None,
) -> Response[dict[str, object]]:
    body: dict[str, object] = {
        "type": TYPE_PREFIX + code,
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": current_request_id(),
    }
    if errors is not None:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    body.update(extensions or {})
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def handle_flowbuilder_error(
    _: Request[Any, Any, Any], exc: FlowbuilderError
) -> Response[dict[str, object]]:
    shown = problem_type_of(exc)
    if shown is None:
        return handle_unexpected(_, exc)
    if isinstance(exc, WebhookUnauthenticatedError):
        # One body for every failed check of a webhook; which one failed goes to the log only.
        _log.info("webhook authentication failed: %s", exc.detail)
        return problem(shown.status, exc.code, shown.title, WEBHOOK_UNAUTHENTICATED_DETAIL)
    if isinstance(exc, UnauthenticatedError):
        # One body for every failed check; the reason goes to the log only.
        _log.info("authentication failed: %s", exc.detail)
        return problem(
            shown.status,
            exc.code,
            shown.title,
            UNAUTHENTICATED_DETAIL,
            headers={"WWW-Authenticate": "Bearer"},
        )
    headers = {}
    if isinstance(exc, RateLimitedError | OverloadedError):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, DependencyUnavailableError):
        _log.warning("dependency unavailable: %s", exc.detail)
    detail, errors = exc.detail, None
    if isinstance(exc, InvalidInputError):
        errors = _shown_fields(exc.errors)
        detail = exc.summary or _summarise(errors)
    return problem(
        shown.status,
        exc.code,
        shown.title,
        detail,
        errors=errors,
        headers=headers,
        extensions=exc.extensions(),
    )


def webhook_run_failed(
    execution_id: str, headers: Mapping[str, str] | None = None
) -> Response[dict[str, object]]:
    """The answer of a `when_finished` webhook whose run failed or was cancelled: its id, and
    nothing of its error (the caller is a third party)."""
    return problem(
        502,
        "webhook-run-failed",
        "Bad gateway",
        "The workflow run did not succeed.",
        headers=headers,
        extensions={"execution_id": execution_id},
    )


def handle_validation_error(
    _: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, object]]:
    """Litestar's parameter and body validation. Body and query problems are 422 with a pointer;
    a body that is not there at all is 400; a path parameter that does not parse is 404 (the
    router refuses malformed ids before this, see `handle_http_exception`)."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    sources = {str(getattr(item.get("source"), "value", item.get("source"))) for item in extra}
    if "path" in sources:
        return _not_found()
    cause = exc.__cause__
    if "body" in sources and isinstance(cause, msgspec.ValidationError):
        field_error = _body_field_error(str(cause))
        if field_error is None:
            return _malformed("The request body must be a JSON object.")
        return _invalid([field_error])
    errors = [
        ProblemFieldError(
            f"{_source_prefix(item.get('source'))}{item.get('key')}", _safe(item.get("message"))
        )
        for item in extra
    ]
    return _invalid(errors or [ProblemFieldError("", "is invalid")])


def handle_http_exception(
    request: Request[Any, Any, Any], exc: HTTPException
) -> Response[dict[str, object]]:
    status = exc.status_code
    if isinstance(exc, NotFoundException):
        if isinstance(exc.__cause__, ValueError):  # the router could not parse an id in the path
            return _missing(request, request.url.path)
        return _not_found()
    if isinstance(exc, MethodNotAllowedException):
        return problem(
            405,
            "method-not-allowed",
            "Method not allowed",
            "This resource does not support the request method.",
            headers=exc.headers or {},
        )
    if status == 413:
        # The rest of the body is never read, so the connection cannot carry another request;
        # saying so keeps clients from reusing it (the server closes it either way).
        return problem(
            413,
            "payload-too-large",
            "Payload too large",
            f"Request bodies are limited to {_BODY_LIMIT}.",
            headers={"Connection": "close"},
        )
    if status == 414:
        return problem(
            414,
            "uri-too-long",
            "URI too long",
            "A webhook's query string is limited to 8 KiB and 100 parameters.",
        )
    if status == 431:
        return problem(
            431,
            "request-header-fields-too-large",
            "Request header fields too large",
            "A webhook request is limited to 100 headers and 64 KiB of them.",
        )
    if status == 415:
        return problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "Request bodies must be application/json.",
        )
    if status == 400:
        return _malformed("The request body is not valid JSON.")
    if status >= 500:
        return handle_unexpected(request, exc)
    return problem(status, "http-error", exc.detail or "Error", exc.detail or "Error")


def handle_undecodable_body(
    _: Request[Any, Any, Any], exc: Exception
) -> Response[dict[str, object]]:
    """The JSON decoder's own failures on hostile bodies: bytes that are not UTF-8, or nesting
    deeper than it will follow. Both are the client's malformed JSON, never a server error."""
    return _malformed("The request body is not valid JSON (UTF-8, not nested too deeply).")


def handle_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, object]]:
    _log.error("unexpected error", exc_info=exc)
    return problem(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal-error",
        "Internal server error",
        "An unexpected error occurred.",
    )


def _missing(request: Request[Any, Any, Any], path: str) -> Response[dict[str, object]]:
    """The resource whose id in `path` is malformed, answered as missing. Every id in a path is
    the segment right after its collection (`/api/workflows/{id}/versions/{version}` reads the
    version as text), so that collection names the resource."""
    segments = path.strip("/").split("/")
    if len(segments) < 3 or segments[0] != "api" or segments[1] not in _MISSING_BY_COLLECTION:
        return _not_found()
    return handle_flowbuilder_error(request, _MISSING_BY_COLLECTION[segments[1]]())


def _not_found() -> Response[dict[str, object]]:
    shown = PROBLEM_TYPES[NotFoundError]
    return problem(shown.status, NotFoundError.code, shown.title, "No such resource.")


def _malformed(detail: str) -> Response[dict[str, object]]:
    shown = PROBLEM_TYPES[MalformedRequestError]
    return problem(shown.status, MalformedRequestError.code, shown.title, detail)


def _invalid(errors: list[ProblemFieldError]) -> Response[dict[str, object]]:
    shown = PROBLEM_TYPES[InvalidInputError]
    return problem(
        shown.status, InvalidInputError.code, shown.title, _summarise(errors), errors=errors
    )


def _shown_fields(errors: Iterable[FieldError]) -> list[ProblemFieldError]:
    return [
        ProblemFieldError(_FIELD_PREFIX.get(e.location.value, "") + e.field, e.message)
        for e in errors
    ]


def _summarise(errors: list[ProblemFieldError]) -> str:
    if len(errors) == 1:
        return f"{errors[0].field}: {errors[0].message}"
    return f"{len(errors)} fields are invalid"


def _body_field_error(text: str) -> ProblemFieldError | None:
    match = _MSGSPEC_PATH.match(text)
    if match is None:
        return ProblemFieldError("", "is invalid")
    message, path = match.group("message"), match.group("path") or ""
    parts = [
        m.group(1) if m.group(1) is not None else m.group(2) for m in _PATH_PART.finditer(path)
    ]
    if parts[:1] == ["data"]:
        parts = parts[1:]
    elif not parts and "required field `data`" in message:
        return None  # no body at all
    field_name = _QUOTED_FIELD.search(message)
    if field_name and ("unknown field" in message or "missing required field" in message):
        parts.append(field_name.group(1))
        message = "is not a known field" if "unknown" in message else "is required"
    pointer = "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)
    return ProblemFieldError(pointer, _safe(message))


def _safe(message: object) -> str:
    """msgspec echoes rejected enum values; never send input back."""
    text = str(message)
    if text.startswith("Invalid enum value"):
        return "is not one of the allowed values"
    return text


def _source_prefix(source: object) -> str:
    return _FIELD_PREFIX.get(str(getattr(source, "value", source)), "")


_PROBLEM_DESCRIPTIONS: Final[Mapping[int, str]] = {
    400: "Malformed request: JSON that does not parse, a malformed or foreign cursor",
    401: "Missing or invalid bearer token (one body for every reason)",
    404: "No such object for this user (another user's looks exactly the same)",
    409: "Conflict with the object's current state",
    412: "The object's current version is not the one in If-Match or the body",
    413: f"Request body over {_BODY_LIMIT}",
    414: "A webhook's query string over 8 KiB or 100 parameters",
    415: "Request body is not application/json",
    422: "Invalid body, query parameter or header; `errors` lists every problem",
    429: "Over the rate limit; see Retry-After",
    431: "A webhook request's headers over 100 or 64 KiB",
    502: "The webhook's run failed or was cancelled; `execution_id` names it",
    503: "A dependency (the database, the key set) is unavailable",
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem documents a route can answer."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=_PROBLEM_DESCRIPTIONS[status],
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for status in statuses
    }
