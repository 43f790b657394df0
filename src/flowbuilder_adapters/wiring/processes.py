"""What each process is made of, and the entrypoints' one call each: `serve` (the API relays
its outbox), `worker` (runs executions), embedded mode (both, in one process) and the
maintenance commands."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from dishka import AsyncContainer, Provider, Scope, make_async_container, provide

from flowbuilder_adapters.background import Background, Service, every
from flowbuilder_adapters.dev_issuer import DevTokenIssuer
from flowbuilder_adapters.metrics import MetricsListener, observe_slots
from flowbuilder_adapters.queues.memory import InMemoryExecutionQueue
from flowbuilder_adapters.relay import OutboxRelay
from flowbuilder_adapters.secrets.aesgcm import reencrypt
from flowbuilder_adapters.secrets.keyfile import load_or_create_key
from flowbuilder_adapters.secrets.keyring import Keyring
from flowbuilder_adapters.settings import EMBEDDED_DIR, Mode, Settings
from flowbuilder_adapters.sql.database import create_engine
from flowbuilder_adapters.sql.migrate import upgrade
from flowbuilder_adapters.wiring.core import CoreProvider, RunsProvider
from flowbuilder_adapters.wiring.scopes import ScopesProvider, in_scope
from flowbuilder_adapters.wiring.services import (
    EMBEDDED_FINGERPRINT_KEY_FILE,
    EMBEDDED_KEY_FILE,
    AuthProvider,
    QueueProvider,
    Queues,
    keyring_of,
    outbox_provider,
    queue_provider,
    secrets_provider,
)
from flowbuilder_adapters.wiring.storage import SqlHealthProvider, SqlProvider
from flowbuilder_adapters.wiring.webhooks import WebhooksProvider
from flowbuilder_adapters.worker import Worker
from flowbuilder_core.credentials.use_cases import SweepSecrets
from flowbuilder_core.executions.model import RunLimits
from flowbuilder_core.executions.ports import ExecutionQueue, Outbox
from flowbuilder_core.executions.run import RunExecution
from flowbuilder_core.executions.use_cases import (
    FailUndeliveredExecutions,
    FinishLostExecutions,
    ResumeParkedExecutions,
)
from flowbuilder_core.shared.quotas import Quotas
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.triggers.schedules import SchedulerLimits, StartDueSchedules
from flowbuilder_core.webhooks.model import WebhookLimits

_log = logging.getLogger(__name__)
SWEEP_SECONDS = 30.0


class BackgroundProvider(Provider):
    """What runs beside requests. Every process runs the sweeps: lost runs are finished (even
    while no worker is alive), parked runs whose owner has a free slot are sent again, and
    queued runs whose messages went to the dead-letter queue are failed. The API relays its
    outbox; a worker (or embedded mode, which is both) runs executions.

    A worker (and embedded mode) also runs a scheduler, which starts the runs of the schedules
    that are due every `schedule_tick_s`; several may run at once (see `StartDueSchedules`).

    Stopping: the worker gives its runs `grace_seconds`, then releases the rest; the relay
    flushes. An in-process queue (embedded mode) ends with the process, so what it still holds
    goes back to the outbox, for the relay of the next start."""

    def __init__(
        self,
        *,
        relay: bool,
        worker: bool,
        concurrency: int = 4,
        grace_seconds: float = 25.0,
        schedule_tick_s: float = 1.0,
        poll_seconds: float = 10.0,
    ) -> None:
        super().__init__()
        self._relay, self._worker, self._concurrency = relay, worker, concurrency
        self._grace, self._tick, self._poll = grace_seconds, schedule_tick_s, poll_seconds

    @provide(scope=Scope.APP)
    def background(
        self,
        container: AsyncContainer,
        relay: OutboxRelay,
        queue: ExecutionQueue,
        queues: Queues,
        run: RunExecution,
    ) -> Background:
        sweeps = {
            "the lost-run sweep": FinishLostExecutions,
            "resuming parked runs": ResumeParkedExecutions,
            "the dead-letter sweep": FailUndeliveredExecutions,
        }
        services: list[Service] = [
            every(SWEEP_SECONDS, in_scope(container, kind), what) for what, kind in sweeps.items()
        ]
        if self._relay:
            services.append(relay.run)
        in_process = isinstance(queues.work, InMemoryExecutionQueue)
        if self._worker:
            worker = Worker(
                queue,
                run,
                concurrency=self._concurrency,
                grace_seconds=self._grace,
                poll_seconds=self._poll,
                cancellable_polls=in_process,
                on_slots=observe_slots,
            )
            services.append(worker.run)
            services.append(
                every(self._tick, in_scope(container, StartDueSchedules), "the scheduler")
            )
        afterwards = []
        if isinstance(queues.work, InMemoryExecutionQueue):
            afterwards.append(_back_to_the_outbox(container, queues.work))
        # The worker takes its grace, or its last long poll if that is longer; its runs'
        # release then takes moments.
        grace = max(self._grace, self._poll) + 5
        return Background(services, grace_seconds=grace, afterwards=afterwards)


def _back_to_the_outbox(
    container: AsyncContainer, queue: InMemoryExecutionQueue
) -> Callable[[], Awaitable[None]]:
    """The messages left in an in-process queue, written to the outbox (after the worker and
    the relay stopped), so that the next start sends them again instead of losing them."""

    async def keep() -> None:
        messages = queue.drain()
        if not messages:
            return
        async with container() as scope:
            outbox, uow = await scope.get(Outbox), await scope.get(UnitOfWork)
            for message in messages:
                await outbox.add(message)
            await uow.commit()
        _log.info("%d queued execution(s) kept in the outbox for the next start", len(messages))

    return keep


def providers_for(settings: Settings, *, worker_concurrency: int = 4) -> list[Provider]:
    """Every provider a process needs, each adapter chosen from `settings`."""
    runs_executions = settings.mode in (Mode.WORKER, Mode.EMBEDDED)
    return [
        CoreProvider(
            limits=RunLimits(
                settings.max_running_per_user,
                settings.run_timeout_s,
                settings.max_event_streams_per_user,
            ),
            quotas=Quotas(
                max_workflows=settings.max_workflows_per_user,
                max_credentials=settings.max_credentials_per_user,
                versions_kept=settings.versions_kept_per_workflow,
                writes_per_second=settings.write_rate_per_second,
                write_burst=settings.write_rate_burst,
            ),
            min_interval_s=settings.schedules.min_interval_s,
            scheduler=SchedulerLimits(settings.schedules.batch, settings.schedules.catch_up_s),
        ),
        WebhooksProvider(
            WebhookLimits(
                settings.webhook_wait_s,
                settings.webhook_rate_per_second,
                settings.webhook_rate_burst,
            )
        ),
        SqlProvider(settings.database_url),
        SqlHealthProvider(),
        secrets_provider(settings),
        queue_provider(settings),
        outbox_provider(settings),
        RunsProvider(settings.http_node_allow_private_network, settings.engine_limits),
        ScopesProvider(),
        BackgroundProvider(
            relay=settings.mode is not Mode.WORKER,
            worker=runs_executions,
            concurrency=worker_concurrency,
            grace_seconds=settings.shutdown_grace_s,
            schedule_tick_s=settings.schedules.tick_s,
            poll_seconds=settings.worker_poll_s,
        ),
        AuthProvider(settings),
    ]


def prepare_embedded(settings: Settings) -> None:
    """Before an embedded server starts: its directory, the dev issuer's signing key, the
    secrets key and the idempotency fingerprints' key (each created once, then kept), and the
    schema of its SQLite database."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    DevTokenIssuer.load_or_create(settings.data_dir)
    if settings.keyring is None:
        Keyring.load_or_create(settings.data_dir / EMBEDDED_KEY_FILE)
    if settings.idempotency_hmac_key is None:
        load_or_create_key(settings.data_dir / EMBEDDED_FINGERPRINT_KEY_FILE)
    asyncio.run(upgrade(settings.database_url))


def migrate(settings: Settings) -> None:
    """`flowbuilder migrate`: the database schema up to the latest revision."""
    asyncio.run(upgrade(settings.database_url))


def issue_dev_token(user: str, ttl_s: int) -> str:
    """`flowbuilder dev-token`: a token from the embedded issuer (its key made if missing)."""
    return DevTokenIssuer.load_or_create(EMBEDDED_DIR).issue(user, ttl_s=ttl_s)


async def run_worker(settings: Settings, concurrency: int) -> None:
    """`flowbuilder worker`: run executions until SIGTERM or SIGINT, then stop gracefully."""
    container = make_async_container(*providers_for(settings, worker_concurrency=concurrency))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    listener = MetricsListener(settings.metrics_host, settings.metrics_port)
    if settings.metrics_enabled:
        listener.start()
    try:
        background = await container.get(Background)
        await background.start()
        _log.info("worker started (concurrency %d)", concurrency)
        await stop.wait()
        _log.info("worker stopping: finishing the runs in progress")
        await background.stop()
    finally:
        await container.close()
        listener.stop()


async def reencrypt_database(settings: Settings, batch_size: int) -> int:
    """`flowbuilder secrets reencrypt`: every database secret onto the keyring's first key."""
    engine = create_engine(settings.database_url)
    try:
        return await reencrypt(engine, keyring_of(settings), batch_size)
    finally:
        await engine.dispose()


async def sweep_secrets(settings: Settings) -> int:
    """`flowbuilder secrets sweep`: delete the secrets that no credential nor webhook
    references."""
    container = make_async_container(
        CoreProvider(),
        WebhooksProvider(),
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
