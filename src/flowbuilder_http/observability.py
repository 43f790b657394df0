"""Request ids and logging: every response carries `X-Request-ID`, every log line too.

Log lines are JSON (one object a line: `time`, `level`, `logger`, `message`, `request_id` or
`execution_id`, and on access lines `method`, `route`, `status`, `duration_ms`) or text, as
`LOG_FORMAT` says. Either way each line is scrubbed of secrets before it is written: bearer and
basic credentials, anything shaped like a JWT, passwords in URLs, the configured secrets, and
the values of the credentials the run in progress resolved."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from flowbuilder_adapters.wiring import current_execution_id, hidden_values, observe_request

REQUEST_ID_HEADER = "x-request-id"
UNMATCHED_ROUTE = "unmatched"
"""The route of a request that matched none: never the path itself, which is the client's
text and may hold anything."""

_VALID_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_request_method: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_method", default=None
)
_request_path: contextvars.ContextVar[str] = contextvars.ContextVar("request_path", default="")
_access_log = logging.getLogger("flowbuilder.access")
_ACCESS_FIELDS = ("method", "route", "status", "duration_ms")
_SECRET_SHAPES = re.compile(
    r"(?P<scheme>\b(?:Bearer|Basic)\s+)[^\s\"',;]+"  # an Authorization header's credentials
    r"|eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"  # a JWT (its header is base64 JSON: eyJ...)
    r"|(?P<userinfo>://[^/\s:@\"']*:)[^/\s@\"']+@",  # a password in a URL
    re.IGNORECASE,
)
_CHATTY = ("botocore", "aiobotocore", "boto3", "urllib3", "httpx", "httpcore")


_in_flight: set[asyncio.Task[object]] = set()
"""The tasks of the requests being served, for a server that stops (`cancel_requests`)."""


def requests_in_flight() -> int:
    return len(_in_flight)


def cancel_requests() -> int:
    """Cancel every request still being served (its grace period is over); how many."""
    for task in list(_in_flight):
        task.cancel()
    return len(_in_flight)


def current_request_id() -> str:
    return _request_id.get()


def current_request_method() -> str | None:
    """The method of the HTTP request being served; None outside one (background tasks)."""
    return _request_method.get()


def current_request_path() -> str:
    """The path of the HTTP request being served (the client's text: never for a log line);
    "" outside one."""
    return _request_path.get()


def scrub(text: str) -> str:
    """`text` without a secret: known values and secret-shaped strings become `****`."""
    for value in hidden_values():
        if value in text:
            text = text.replace(value, "****")
    return _SECRET_SHAPES.sub(_masked, text)


def _masked(match: re.Match[str]) -> str:
    prefix = match.group("scheme") or match.group("userinfo") or ""
    return prefix + ("****@" if match.group("userinfo") else "****")


class RequestIdFilter(logging.Filter):
    """Stamps every record with the request id of the request being served, and the execution
    id of the run in progress."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        record.execution_id = current_execution_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line, scrubbed of secrets."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        request_id = getattr(record, "request_id", "-")
        if request_id != "-":
            line["request_id"] = request_id
        execution_id = getattr(record, "execution_id", None)
        if execution_id is not None:
            line["execution_id"] = execution_id
        for name in _ACCESS_FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exception"] = scrub(self.formatException(record.exc_info))
        elif record.stack_info:
            line["stack"] = scrub(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time level logger request_id=... [execution_id=...] message`, scrubbed of secrets."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(ids)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        execution_id = getattr(record, "execution_id", None)
        record.ids = f"request_id={getattr(record, 'request_id', '-')} " + (
            f"execution_id={execution_id} " if execution_id is not None else ""
        )
        return scrub(super().format(record))


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """Every line of the process (the server's and granian's included) to standard error, in
    `log_format` (`json` or `text`)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # At DEBUG, botocore logs whole request bodies (a SecretString among them), and httpx logs
    # every URL a workflow node calls, query string and all.
    for chatty in _CHATTY:
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))


GRANIAN_LOGGING = {
    "loggers": {
        "_granian": {"handlers": [], "level": "INFO", "propagate": True},
        "granian.access": {"handlers": [], "level": "INFO", "propagate": True},
    }
}
"""For granian's `log_dictconfig`: its lines go through the root logger, so they are in the
same format and scrubbed the same way as ours."""


def route_of(scope: Scope) -> str:
    """The route template the request matched (`/api/workflows/{workflow_id:uuid}`)."""
    return str(scope.get("path_template") or UNMATCHED_ROUTE)


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Outermost ASGI middleware: adopts the client's id when it is 1..128 characters of
    `[A-Za-z0-9._-]`, else makes one; sends it back, logs one access line per request and
    counts it in the metrics."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        token = _request_id.set(request_id)
        task = asyncio.current_task()
        if task is not None:
            _in_flight.add(task)
        method_token = _request_method.set(scope.get("method"))
        path_token = _request_path.set(str(scope.get("path", "")))
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            elapsed_ms = round(elapsed * 1000, 1)
            method, route = scope["method"], route_of(scope)
            observe_request(method, route, status, elapsed)
            _access_log.info(
                "%s %s %d %.1fms",
                method,
                route,
                status,
                elapsed_ms,
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": elapsed_ms,
                },
            )
            _request_id.reset(token)
            _request_method.reset(method_token)
            _request_path.reset(path_token)
            if task is not None:
                _in_flight.discard(task)

    return middleware


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return value.decode("ascii") if _VALID_ID.fullmatch(value) else None
    return None


_DRAIN_CAP_BYTES = 8 * 1024 * 1024


def drain_unread_body(app: ASGIApp) -> ASGIApp:
    """After an early answer (a 413, a 401 before the body was read), read what is left of the
    request body, up to a cap, before the server closes the connection.

    Closing a socket with unread data in it makes the kernel reset the connection, and a client
    still uploading then loses the response it was sent. Draining is bounded, so a client that
    keeps sending gets the reset after `_DRAIN_CAP_BYTES`.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not _may_have_body(scope):
            await app(scope, receive, send)
            return
        finished = False

        async def tracking_receive() -> ReceiveMessage:
            nonlocal finished
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                finished = True
            return message

        await app(scope, tracking_receive, send)
        drained = 0
        while not finished and drained <= _DRAIN_CAP_BYTES:
            message = await tracking_receive()
            body = message.get("body", b"")
            drained += len(body) if isinstance(body, bytes) else 0

    return middleware


def _may_have_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False
