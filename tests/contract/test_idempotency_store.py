"""The IdempotencyStore contract, with UnitOfWork.deferring_commit, over every adapter."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from dishka import AsyncContainer

from flowbuilder_core.shared.idempotency import (
    LEASE,
    RETENTION,
    IdempotencyStore,
    IdempotentRequest,
    RecordedResult,
    Refusal,
)
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.uow import UnitOfWork

from support.contract import T0

REQUEST = IdempotentRequest(UserId("user_alice"), "key-1", "fingerprint-a")
ANSWER = RecordedResult(b"\x00any bytes at all\xff")


async def claim(
    container: AsyncContainer, request: IdempotentRequest, at: datetime = T0
) -> RecordedResult | Refusal | None:
    async with container() as scope:
        result = await (await scope.get(IdempotencyStore)).claim(request, at)
        await (await scope.get(UnitOfWork)).commit()
        return result


async def complete(container: AsyncContainer, request: IdempotentRequest) -> None:
    async with container() as scope:
        await (await scope.get(IdempotencyStore)).complete(request, ANSWER, T0)
        await (await scope.get(UnitOfWork)).commit()


async def test_a_new_key_is_claimed_then_replays_its_recorded_result_byte_for_byte(
    container: AsyncContainer,
) -> None:
    first = await claim(container, REQUEST)
    await complete(container, REQUEST)

    again = await claim(container, REQUEST)

    assert first is None
    assert again == ANSWER


async def test_a_claim_in_flight_is_refused_as_in_flight(container: AsyncContainer) -> None:
    await claim(container, REQUEST)

    again = await claim(container, REQUEST, T0 + timedelta(seconds=5))

    assert again is Refusal.IN_FLIGHT


async def test_the_same_key_with_another_fingerprint_is_refused(container: AsyncContainer) -> None:
    await claim(container, REQUEST)
    await complete(container, REQUEST)

    reused = await claim(container, IdempotentRequest(REQUEST.owner, REQUEST.key, "fingerprint-b"))

    assert reused is Refusal.KEY_REUSED


async def test_keys_are_per_user(container: AsyncContainer) -> None:
    await claim(container, REQUEST)

    other = await claim(container, IdempotentRequest(UserId("user_bob"), REQUEST.key, "other"))

    assert other is None


async def test_an_abandoned_claim_is_taken_over_after_its_lease(container: AsyncContainer) -> None:
    await claim(container, REQUEST)

    taken = await claim(container, REQUEST, T0 + LEASE + timedelta(seconds=1))
    again = await claim(container, REQUEST, T0 + LEASE + timedelta(seconds=2))

    assert taken is None
    assert again is Refusal.IN_FLIGHT


async def test_a_key_is_forgotten_after_24_hours(container: AsyncContainer) -> None:
    await claim(container, REQUEST)
    await complete(container, REQUEST)

    later = await claim(
        container, IdempotentRequest(REQUEST.owner, REQUEST.key, "new body"), T0 + RETENTION + LEASE
    )

    assert later is None


async def test_a_released_claim_frees_the_key(container: AsyncContainer) -> None:
    await claim(container, REQUEST)
    async with container() as scope:
        await (await scope.get(IdempotencyStore)).release(REQUEST)
        await (await scope.get(UnitOfWork)).commit()

    assert await claim(container, IdempotentRequest(REQUEST.owner, REQUEST.key, "fixed")) is None


async def test_a_deferring_block_commits_its_writes_when_it_ends(
    container: AsyncContainer,
) -> None:
    async with container() as scope:
        store, uow = await scope.get(IdempotencyStore), await scope.get(UnitOfWork)
        await store.claim(REQUEST, T0)
        await uow.commit()
        async with uow.deferring_commit():
            await store.complete(REQUEST, ANSWER, T0)

    assert await claim(container, REQUEST, T0 + timedelta(seconds=1)) == ANSWER


async def test_a_deferring_block_that_raises_commits_nothing_of_it(
    container: AsyncContainer,
) -> None:
    async def complete_then_fail(store: IdempotencyStore, uow: UnitOfWork) -> None:
        async with uow.deferring_commit():
            await store.complete(REQUEST, ANSWER, T0)
            await uow.commit()  # deferred to the end of the block
            raise RuntimeError("the request failed after its use case committed")

    async with container() as scope:
        store, uow = await scope.get(IdempotencyStore), await scope.get(UnitOfWork)
        await store.claim(REQUEST, T0)
        await uow.commit()
        with pytest.raises(RuntimeError):
            await complete_then_fail(store, uow)

    assert await claim(container, REQUEST, T0 + timedelta(seconds=1)) is Refusal.IN_FLIGHT


async def test_two_racing_claims_of_one_key_let_exactly_one_through(
    container: AsyncContainer, adapter_name: str
) -> None:
    results = await asyncio.gather(
        claim(container, REQUEST), claim(container, REQUEST), return_exceptions=True
    )

    assert sorted(str(r) for r in results) == ["None", "Refusal.IN_FLIGHT"]
    del adapter_name


async def test_completing_again_replaces_the_recorded_result(container: AsyncContainer) -> None:
    """What a webhook answering `when_finished` relies on: the 202 recorded with its run is
    replaced by the run's own answer once it is known."""
    final = RecordedResult(b"the final answer")
    await claim(container, REQUEST)
    await complete(container, REQUEST)

    async with container() as scope:
        await (await scope.get(IdempotencyStore)).complete(REQUEST, final, T0)
        await (await scope.get(UnitOfWork)).commit()

    assert await claim(container, REQUEST) == final
