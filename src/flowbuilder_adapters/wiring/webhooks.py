"""The webhooks' providers: their use cases, the two steps of a request (each in a scope of
its own), the door the HTTP route asks for, and the secret sweep that keeps their secrets.

Apart from `CoreProvider` so that a container over ports without webhooks (a third party's
`Storage` in the contract suites) needs none of theirs; a process adds it after the core.
"""

from __future__ import annotations

import sys

from dishka import AsyncContainer, Provider, Scope, provide, provide_all

from flowbuilder_adapters.wiring.scopes import ScopedWebhookSteps
from flowbuilder_core.credentials.ports import CredentialRepository, SecretStore
from flowbuilder_core.credentials.use_cases import SweepSecrets
from flowbuilder_core.executions.events import FollowExecution
from flowbuilder_core.executions.model import RunLimits
from flowbuilder_core.executions.ports import RunTransactions
from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.webhooks.model import WebhookLimits
from flowbuilder_core.webhooks.ports import WebhookRepository, WebhookSteps
from flowbuilder_core.webhooks.use_cases import (
    DeliverWebhook,
    GetWebhook,
    ReceiveWebhook,
    RecordWebhookAnswer,
    RotateWebhookSecret,
)


class WebhooksProvider(Provider):
    """`limits.wait_s` is how long a `when_finished` request waits (the rate is the storage
    providers' business: the bucket lives with the data)."""

    def __init__(self, limits: WebhookLimits | None = None) -> None:
        super().__init__()
        self._limits = limits if limits is not None else WebhookLimits()

    use_cases = provide_all(
        GetWebhook,
        RotateWebhookSecret,
        ReceiveWebhook,
        RecordWebhookAnswer,
        scope=Scope.REQUEST,
    )

    @provide(scope=Scope.APP)
    def steps(self, container: AsyncContainer) -> WebhookSteps:
        return ScopedWebhookSteps(container)

    @provide(scope=Scope.APP)
    def deliver(self, steps: WebhookSteps, transactions: RunTransactions) -> DeliverWebhook:
        """With a follower of its own for the `when_finished` waits: they are bounded by each
        hook's rate and WEBHOOK_WAIT_S, not by the users' event-stream limit."""
        unbounded = RunLimits(max_event_streams=sys.maxsize)
        follow = FollowExecution(transactions, unbounded, poll_s=0.25)
        return DeliverWebhook(steps, follow, self._limits.wait_s)

    @provide(scope=Scope.REQUEST, override=True)
    def sweep_secrets(
        self,
        credentials: CredentialRepository,
        secrets: SecretStore,
        uow: UnitOfWork,
        clock: Clock,
        webhooks: WebhookRepository,
    ) -> SweepSecrets:
        """The sweep keeps the webhooks' secrets too."""
        return SweepSecrets(credentials, secrets, uow, clock, holders=(webhooks,))
