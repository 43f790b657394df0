"""Ports of the webhooks context."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from flowbuilder_core.credentials.model import SecretRef
from flowbuilder_core.executions.ports import RateLimiter
from flowbuilder_core.webhooks.model import Received, Webhook, WebhookAnswer, WebhookRequest
from flowbuilder_core.workflows.model import WorkflowId


class WebhookRepository(Protocol):
    """Webhooks, one per workflow, in the unit of work of the current scope."""

    async def for_workflow(self, workflow_id: WorkflowId) -> Webhook | None: ...

    async def by_hook(self, hook_id: str) -> Webhook | None: ...

    async def add(self, webhook: Webhook) -> None:
        """Store a new webhook, unless its workflow has one already: then nothing changes, and
        `for_workflow` answers the one that was there (two first reads racing get one hook)."""

    async def set_secret(self, workflow_id: WorkflowId, ref: SecretRef, at: datetime) -> None:
        """Point the workflow's webhook at a new secret."""

    async def secret_refs(self) -> set[SecretRef]:
        """Every secret reference a webhook holds (the secret sweep keeps them)."""


class HookRateLimiter(RateLimiter, Protocol):
    """The token-bucket `RateLimiter` with a bucket per hook instead of per user: its key is
    the hook id (the adapter keeps these buckets apart from the users'), shared by every API
    replica."""


class WebhookSteps(Protocol):
    """The two units of work of a webhook request, each in a scope of its own, so that a
    `when_finished` request holds no transaction (and no connection) while it waits."""

    async def receive(self, request: WebhookRequest) -> Received: ...

    async def record(self, hook_id: str, delivery_key: str, answer: WebhookAnswer) -> None: ...
