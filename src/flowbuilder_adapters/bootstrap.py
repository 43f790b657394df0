"""The composition root: dishka providers, chosen from Settings."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from functools import partial

import aioboto3
from dishka import AsyncContainer, Provider, Scope, make_async_container, provide, provide_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowbuilder_adapters.background import Background, Service
from flowbuilder_adapters.clerk import ClerkTokenVerifier
from flowbuilder_adapters.dev_issuer import DevTokenIssuer
from flowbuilder_adapters.nodes.basic import basic_runners
from flowbuilder_adapters.nodes.expressions import JmesPathEvaluator
from flowbuilder_adapters.nodes.http_request import HttpRequestRunner
from flowbuilder_adapters.queues.memory import InMemoryExecutionQueue
from flowbuilder_adapters.queues.sqs import SqsExecutionQueue, sqs_client
from flowbuilder_adapters.relay import OutboxRelay
from flowbuilder_adapters.secrets.aesgcm import AesGcmSecretStore, reencrypt
from flowbuilder_adapters.secrets.aws import (
    DEFAULT_PREFIX,
    SecretsManagerSecretStore,
    secrets_manager_client,
)
from flowbuilder_adapters.secrets.keyring import Keyring
from flowbuilder_adapters.settings import Mode, Settings
from flowbuilder_adapters.sql.engine import create_engine
from flowbuilder_adapters.sql.executions import SqlOutbox, SqlRateLimiter
from flowbuilder_adapters.sql.health import SqlHealthProbe
from flowbuilder_adapters.sql.provider import SqlProvider
from flowbuilder_adapters.sql.uow import SqlUnitOfWork
from flowbuilder_adapters.worker import Worker, sweep_lost_executions
from flowbuilder_core.credentials.ports import SecretStore
from flowbuilder_core.credentials.use_cases import (
    CreateCredential,
    DeleteCredential,
    GetCredential,
    ListCredentials,
    ReplaceCredential,
    ResolveCredential,
    SweepSecrets,
)
from flowbuilder_core.executions.engine import Engine
from flowbuilder_core.executions.ports import ExecutionQueue, Outbox, RateLimiter
from flowbuilder_core.executions.use_cases import (
    CancelExecution,
    ExecuteWorkflow,
    FinishExecution,
    FinishLostExecutions,
    GetExecution,
    ListExecutions,
    ListWorkflowExecutions,
    RecordStep,
    RetryExecution,
    StartExecution,
)
from flowbuilder_core.shared.clock import Clock, SystemClock
from flowbuilder_core.shared.health import HealthProbe
from flowbuilder_core.shared.identity import TokenVerifier
from flowbuilder_core.workflows.use_cases import (
    CreateWorkflow,
    DeleteWorkflow,
    GetWorkflow,
    GetWorkflowVersion,
    ListWorkflows,
    ListWorkflowVersions,
    ReplaceWorkflow,
    ValidateDefinition,
)

_log = logging.getLogger(__name__)


class CoreProvider(Provider):
    """The clock (APP) and every use case (REQUEST), whatever adapters stand behind them."""

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__()
        self._clock = clock if clock is not None else SystemClock()

    @provide(scope=Scope.APP)
    def clock(self) -> Clock:
        return self._clock

    use_cases = provide_all(
        ExecuteWorkflow,
        RetryExecution,
        GetExecution,
        ListExecutions,
        ListWorkflowExecutions,
        CancelExecution,
        StartExecution,
        RecordStep,
        FinishExecution,
        FinishLostExecutions,
        CreateCredential,
        GetCredential,
        ListCredentials,
        ReplaceCredential,
        DeleteCredential,
        ResolveCredential,
        SweepSecrets,
        CreateWorkflow,
        GetWorkflow,
        ListWorkflows,
        ReplaceWorkflow,
        DeleteWorkflow,
        ValidateDefinition,
        ListWorkflowVersions,
        GetWorkflowVersion,
        scope=Scope.REQUEST,
    )


class AuthProvider(Provider):
    """The TokenVerifier the settings call for: Clerk's JWKS, or the embedded dev issuer."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self._settings = settings

    @provide(scope=Scope.APP)
    async def verifier(self) -> AsyncIterator[TokenVerifier]:
        settings = self._settings
        if settings.embedded:
            yield DevTokenIssuer.load_or_create(settings.data_dir).verifier()
            return
        headers = (
            {"Authorization": f"Bearer {settings.clerk_secret_key}"}
            if settings.jwks_uses_backend_api and settings.clerk_secret_key
            else None
        )
        verifier = ClerkTokenVerifier(
            settings.jwks_url,
            issuer=settings.clerk_frontend_url,
            authorized_parties=settings.clerk_authorized_parties,
            headers=headers,
        )
        try:
            yield verifier
        finally:
            await verifier.aclose()


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
    """Secrets in AWS Secrets Manager through one aioboto3 client for the process."""

    def __init__(self, region: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        super().__init__()
        self._region, self._prefix = region, prefix

    @provide(scope=Scope.APP)
    async def store(self, clock: Clock) -> AsyncIterator[SecretStore]:
        async with secrets_manager_client(aioboto3.Session(), self._region) as client:
            yield SecretsManagerSecretStore(client, prefix=self._prefix, clock=clock)


def secrets_provider(settings: Settings) -> Provider:
    """The SecretStore the settings call for; embedded mode keeps a key of its own."""
    if not settings.secrets_in_database:
        return SecretsManagerProvider(settings.aws_region)
    keyring = settings.keyring
    if keyring is None:  # only embedded mode gets here without a key (settings check the rest)
        keyring = Keyring.load_or_create(settings.data_dir / "secrets.key")
    return DatabaseSecretsProvider(keyring)


class QueueProvider(Provider):
    """The execution queue: SQS at `queue_url`, or, without one (embedded mode, maintenance
    commands), an in-process queue."""

    def __init__(
        self, queue_url: str | None, region: str = "us-east-1", endpoint_url: str | None = None
    ) -> None:
        super().__init__()
        self._queue_url, self._region, self._endpoint_url = queue_url, region, endpoint_url

    @provide(scope=Scope.APP)
    async def queue(self) -> AsyncIterator[ExecutionQueue]:
        if self._queue_url is None:
            yield InMemoryExecutionQueue()
            return
        session = aioboto3.Session()
        async with sqs_client(session, self._region, self._endpoint_url) as client:
            yield SqsExecutionQueue(client, self._queue_url)


class OutboxProvider(Provider):
    """The outbox in the database, its relay to the queue, and the shared rate limiter."""

    def __init__(self, rate_per_second: float, burst: int) -> None:
        super().__init__()
        self._rate_per_second, self._burst = rate_per_second, burst

    @provide(scope=Scope.APP)
    def relay(self, engine: AsyncEngine, queue: ExecutionQueue, clock: Clock) -> OutboxRelay:
        return OutboxRelay(engine, queue, clock)

    @provide(scope=Scope.REQUEST)
    def outbox(self, connection: AsyncConnection, uow: SqlUnitOfWork, relay: OutboxRelay) -> Outbox:
        return SqlOutbox(connection, uow, relay.kick)

    @provide(scope=Scope.REQUEST)
    def rate_limiter(self, connection: AsyncConnection) -> RateLimiter:
        return SqlRateLimiter(connection, self._rate_per_second, self._burst)


def queue_provider(settings: Settings) -> QueueProvider:
    queue_url = None if settings.embedded else settings.workflow_queue_url
    return QueueProvider(queue_url, settings.aws_region, settings.sqs_endpoint_url)


def outbox_provider(settings: Settings) -> OutboxProvider:
    return OutboxProvider(settings.execution_rate_per_second, settings.execution_rate_burst)


class SqlHealthProvider(Provider):
    @provide(scope=Scope.APP)
    def health(self, engine: AsyncEngine, relay: OutboxRelay) -> HealthProbe:
        return SqlHealthProbe(engine, relay)


class EngineProvider(Provider):
    """The engine and its node runners, for whichever process runs executions."""

    def __init__(self, allow_private_network: bool) -> None:
        super().__init__()
        self._allow_private_network = allow_private_network

    @provide(scope=Scope.APP)
    async def http_runner(self) -> AsyncIterator[HttpRequestRunner]:
        runner = HttpRequestRunner(allow_private_network=self._allow_private_network)
        try:
            yield runner
        finally:
            await runner.aclose()

    @provide(scope=Scope.APP)
    def engine(self, http: HttpRequestRunner, clock: Clock) -> Engine:
        return Engine({**basic_runners(), "http.request": http}, JmesPathEvaluator(), clock)


class BackgroundProvider(Provider):
    """What runs beside requests: the API relays its outbox; a worker (or embedded mode, which
    is both) runs executions. Services are built from their dependencies, never looked up."""

    def __init__(self, *, relay: bool, worker: bool, concurrency: int = 4) -> None:
        super().__init__()
        self._relay, self._worker, self._concurrency = relay, worker, concurrency

    @provide(scope=Scope.APP)
    def background(
        self,
        container: AsyncContainer,
        relay: OutboxRelay,
        queue: ExecutionQueue,
        engine: Engine,
    ) -> Background:
        services: list[Service] = [partial(sweep_lost_executions, container)]
        if self._relay:
            services.append(relay.run)
        if self._worker:
            worker = Worker(container, queue, engine, concurrency=self._concurrency)
            services.append(worker.run)
        return Background(services)


def providers_for(settings: Settings, *, worker_concurrency: int = 4) -> list[Provider]:
    """Every provider a process needs, chosen from `settings`: the API server relays its
    outbox; a worker runs executions; embedded mode does both in one process."""
    runs_executions = settings.mode in (Mode.WORKER, Mode.EMBEDDED)
    return [
        CoreProvider(),
        SqlProvider(settings.database_url),
        SqlHealthProvider(),
        secrets_provider(settings),
        queue_provider(settings),
        outbox_provider(settings),
        EngineProvider(settings.http_node_allow_private_network),
        BackgroundProvider(
            relay=settings.mode is not Mode.WORKER,
            worker=runs_executions,
            concurrency=worker_concurrency,
        ),
        AuthProvider(settings),
    ]


async def reencrypt_database(settings: Settings, batch_size: int) -> int:
    """`flowbuilder secrets reencrypt`: every database secret onto the keyring's first key."""
    provider = secrets_provider(settings)
    assert isinstance(provider, DatabaseSecretsProvider)
    engine = create_engine(settings.database_url)
    try:
        return await reencrypt(engine, provider.keyring(), batch_size)
    finally:
        await engine.dispose()


async def sweep_secrets(settings: Settings) -> int:
    """`flowbuilder secrets sweep`: delete the secrets that no credential references."""
    container = make_async_container(
        CoreProvider(),
        SqlProvider(settings.database_url),
        secrets_provider(settings),
        QueueProvider(None),
        outbox_provider(settings),
    )
    try:
        async with container() as scope:
            sweep = await scope.get(SweepSecrets)
            return await sweep()
    finally:
        await container.close()


async def run_worker(settings: Settings, concurrency: int) -> None:
    """`flowbuilder worker`: run executions until SIGTERM or SIGINT, then stop gracefully."""
    container = make_async_container(*providers_for(settings, worker_concurrency=concurrency))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    background = await container.get(Background)
    try:
        await background.start()
        _log.info("worker started (concurrency %d)", concurrency)
        await stop.wait()
        _log.info("worker stopping: finishing the runs in progress")
        await background.stop()
    finally:
        await container.close()
