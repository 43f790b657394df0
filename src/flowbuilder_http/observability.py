"""Request ids and logging: every response carries `X-Request-ID`, every log line too."""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
_VALID_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_request_method: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_method", default=None
)
_access_log = logging.getLogger("flowbuilder.access")


def current_request_id() -> str:
    return _request_id.get()


def current_request_method() -> str | None:
    """The method of the HTTP request being served; None outside one (background tasks)."""
    return _request_method.get()


class RequestIdFilter(logging.Filter):
    """Stamps every record with the request id of the request being served."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s request_id=%(request_id)s %(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # At DEBUG, botocore logs whole request bodies (a SecretString among them), and httpx logs
    # every URL a workflow node calls, query string and all.
    for chatty in ("botocore", "aiobotocore", "boto3", "urllib3", "httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Outermost ASGI middleware: adopts the client's id when it is 1..128 characters of
    `[A-Za-z0-9._-]`, else makes one; sends it back and logs one access line per request."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        token = _request_id.set(request_id)
        method_token = _request_method.set(scope.get("method"))
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
            elapsed_ms = (time.perf_counter() - started) * 1000
            _access_log.info("%s %s %d %.1fms", scope["method"], scope["path"], status, elapsed_ms)
            _request_id.reset(token)
            _request_method.reset(method_token)

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
