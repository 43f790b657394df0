"""Outside services, each chosen from the settings: where secrets are kept, the execution
queue and its outbox, and who signs the tokens the API accepts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aioboto3
from dishka import Provider, Scope, provide
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowbuilder_adapters.clerk import ClerkTokenVerifier
from flowbuilder_adapters.dev_issuer import DevTokenIssuer
from flowbuilder_adapters.metrics import MeteredQueue, observe_jwks_fetch
from flowbuilder_adapters.queues.memory import (
    BoundedQueueAdmission,
    InMemoryDeadLetters,
    InMemoryExecutionQueue,
)
from flowbuilder_adapters.queues.sqs import SqsDeadLetters, SqsExecutionQueue, sqs_client
from flowbuilder_adapters.relay import OutboxRelay
from flowbuilder_adapters.secrets.aesgcm import AesGcmSecretStore
from flowbuilder_adapters.secrets.aws import SecretsManagerSecretStore, secrets_manager_client
from flowbuilder_adapters.secrets.keyfile import load_key
from flowbuilder_adapters.secrets.keyring import Keyring
from flowbuilder_adapters.settings import (
    CLERK_FRONTEND_URL_REQUIRED,
    SECRETS_PREFIX_REQUIRED,
    Settings,
    SettingsError,
)
from flowbuilder_adapters.sql.outbox import SqlOutbox
from flowbuilder_adapters.sql.rate_limits import SqlRateLimiter
from flowbuilder_adapters.sql.uow import SqlUnitOfWork
from flowbuilder_core.credentials.ports import SecretStore
from flowbuilder_core.executions.ports import (
    AdmitAll,
    DeadLetters,
    ExecutionQueue,
    Outbox,
    QueueAdmission,
    RateLimiter,
)
from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.identity import TokenVerifier
from flowbuilder_core.shared.quotas import Quotas, WriteRateLimiter
from flowbuilder_core.webhooks.ports import HookRateLimiter

EMBEDDED_KEY_FILE = "secrets.key"
EMBEDDED_FINGERPRINT_KEY_FILE = "idempotency.key"
WRITES = "writes:"
"""The key prefix of the write buckets, beside the execution buckets in the same table."""
HOOKS = "hooks:"
"""The key prefix of the webhooks' buckets (one per hook)."""


class DatabaseSecretsProvider(Provider):
    """Secrets encrypted with AES-256-GCM in the database, on the request's connection, so a
    secret commits or rolls back with its credential row."""

    def __init__(self, keyring: Keyring) -> None:
        super().__init__()
        self._keyring = keyring

    @provide(scope=Scope.APP)
    def keyring(self) -> Keyring:
        return self._keyring

    @provide(scope=Scope.REQUEST)
    def store(self, connection: AsyncConnection, keyring: Keyring, clock: Clock) -> SecretStore:
        return AesGcmSecretStore(connection, keyring, clock)


class SecretsManagerProvider(Provider):
    """Secrets in AWS Secrets Manager through one aioboto3 client for the process, under the
    deployment's own `prefix`."""

    def __init__(self, region: str, *, prefix: str) -> None:
        super().__init__()
        self._region, self._prefix = region, prefix

    @provide(scope=Scope.APP)
    async def store(self, clock: Clock) -> AsyncIterator[SecretStore]:
        async with secrets_manager_client(aioboto3.Session(), self._region) as client:
            yield SecretsManagerSecretStore(client, prefix=self._prefix, clock=clock)


def keyring_of(settings: Settings) -> Keyring:
    """The database secrets' keyring: `SECRETS_KEYRING`, or in embedded mode the key file that
    `prepare_embedded` created (this reads it; it never creates one)."""
    if settings.keyring is not None:
        return settings.keyring
    return Keyring.load(settings.data_dir / EMBEDDED_KEY_FILE)


def fingerprint_key_of(settings: Settings) -> bytes:
    """The server key of idempotency fingerprints: `IDEMPOTENCY_HMAC_KEY`, or in embedded mode
    the key file that `prepare_embedded` created (this reads it; it never creates one)."""
    if settings.idempotency_hmac_key is not None:
        return settings.idempotency_hmac_key
    return load_key(settings.data_dir / EMBEDDED_FINGERPRINT_KEY_FILE)


def secrets_provider(settings: Settings) -> Provider:
    """The SecretStore the settings call for. Secrets Manager without `SECRETS_PREFIX` is
    refused here for every process (`load_settings` refuses it for serve and worker already):
    `secrets sweep` would otherwise run under no deployment's prefix."""
    if not settings.secrets_in_database:
        if settings.secrets_prefix is None:
            raise SettingsError([SECRETS_PREFIX_REQUIRED])
        return SecretsManagerProvider(settings.aws_region, prefix=settings.secrets_prefix)
    return DatabaseSecretsProvider(keyring_of(settings))


@dataclass(frozen=True, slots=True)
class Queues:
    """The execution queue and its dead letters, over one client."""

    work: ExecutionQueue
    dead: DeadLetters
    admission: QueueAdmission


class QueueProvider(Provider):
    """The execution queue: SQS at `queue_url`, or, without one (embedded mode, maintenance
    commands), an in-process queue."""

    def __init__(
        self,
        queue_url: str | None,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        *,
        max_queued: int = 10_000,
    ) -> None:
        super().__init__()
        self._queue_url, self._region, self._endpoint_url = queue_url, region, endpoint_url
        self._max_queued = max_queued

    @provide(scope=Scope.APP)
    async def queues(self) -> AsyncIterator[Queues]:
        if self._queue_url is None:
            queue = InMemoryExecutionQueue()
            admission = BoundedQueueAdmission(queue, self._max_queued)
            yield Queues(queue, InMemoryDeadLetters(queue), admission)
            return
        session = aioboto3.Session()
        async with sqs_client(session, self._region, self._endpoint_url) as client:
            yield Queues(
                SqsExecutionQueue(client, self._queue_url),
                SqsDeadLetters(client, self._queue_url),
                AdmitAll(),
            )

    @provide(scope=Scope.APP)
    def admission(self, queues: Queues) -> QueueAdmission:
        return queues.admission

    @provide(scope=Scope.APP)
    def queue(self, queues: Queues) -> ExecutionQueue:
        return MeteredQueue(queues.work)

    @provide(scope=Scope.APP)
    def dead_letters(self, queues: Queues) -> DeadLetters:
        return queues.dead


def queue_provider(settings: Settings) -> QueueProvider:
    queue_url = None if settings.embedded else settings.workflow_queue_url
    return QueueProvider(
        queue_url,
        settings.aws_region,
        settings.sqs_endpoint_url,
        max_queued=settings.max_queued_executions,
    )


class OutboxProvider(Provider):
    """The outbox in the database, its relay to the queue, the per-user rate limiters
    (executions requested; writes) and the per-hook one, shared by every replica."""

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        hook_rate_per_second: float = 50,
        hook_burst: int = 100,
    ) -> None:
        super().__init__()
        self._rate_per_second, self._burst = rate_per_second, burst
        self._hook_rate_per_second, self._hook_burst = hook_rate_per_second, hook_burst

    @provide(scope=Scope.APP)
    def relay(self, engine: AsyncEngine, queue: ExecutionQueue, clock: Clock) -> OutboxRelay:
        return OutboxRelay(engine, queue, clock)

    @provide(scope=Scope.REQUEST)
    def outbox(self, connection: AsyncConnection, uow: SqlUnitOfWork, relay: OutboxRelay) -> Outbox:
        return SqlOutbox(connection, uow, relay.kick)

    @provide(scope=Scope.REQUEST)
    def rate_limiter(self, connection: AsyncConnection) -> RateLimiter:
        return SqlRateLimiter(connection, self._rate_per_second, self._burst)

    @provide(scope=Scope.REQUEST)
    def write_rate_limiter(self, connection: AsyncConnection, quotas: Quotas) -> WriteRateLimiter:
        return SqlRateLimiter(connection, quotas.writes_per_second, quotas.write_burst, WRITES)

    @provide(scope=Scope.REQUEST)
    def hook_rate_limiter(self, connection: AsyncConnection) -> HookRateLimiter:
        return SqlRateLimiter(connection, self._hook_rate_per_second, self._hook_burst, HOOKS)


def outbox_provider(settings: Settings) -> OutboxProvider:
    return OutboxProvider(
        settings.execution_rate_per_second,
        settings.execution_rate_burst,
        settings.webhook_rate_per_second,
        settings.webhook_rate_burst,
    )


class AuthProvider(Provider):
    """The TokenVerifier the settings call for: Clerk's JWKS, or the embedded dev issuer (whose
    key `prepare_embedded` created; this reads it)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self._settings = settings

    @provide(scope=Scope.APP)
    async def verifier(self) -> AsyncIterator[TokenVerifier]:
        settings = self._settings
        if settings.embedded:
            yield DevTokenIssuer.load(settings.data_dir).verifier()
            return
        if settings.clerk_frontend_url is None:
            # `load_settings` requires it for serve; a verifier built otherwise checks iss too.
            raise SettingsError([CLERK_FRONTEND_URL_REQUIRED])
        headers = (
            {"Authorization": f"Bearer {settings.clerk_secret_key}"}
            if settings.jwks_uses_backend_api and settings.clerk_secret_key
            else None
        )
        verifier = ClerkTokenVerifier(
            settings.jwks_url,
            issuer=settings.clerk_frontend_url,
            authorized_parties=settings.clerk_authorized_parties,
            audience=settings.clerk_audience,
            headers=headers,
            on_fetch=observe_jwks_fetch,
        )
        try:
            yield verifier
        finally:
            await verifier.aclose()
