"""The gate in front of the connection pool: first come, first served, and bounded waits."""

from __future__ import annotations

import asyncio

import pytest

from flowbuilder_adapters.sql.connections import ConnectionGate
from flowbuilder_adapters.sql.errors import translate_errors
from flowbuilder_core.shared.errors import DependencyUnavailableError


async def test_a_released_permit_goes_to_the_longest_waiter_not_to_a_newcomer() -> None:
    gate = ConnectionGate(1)
    served: list[str] = []

    async def scope(name: str) -> None:
        await gate.acquire()
        served.append(name)
        await asyncio.sleep(0)
        gate.release()

    await gate.acquire()
    waiters = [asyncio.create_task(scope(name)) for name in ("first", "second", "third")]
    await asyncio.sleep(0)  # all three are queued now
    gate.release()
    # A newcomer asking in the same turn of the loop as the release, before any waiter has
    # run: the pool's own queue would give it the connection; the gate queues it last.
    await scope("newcomer")
    await asyncio.gather(*waiters)

    assert served == ["first", "second", "third", "newcomer"]


async def test_a_wait_longer_than_the_timeout_is_dependency_unavailable() -> None:
    gate = ConnectionGate(1, timeout_s=0.05)
    await gate.acquire()

    with pytest.raises(DependencyUnavailableError):
        async with translate_errors():
            await gate.acquire()

    gate.release()
    await gate.acquire()  # the permit the timed-out waiter never got is still there


async def test_the_gate_has_as_many_permits_as_the_pool_keeps_connections() -> None:
    from flowbuilder_adapters.sql.database import POSTGRES_POOL_SIZE, create_engine

    engine = create_engine("postgresql+asyncpg://user:secret@127.0.0.1:1/none")
    gate = ConnectionGate.for_engine(engine)
    for _ in range(POSTGRES_POOL_SIZE):
        await gate.acquire()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await gate.acquire()
    await engine.dispose()
