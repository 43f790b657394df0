"""Helpers of the contract suites: the adapters' providers and a controllable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dishka import Provider

from flowbuilder_adapters.secrets.keyring import Keyring
from flowbuilder_adapters.wiring import DatabaseSecretsProvider, OutboxProvider, QueueProvider

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def sql_extras() -> list[Provider]:
    """What the SQL adapters need beside SqlProvider for the whole use-case graph: a secret
    store in the database, an in-process queue, the outbox and the rate limiter."""
    return [database_secrets(), QueueProvider(None), OutboxProvider(20, 100)]


def database_secrets() -> DatabaseSecretsProvider:
    """The SQL adapters' secret store, which the credential use cases in the graph need."""
    return DatabaseSecretsProvider(Keyring.generate()[0])


class SteppingClock:
    """Each reading is one millisecond after the previous one."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        self._now += timedelta(milliseconds=1)
        return self._now
