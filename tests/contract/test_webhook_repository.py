"""The WebhookRepository contract, over every adapter: one webhook per workflow, found by its
workflow or its hook id, its secret's reference, and nothing kept without a commit."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from dishka import AsyncContainer

from flowbuilder_core.credentials.model import SecretRef
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.webhooks.model import Webhook, new_hook_id
from flowbuilder_core.webhooks.ports import WebhookRepository
from flowbuilder_core.workflows.model import Workflow, WorkflowFields, WorkflowId
from flowbuilder_core.workflows.ports import WorkflowRepository

from support.contract import T0

OWNER = UserId("user_owner")


async def make_workflow(container: AsyncContainer) -> WorkflowId:
    workflow = Workflow.create(
        id=WorkflowId(uuid.uuid4()), owner_id=OWNER, fields=WorkflowFields("w"), at=T0
    )
    async with container() as scope:
        await (await scope.get(WorkflowRepository)).add(workflow)
        await (await scope.get(UnitOfWork)).commit()
    return workflow.id


def make_webhook(workflow_id: WorkflowId, **overrides: Any) -> Webhook:
    values: dict[str, Any] = {
        "workflow_id": workflow_id,
        "owner_id": OWNER,
        "hook_id": new_hook_id(),
        "created_at": T0,
    }
    values.update(overrides)
    return Webhook(**values)


async def in_scope(container: AsyncContainer, call: Any, *, commit: bool = True) -> Any:
    async with container() as scope:
        result = await call(await scope.get(WebhookRepository))
        if commit:
            await (await scope.get(UnitOfWork)).commit()
        return result


async def test_a_webhook_reads_back_by_its_workflow_and_by_its_hook_id(
    container: AsyncContainer,
) -> None:
    hook = make_webhook(await make_workflow(container))

    await in_scope(container, lambda r: r.add(hook))

    assert await in_scope(container, lambda r: r.for_workflow(hook.workflow_id)) == hook
    assert await in_scope(container, lambda r: r.by_hook(hook.hook_id)) == hook
    assert await in_scope(container, lambda r: r.by_hook(new_hook_id())) is None
    assert await in_scope(container, lambda r: r.for_workflow(uuid.uuid4())) is None


async def test_a_webhook_not_committed_is_not_kept(container: AsyncContainer) -> None:
    hook = make_webhook(await make_workflow(container))

    await in_scope(container, lambda r: r.add(hook), commit=False)

    assert await in_scope(container, lambda r: r.for_workflow(hook.workflow_id)) is None


async def test_a_workflow_keeps_its_first_webhook_whoever_adds_another(
    container: AsyncContainer,
) -> None:
    workflow = await make_workflow(container)
    first, second = make_webhook(workflow), make_webhook(workflow)

    await in_scope(container, lambda r: r.add(first))
    await in_scope(container, lambda r: r.add(second))

    assert await in_scope(container, lambda r: r.for_workflow(workflow)) == first
    assert await in_scope(container, lambda r: r.by_hook(second.hook_id)) is None


async def test_racing_first_adds_leave_one_webhook(container: AsyncContainer) -> None:
    workflow = await make_workflow(container)
    hooks = [make_webhook(workflow) for _ in range(5)]

    await asyncio.gather(*(in_scope(container, lambda r, h=h: r.add(h)) for h in hooks))

    kept = await in_scope(container, lambda r: r.for_workflow(workflow))
    assert kept in hooks


async def test_a_new_secret_is_pointed_at_and_every_reference_is_listed(
    container: AsyncContainer,
) -> None:
    one, two = (
        make_webhook(await make_workflow(container)),
        make_webhook(await make_workflow(container)),
    )
    await in_scope(container, lambda r: r.add(one))
    await in_scope(container, lambda r: r.add(two))
    later = T0.replace(hour=13)

    await in_scope(container, lambda r: r.set_secret(one.workflow_id, SecretRef("db:a"), T0))
    await in_scope(container, lambda r: r.set_secret(one.workflow_id, SecretRef("db:b"), later))

    found = await in_scope(container, lambda r: r.for_workflow(one.workflow_id))
    assert (found.secret_ref, found.secret_set_at) == (SecretRef("db:b"), later)
    assert await in_scope(container, lambda r: r.secret_refs()) == {SecretRef("db:b")}
