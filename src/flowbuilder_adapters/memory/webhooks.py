"""Webhooks over the in-memory store."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from flowbuilder_adapters.memory.store import MemoryStore
from flowbuilder_adapters.memory.uow import MemoryUnitOfWork
from flowbuilder_core.credentials.model import SecretRef
from flowbuilder_core.webhooks.model import Webhook
from flowbuilder_core.webhooks.ports import WebhookRepository
from flowbuilder_core.workflows.model import WorkflowId


class MemoryWebhookRepository(WebhookRepository):
    """Writes take effect at the unit of work's commit; reads see committed state."""

    def __init__(self, store: MemoryStore, uow: MemoryUnitOfWork) -> None:
        self._webhooks, self._uow = store.webhooks, uow

    async def for_workflow(self, workflow_id: WorkflowId) -> Webhook | None:
        found = self._webhooks.get(workflow_id)
        return None if found is None else dataclasses.replace(found)

    async def by_hook(self, hook_id: str) -> Webhook | None:
        found = next((w for w in self._webhooks.values() if w.hook_id == hook_id), None)
        return None if found is None else dataclasses.replace(found)

    async def add(self, webhook: Webhook) -> None:
        added = dataclasses.replace(webhook)

        def change() -> None:
            self._webhooks.setdefault(added.workflow_id, added)

        self._uow.stage(change)

    async def set_secret(self, workflow_id: WorkflowId, ref: SecretRef, at: datetime) -> None:
        def change() -> None:
            found = self._webhooks.get(workflow_id)
            if found is not None:
                self._webhooks[workflow_id] = dataclasses.replace(
                    found, secret_ref=ref, secret_set_at=at
                )

        self._uow.stage(change)

    async def secret_refs(self) -> set[SecretRef]:
        return {w.secret_ref for w in self._webhooks.values() if w.secret_ref is not None}
