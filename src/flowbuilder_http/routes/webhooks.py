"""A workflow's webhook, for its owner: where it is, and its secret."""

from __future__ import annotations

from uuid import UUID

from dishka.integrations.litestar import FromDishka, inject
from litestar import Response, Router, get, post
from litestar.params import FromPath

from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.webhooks.use_cases import GetWebhook, RotateWebhookSecret
from flowbuilder_http.problems import problem_responses
from flowbuilder_http.webhook_schemas import WebhookOut, WebhookSecretOut


@get(
    "/{workflow_id:uuid}/webhook",
    summary="A workflow's webhook: its URL and settings (never its secret)",
    responses=problem_responses(400, 401, 404, 503),
)
@inject
async def get_webhook(
    workflow_id: FromPath[UUID],
    principal: FromDishka[Principal],
    get_one: FromDishka[GetWebhook],
) -> WebhookOut:
    return WebhookOut.of(await get_one(principal, workflow_id))


@post(
    "/{workflow_id:uuid}/webhook/secret",
    summary="Make (or rotate) the webhook's secret and answer it, this once",
    status_code=200,
    responses=problem_responses(400, 401, 404, 429, 503),
)
@inject
async def rotate_webhook_secret(
    workflow_id: FromPath[UUID],
    principal: FromDishka[Principal],
    rotate: FromDishka[RotateWebhookSecret],
) -> Response[WebhookSecretOut]:
    secret = await rotate(principal, workflow_id)
    return Response(WebhookSecretOut(secret), headers={"Cache-Control": "no-store"})


webhooks_router = Router(
    path="/workflows",
    route_handlers=[get_webhook, rotate_webhook_secret],
    tags=["webhooks"],
)
