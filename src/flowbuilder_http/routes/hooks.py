"""`/hooks/{hook_id}`: the public door of webhooks, outside `/api` and its bearer tokens.

It bounds what it reads (the query string, the headers, the body: `request_max_body_size`),
hands the request to `DeliverWebhook`, and writes the answer. It never logs a header or the
body (the access line names the route template only), and nothing of a failed check reaches
the caller but one 401.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import parse_qsl

from dishka.integrations.litestar import FromDishka, inject
from litestar import HttpMethod, Request, Response, route
from litestar.exceptions import HTTPException
from litestar.params import FromPath

from flowbuilder_core.nodes.webhooks import RESERVED_RESPONSE_HEADERS
from flowbuilder_core.webhooks.errors import HookNotFoundError
from flowbuilder_core.webhooks.model import AnswerKind, Received, WebhookAnswer, WebhookRequest
from flowbuilder_core.webhooks.use_cases import DeliverWebhook
from flowbuilder_http.problems import problem_responses, webhook_run_failed

MAX_QUERY_BYTES: Final = 8192
MAX_QUERY_PARAMETERS: Final = 100
MAX_HEADERS: Final = 100
MAX_HEADER_BYTES: Final = 64 * 1024
_HOOK_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NO_BODY: Final = frozenset({204, 304})


@route(
    "/hooks/{hook_id:str}",
    http_method=[
        HttpMethod.GET,
        HttpMethod.POST,
        HttpMethod.PUT,
        HttpMethod.PATCH,
        HttpMethod.DELETE,
    ],
    summary="Call a workflow's webhook (no bearer token: the hook's own auth mode)",
    status_code=202,
    responses=problem_responses(401, 404, 409, 413, 414, 422, 429, 431, 502, 503),
    tags=["webhooks"],
    security=[],
)
@inject
async def receive_hook(
    request: Request[Any, Any, Any],
    hook_id: FromPath[str],
    deliver: FromDishka[DeliverWebhook],
) -> Response[Any]:
    if not _HOOK_ID.fullmatch(hook_id):
        raise HookNotFoundError
    query = _query(request.scope["query_string"])
    headers = _headers(request.scope["headers"])
    body = await request.body()  # over the app's 1 MiB limit: 413
    received = await deliver(
        WebhookRequest(hook_id, request.method, request.url.path, query, headers, body)
    )
    return _answer(received)


def _query(raw: bytes) -> list[tuple[str, str]]:
    if len(raw) > MAX_QUERY_BYTES:
        raise HTTPException(status_code=414)
    try:
        return parse_qsl(
            raw.decode("latin-1"),
            keep_blank_values=True,
            max_num_fields=MAX_QUERY_PARAMETERS,
            encoding="utf-8",
            errors="replace",
        )
    except ValueError:  # more than MAX_QUERY_PARAMETERS
        raise HTTPException(status_code=414) from None


def _headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    raw = list(headers)
    if len(raw) > MAX_HEADERS or sum(len(k) + len(v) for k, v in raw) > MAX_HEADER_BYTES:
        raise HTTPException(status_code=431)
    return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]


def _answer(received: Received) -> Response[Any]:
    answer = received.answer
    extra = {"Idempotent-Replayed": "true"} if received.replayed else {}
    if answer.kind is AnswerKind.FAILED:
        return webhook_run_failed(str(answer.execution_id), extra)
    if answer.kind is AnswerKind.ACCEPTED:
        return Response(
            {"execution_id": str(answer.execution_id)},
            status_code=202,
            headers={"Location": f"/api/executions/{answer.execution_id}", **extra},
        )
    return _response(answer, extra)


def _response(answer: WebhookAnswer, extra: dict[str, str]) -> Response[bytes]:
    """The run's own answer: its body as text when it is a string, else as JSON, in the
    media type its headers name (text/plain or application/json otherwise)."""
    headers = {
        name: value
        for name, value in answer.headers
        if name.lower() not in RESERVED_RESPONSE_HEADERS
    }
    media_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    content = b""
    if answer.status not in _NO_BODY and answer.body is not None:
        if isinstance(answer.body, str):
            content = answer.body.encode()
            media_type = media_type or "text/plain; charset=utf-8"
        else:
            content = json.dumps(answer.body, separators=(",", ":"), ensure_ascii=False).encode()
            media_type = media_type or "application/json"
    return Response(
        content,
        status_code=answer.status,
        media_type=media_type or "application/octet-stream",
        headers={**headers, **extra},
    )
