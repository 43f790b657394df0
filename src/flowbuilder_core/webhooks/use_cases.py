"""Use cases of the webhooks context: a workflow's webhook and its secret, for its owner; and
the requests a third party sends to it (docs/API.md, Webhooks)."""

from __future__ import annotations

import logging
import uuid

from flowbuilder_core.credentials.model import SecretData
from flowbuilder_core.credentials.ports import SecretStore
from flowbuilder_core.credentials.use_cases import forget_secret
from flowbuilder_core.executions.events import FollowExecution
from flowbuilder_core.executions.model import Execution, ExecutionId
from flowbuilder_core.executions.ports import ExecutionRepository, Outbox, QueueAdmission
from flowbuilder_core.executions.use_cases import add_requested, refuse_unless_admitted
from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.errors import (
    FieldError,
    InvalidInputError,
    RateLimitedError,
)
from flowbuilder_core.shared.idempotency import (
    IdempotencyStore,
    IdempotentRequest,
    RecordedResult,
)
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId, new_uuid
from flowbuilder_core.shared.quotas import WriteRateLimiter, refuse_if_limited, take_write
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.webhooks import signatures
from flowbuilder_core.webhooks.answers import wait_for_answer
from flowbuilder_core.webhooks.errors import (
    DeliveryInFlightError,
    HookNotFoundError,
    WebhookNotFoundError,
    WebhookUnauthenticatedError,
)
from flowbuilder_core.webhooks.inputs import run_input
from flowbuilder_core.webhooks.model import (
    AuthMode,
    Awaited,
    Received,
    RespondMode,
    Webhook,
    WebhookAnswer,
    WebhookRequest,
    WebhookTrigger,
    WebhookView,
    new_hook_id,
    new_secret,
    respond_nodes,
)
from flowbuilder_core.webhooks.ports import HookRateLimiter, WebhookRepository, WebhookSteps
from flowbuilder_core.workflows.checks import owned_workflow
from flowbuilder_core.workflows.model import Workflow
from flowbuilder_core.workflows.ports import WorkflowRepository

_log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "idempotency-key"
MAX_DELIVERY_KEY = 255
SECRET_FIELD = "secret"  # noqa: S105 - the name of the stored field
_DELIVERY = "webhook-delivery"
"""The fingerprint of every delivery: a repeated key is the same delivery, whatever its body."""
_SIGNATURE = "webhook-signature"


def _deliveries(hook_id: str) -> UserId:
    """The idempotency store's owner of a hook's delivery keys. Clerk user ids never hold a
    colon, so these never meet a user's keys."""
    return UserId(f"hook:{hook_id}")


def _signatures(hook_id: str) -> UserId:
    """The owner of the `v1` signatures a hook has accepted (each is taken once)."""
    return UserId(f"hook-signature:{hook_id}")


async def _webhook_of(
    workflows: WorkflowRepository,
    webhooks: WebhookRepository,
    uow: UnitOfWork,
    clock: Clock,
    actor: Principal,
    workflow_id: uuid.UUID,
) -> tuple[Workflow, WebhookTrigger, Webhook]:
    """The caller's workflow, its webhook trigger and its webhook, made on first use."""
    workflow = await owned_workflow(workflows, actor.user_id, workflow_id)
    trigger = WebhookTrigger.of(workflow.definition)
    if trigger is None:
        raise WebhookNotFoundError
    hook = await webhooks.for_workflow(workflow.id)
    if hook is None:
        made = Webhook(
            workflow_id=workflow.id,
            owner_id=workflow.owner_id,
            hook_id=new_hook_id(),
            created_at=clock.now(),
        )
        await webhooks.add(made)
        await uow.commit()
        hook = await webhooks.for_workflow(workflow.id) or made
    return workflow, trigger, hook


class GetWebhook:
    """The webhook of one of the caller's workflows: its URL and settings, whether a secret is
    set (never the secret) and whether the workflow is active. The hook id is made on first
    use and kept for good. A workflow whose current definition has no `trigger.webhook` node
    is WebhookNotFoundError."""

    def __init__(
        self,
        workflows: WorkflowRepository,
        webhooks: WebhookRepository,
        uow: UnitOfWork,
        clock: Clock,
    ) -> None:
        self._workflows, self._webhooks, self._uow, self._clock = workflows, webhooks, uow, clock

    async def __call__(self, actor: Principal, workflow_id: uuid.UUID) -> WebhookView:
        workflow, trigger, hook = await _webhook_of(
            self._workflows, self._webhooks, self._uow, self._clock, actor, workflow_id
        )
        return WebhookView(hook, trigger, workflow.active)


class RotateWebhookSecret:
    """Make a new signing secret for the webhook of one of the caller's workflows and answer
    it, this once: it is kept in the SecretStore like a credential's values, and never shown
    again. The new secret is written and committed first, the old one deleted after, so a
    failure leaves the webhook with one readable secret. Takes a write token."""

    def __init__(
        self,
        workflows: WorkflowRepository,
        webhooks: WebhookRepository,
        secrets: SecretStore,
        writes: WriteRateLimiter,
        uow: UnitOfWork,
        clock: Clock,
    ) -> None:
        self._workflows, self._webhooks, self._secrets = workflows, webhooks, secrets
        self._writes, self._uow, self._clock = writes, uow, clock

    async def __call__(self, actor: Principal, workflow_id: uuid.UUID) -> str:
        await take_write(self._writes, actor.user_id, self._clock.now())
        _, _, hook = await _webhook_of(
            self._workflows, self._webhooks, self._uow, self._clock, actor, workflow_id
        )
        secret = new_secret()
        new_ref = await self._secrets.put(hook.binding, SecretData({SECRET_FIELD: secret}))
        try:
            await self._webhooks.set_secret(hook.workflow_id, new_ref, self._clock.now())
            await self._uow.commit()
        except BaseException:
            await forget_secret(self._secrets, new_ref)
            raise
        if hook.secret_ref is not None:
            await forget_secret(self._secrets, hook.secret_ref)
            await self._uow.commit()
        return secret


class ReceiveWebhook:
    """Take one request to a hook: check it, and request a run of the hook's workflow.

    - A hook that does not exist, whose workflow is deleted or inactive, whose current
      definition has no `trigger.webhook`, or that does not take the method: HookNotFoundError,
      the same for every reason.
    - Every request to a live hook takes a token from the hook's bucket first, authenticated
      or not, committed on its own (RateLimitedError when the bucket is empty).
    - OverloadedError, before any check spends a signature, while the queue takes no new
      work (`QueueAdmission`: embedded mode's bounded in-process queue).
    - Then the auth mode's check (`signatures`); any failure, a mode that needs a secret while
      none is set included, is WebhookUnauthenticatedError. An accepted `v1` signature is
      recorded and refused ever after (its `t` keeps it from being valid for long anyway).
    - A delivery key (the hook's `dedupe_header`, else `Idempotency-Key`; 1 to 255 printable
      characters) seen in the last 24 hours answers the first delivery's answer again and
      requests nothing; while that first one is still being taken, DeliveryInFlightError.
    - The run is requested as `execute` requests one (`add_requested`: the execution and its
      outbox message in one commit), with `trigger` "webhook", the current version, and the
      request as its input (`inputs.run_input`). Its answer so far (202) is recorded under the
      delivery key in the same commit.
    """

    def __init__(
        self,
        webhooks: WebhookRepository,
        workflows: WorkflowRepository,
        executions: ExecutionRepository,
        outbox: Outbox,
        idempotency: IdempotencyStore,
        secrets: SecretStore,
        rate: HookRateLimiter,
        uow: UnitOfWork,
        clock: Clock,
        admission: QueueAdmission,
    ) -> None:
        self._admission = admission
        self._webhooks, self._workflows = webhooks, workflows
        self._executions, self._outbox, self._idempotency = executions, outbox, idempotency
        self._secrets, self._rate, self._uow, self._clock = secrets, rate, uow, clock

    async def __call__(self, request: WebhookRequest) -> Received:
        hook, workflow, trigger = await self._find(request)
        wait = await self._rate.take(UserId(hook.hook_id), self._clock.now())
        await self._uow.commit()
        refuse_if_limited(wait, "requests to this webhook")
        refuse_unless_admitted(self._admission)
        await self._authenticate(hook, trigger, request)
        key = _delivery_key(request, trigger)
        delivery = (
            None if key is None else IdempotentRequest(_deliveries(hook.hook_id), key, _DELIVERY)
        )
        claimed = (
            None if delivery is None else await self._idempotency.claim(delivery, self._clock.now())
        )
        await self._uow.commit()  # the signature is spent, the delivery claimed
        if isinstance(claimed, RecordedResult):
            return Received(WebhookAnswer.from_bytes(claimed.payload), replayed=True)
        if claimed is not None:
            raise DeliveryInFlightError
        execution = Execution(
            id=ExecutionId(new_uuid()),
            owner_id=workflow.owner_id,
            workflow_id=workflow.id,
            workflow_version=workflow.version,
            trigger="webhook",
            input=run_input(request, self._clock.now()),
            created_at=self._clock.now(),
        )
        answer = WebhookAnswer.accepted(execution.id)
        try:
            await add_requested(self._executions, self._outbox, execution)
            if delivery is not None:
                await self._idempotency.complete(
                    delivery, RecordedResult(answer.to_bytes()), self._clock.now()
                )
            await self._uow.commit()
        except BaseException:
            if delivery is not None:
                await self._release(delivery)
            raise
        if trigger.respond is RespondMode.IMMEDIATELY:
            return Received(answer)
        awaited = Awaited(
            workflow.owner_id,
            execution.id,
            respond_nodes(workflow.definition),
            hook.hook_id,
            key,
        )
        return Received(answer, awaited=awaited)

    async def _find(self, request: WebhookRequest) -> tuple[Webhook, Workflow, WebhookTrigger]:
        hook = await self._webhooks.by_hook(request.hook_id)
        workflow = None if hook is None else await self._workflows.get(hook.workflow_id)
        trigger = None if workflow is None else WebhookTrigger.of(workflow.definition)
        if (
            hook is None
            or workflow is None
            or not workflow.active
            or trigger is None
            or request.method not in trigger.methods
        ):
            raise HookNotFoundError
        return hook, workflow, trigger

    async def _authenticate(
        self, hook: Webhook, trigger: WebhookTrigger, request: WebhookRequest
    ) -> None:
        if trigger.auth is AuthMode.NONE:
            return
        if hook.secret_ref is None:
            raise WebhookUnauthenticatedError("the hook has no secret yet")
        data = await self._secrets.get(hook.secret_ref, hook.binding)
        secret = data.values[SECRET_FIELD]
        if trigger.auth is AuthMode.TOKEN:
            if not signatures.check_token(secret, request.header(signatures.TOKEN_HEADER)):
                raise WebhookUnauthenticatedError("token check failed")
        elif trigger.auth is AuthMode.GITHUB:
            header = request.header(signatures.GITHUB_HEADER)
            if not signatures.check_github(secret, header, request.body):
                raise WebhookUnauthenticatedError("github signature check failed")
        else:
            header = request.header(signatures.SIGNATURE_HEADER)
            v1 = signatures.check_signature(secret, header, request.body, self._clock.now())
            if v1 is None:
                raise WebhookUnauthenticatedError("signature check failed")
            seen = IdempotentRequest(_signatures(hook.hook_id), v1, _SIGNATURE)
            if await self._idempotency.claim(seen, self._clock.now()) is not None:
                raise WebhookUnauthenticatedError("signature replayed")
            await self._idempotency.complete(seen, RecordedResult(b""), self._clock.now())

    async def _release(self, delivery: IdempotentRequest) -> None:
        try:
            await self._idempotency.release(delivery)
            await self._uow.commit()
        except Exception:  # the claim then lapses after its lease; the first error matters
            _log.warning("could not release a webhook delivery claim", exc_info=True)


def _delivery_key(request: WebhookRequest, trigger: WebhookTrigger) -> str | None:
    """The key that identifies a delivery: the hook's dedupe header, else Idempotency-Key."""
    name = IDEMPOTENCY_HEADER
    value = request.header(IDEMPOTENCY_HEADER)
    if trigger.dedupe_header is not None and request.header(trigger.dedupe_header) is not None:
        name, value = trigger.dedupe_header, request.header(trigger.dedupe_header)
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_DELIVERY_KEY or not value.isprintable():
        message = f"must be 1 to {MAX_DELIVERY_KEY} printable characters"
        raise InvalidInputError([FieldError.header(name, message)])
    return value


class RecordWebhookAnswer:
    """Record the final answer of a `when_finished` delivery under its key, in place of the
    202 recorded when its run was requested: a repeated delivery gets it from then on."""

    def __init__(self, idempotency: IdempotencyStore, uow: UnitOfWork, clock: Clock) -> None:
        self._idempotency, self._uow, self._clock = idempotency, uow, clock

    async def __call__(self, hook_id: str, delivery_key: str, answer: WebhookAnswer) -> None:
        delivery = IdempotentRequest(_deliveries(hook_id), delivery_key, _DELIVERY)
        await self._idempotency.complete(
            delivery, RecordedResult(answer.to_bytes()), self._clock.now()
        )
        await self._uow.commit()


class DeliverWebhook:
    """A webhook request from its arrival to its answer (`ReceiveWebhook`'s rules), with
    `respond: when_finished`: its run is awaited up to `wait_s`, reading its progress as an
    event stream does (`FollowExecution`: a short unit of work per poll, nothing held in
    between), and answered as `answers.answer_of` says; a run that has not ended by then
    gets the 202 `immediately` gets, and so does one whose owner already has
    `max_event_streams` streams and waits open on this process. The final answer replaces the
    202 recorded under the delivery key, if it can: failing that, it is still given (a repeat
    then gets the 202)."""

    def __init__(self, steps: WebhookSteps, follow: FollowExecution, wait_s: float) -> None:
        self._steps, self._follow, self._wait_s = steps, follow, wait_s

    async def __call__(self, request: WebhookRequest) -> Received:
        received = await self._steps.receive(request)
        awaited = received.awaited
        if awaited is None:
            return received
        try:
            answer = await wait_for_answer(self._follow, awaited, self._wait_s)
        except RateLimitedError:
            # The owner has as many streams and waits open here as they may: the run is
            # requested already, so the answer is the 202 that says so, not a 429 that would
            # have the sender deliver it again.
            answer = None
        if answer is None:
            return Received(received.answer)
        if awaited.delivery_key is not None:
            try:
                await self._steps.record(awaited.hook_id, awaited.delivery_key, answer)
            except Exception:  # the answer is known: give it; a repeat then gets the 202
                _log.warning("could not record a webhook's final answer", exc_info=True)
        return Received(answer)
