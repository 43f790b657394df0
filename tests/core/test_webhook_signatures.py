"""The checks of a webhook request's authenticity, on a fake clock: the signature scheme, the
token and GitHub's; and `ReceiveWebhook` refusing a replayed signature."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from flowbuilder_adapters.memory import MemoryStore, MemoryUnitOfWork, MemoryWorkflowRepository
from flowbuilder_adapters.memory.executions import (
    MemoryExecutionRepository,
    MemoryOutbox,
    MemoryRateLimiter,
)
from flowbuilder_adapters.memory.idempotency import MemoryIdempotencyStore
from flowbuilder_adapters.memory.secrets import MemorySecretStore
from flowbuilder_adapters.memory.webhooks import MemoryWebhookRepository
from flowbuilder_core.credentials.model import SecretData
from flowbuilder_core.executions.ports import AdmitAll, QueueAdmission
from flowbuilder_core.shared.errors import OverloadedError
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.webhooks.errors import HookNotFoundError, WebhookUnauthenticatedError
from flowbuilder_core.webhooks.model import Webhook, WebhookRequest
from flowbuilder_core.webhooks.signatures import (
    TOLERANCE_S,
    check_github,
    check_signature,
    check_token,
    sign,
)
from flowbuilder_core.webhooks.use_cases import ReceiveWebhook
from flowbuilder_core.workflows.model import Definition, Node, Workflow, WorkflowFields, WorkflowId

SECRET = "s3cr3t-of-the-hook"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
BODY = b'{"order": 42}'


def v1(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def test_a_signature_made_as_documented_is_accepted_and_names_its_v1() -> None:
    header = f"t={T},v1={v1(SECRET, T, BODY)}"

    assert sign(SECRET, T, BODY) == header
    assert check_signature(SECRET, header, BODY, NOW) == v1(SECRET, T, BODY)


@pytest.mark.parametrize("skew", [-TOLERANCE_S, 0, TOLERANCE_S])
def test_a_signature_within_300_seconds_either_side_is_accepted(skew: int) -> None:
    header = sign(SECRET, T + skew, BODY)

    assert check_signature(SECRET, header, BODY, NOW) is not None


@pytest.mark.parametrize("skew", [-TOLERANCE_S - 1, TOLERANCE_S + 1, -(10**6)])
def test_a_signature_older_or_newer_than_300_seconds_is_refused(skew: int) -> None:
    header = sign(SECRET, T + skew, BODY)

    assert check_signature(SECRET, header, BODY, NOW) is None


def test_the_clock_decides_what_is_stale() -> None:
    header = sign(SECRET, T, BODY)

    later = NOW + timedelta(seconds=TOLERANCE_S + 1)

    assert check_signature(SECRET, header, BODY, NOW) is not None
    assert check_signature(SECRET, header, BODY, later) is None


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "t=1",
        f"v1={'0' * 64}",
        f"t={T}",
        f"t={T},v1=",
        f"t=abc,v1={'0' * 64}",
        f"t={T},t={T},v1={'0' * 64}",
        f"t=-{T},v1={'0' * 64}",
        f"t={'9' * 40},v1={'0' * 64}",
        "t" * 2000,
        f"t={T};v1={'0' * 64}",
        f"t=\u0661\u0662,v1={'0' * 64}",
    ],
)
def test_a_missing_or_malformed_header_proves_nothing(header: str | None) -> None:
    assert check_signature(SECRET, header, BODY, NOW) is None


def test_another_secret_body_or_timestamp_fails_the_digest() -> None:
    good = v1(SECRET, T, BODY)

    assert check_signature("another", f"t={T},v1={good}", BODY, NOW) is None
    assert check_signature(SECRET, f"t={T},v1={good}", BODY + b" ", NOW) is None
    assert check_signature(SECRET, f"t={T + 1},v1={good}", BODY, NOW) is None
    assert check_signature(SECRET, f"t={T},v1=\u00e9{good[1:]}", BODY, NOW) is None


def test_one_matching_v1_among_several_is_enough_and_case_does_not_matter() -> None:
    header = f"t={T},v1={'0' * 64},v1={v1(SECRET, T, BODY).upper()}"

    assert check_signature(SECRET, header, BODY, NOW) == v1(SECRET, T, BODY)


def test_token_and_github_checks() -> None:
    github = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()

    assert check_token(SECRET, SECRET)
    assert not check_token(SECRET, SECRET + "x")
    assert not check_token(SECRET, None)
    assert not check_token(SECRET, "\u00e9")
    assert check_github(SECRET, github, BODY)
    assert check_github(SECRET, github.upper().replace("SHA256", "sha256"), BODY)
    assert not check_github(SECRET, github, BODY + b"x")
    assert not check_github(SECRET, github.removeprefix("sha256="), BODY)
    assert not check_github(SECRET, None, BODY)


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now_is = now

    def now(self) -> datetime:
        return self.now_is


class Hooked:
    """A store with one workflow behind a signature-checked webhook whose secret is SECRET."""

    def __init__(self, clock: FixedClock) -> None:
        self.store, self.clock = MemoryStore(), clock
        self.secrets = MemorySecretStore(clock)
        self.hook_id = "hook-1"

    async def add(self, *, active: bool = True) -> Hooked:
        uow = MemoryUnitOfWork()
        definition = Definition((Node("hook", "trigger.webhook"),))
        workflow = Workflow.create(
            id=WorkflowId(uuid.uuid4()),
            owner_id=UserId("user_alice"),
            fields=WorkflowFields("Hooked", definition=definition),
            at=NOW,
        )
        workflow.active = active
        await MemoryWorkflowRepository(self.store, uow).add(workflow)
        hook = Webhook(
            workflow_id=workflow.id,
            owner_id=workflow.owner_id,
            hook_id=self.hook_id,
            created_at=NOW,
        )
        hook.secret_ref = await self.secrets.put(hook.binding, SecretData({"secret": SECRET}))
        await MemoryWebhookRepository(self.store, uow).add(hook)
        await uow.commit()
        return self

    def receive(self, admission: QueueAdmission | None = None) -> ReceiveWebhook:
        uow, store = MemoryUnitOfWork(), self.store
        return ReceiveWebhook(
            MemoryWebhookRepository(store, uow),
            MemoryWorkflowRepository(store, uow),
            MemoryExecutionRepository(store, uow),
            MemoryOutbox(store, uow),
            MemoryIdempotencyStore(store, uow),
            self.secrets,
            MemoryRateLimiter(store, 50, 100, "hooks:"),
            uow,
            self.clock,
            admission or AdmitAll(),
        )


def request(hook_id: str, header: str) -> WebhookRequest:
    headers = [("content-type", "application/json"), ("x-flowbuilder-signature", header)]
    return WebhookRequest(hook_id, "POST", f"/hooks/{hook_id}", [], headers, BODY)


async def test_the_same_v1_is_refused_a_second_time_even_later_in_its_window() -> None:
    clock = FixedClock(NOW)
    hooked = await Hooked(clock).add()
    header = sign(SECRET, T, BODY)

    first = await hooked.receive()(request(hooked.hook_id, header))
    clock.now_is = NOW + timedelta(seconds=TOLERANCE_S)
    with pytest.raises(WebhookUnauthenticatedError):
        await hooked.receive()(request(hooked.hook_id, header))
    clock.now_is = NOW + timedelta(seconds=TOLERANCE_S + 1)
    with pytest.raises(WebhookUnauthenticatedError):
        await hooked.receive()(request(hooked.hook_id, header))

    executions = hooked.store.executions.values()
    assert [e.id for e in executions] == [first.answer.execution_id]


async def test_a_new_signature_of_the_same_body_is_a_new_delivery() -> None:
    hooked = await Hooked(FixedClock(NOW)).add()

    await hooked.receive()(request(hooked.hook_id, sign(SECRET, T, BODY)))
    await hooked.receive()(request(hooked.hook_id, sign(SECRET, T + 1, BODY)))

    assert len(hooked.store.executions) == 2


async def test_an_inactive_workflows_hook_is_not_found_before_any_check() -> None:
    hooked = await Hooked(FixedClock(NOW)).add(active=False)

    with pytest.raises(HookNotFoundError):
        await hooked.receive()(request(hooked.hook_id, sign(SECRET, T, BODY)))

    assert hooked.store.buckets == {}


class FullQueue:
    def retry_after(self) -> int | None:
        return 1


async def test_a_full_queue_refuses_a_delivery_before_its_signature_is_spent() -> None:
    hooked = await Hooked(FixedClock(NOW)).add()
    header = sign(SECRET, T, BODY)

    with pytest.raises(OverloadedError):
        await hooked.receive(FullQueue())(request(hooked.hook_id, header))
    accepted = await hooked.receive()(request(hooked.hook_id, header))

    assert [e.id for e in hooked.store.executions.values()] == [accepted.answer.execution_id]
