"""Webhooks over SQL, in the scope's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbuilder_adapters.sql.dialect import insert_unless_exists
from flowbuilder_adapters.sql.errors import translate_errors
from flowbuilder_adapters.sql.tables import webhooks
from flowbuilder_core.credentials.model import SecretRef
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.webhooks.model import Webhook
from flowbuilder_core.webhooks.ports import WebhookRepository
from flowbuilder_core.workflows.model import WorkflowId

_w = webhooks.c


class SqlWebhookRepository(WebhookRepository):
    """A row per workflow; `add` is an INSERT that does nothing when the workflow has one."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def for_workflow(self, workflow_id: WorkflowId) -> Webhook | None:
        return await self._one(_w.workflow_id == workflow_id)

    async def by_hook(self, hook_id: str) -> Webhook | None:
        return await self._one(_w.hook_id == hook_id)

    async def add(self, webhook: Webhook) -> None:
        async with translate_errors():
            await self._connection.execute(
                insert_unless_exists(self._connection, webhooks),
                {
                    "workflow_id": webhook.workflow_id,
                    "hook_id": webhook.hook_id,
                    "owner_id": webhook.owner_id,
                    "secret_ref": None if webhook.secret_ref is None else webhook.secret_ref.value,
                    "created_at": webhook.created_at,
                    "secret_set_at": webhook.secret_set_at,
                },
            )

    async def set_secret(self, workflow_id: WorkflowId, ref: SecretRef, at: datetime) -> None:
        async with translate_errors():
            await self._connection.execute(
                update(webhooks)
                .where(_w.workflow_id == workflow_id)
                .values(secret_ref=ref.value, secret_set_at=at)
            )

    async def secret_refs(self) -> set[SecretRef]:
        async with translate_errors():
            refs = await self._connection.scalars(
                select(_w.secret_ref).where(_w.secret_ref.is_not(None))
            )
            return {SecretRef(ref) for ref in refs}

    async def _one(self, condition: Any) -> Webhook | None:
        async with translate_errors():
            row = (await self._connection.execute(select(webhooks).where(condition))).first()
        return None if row is None else _webhook(row)


def _webhook(row: Row[Any]) -> Webhook:
    return Webhook(
        workflow_id=WorkflowId(row.workflow_id),
        owner_id=UserId(row.owner_id),
        hook_id=row.hook_id,
        secret_ref=None if row.secret_ref is None else SecretRef(row.secret_ref),
        created_at=row.created_at,
        secret_set_at=row.secret_set_at,
    )
