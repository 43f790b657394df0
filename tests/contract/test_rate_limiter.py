"""The RateLimiter contract: a token bucket per user, over every adapter."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from dishka import AsyncContainer

from flowbuilder_core.executions.ports import RateLimiter
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.webhooks.ports import HookRateLimiter

from support.contract import T0
from support.storage_hook import CUSTOM

ALICE, BOB = UserId("user_alice"), UserId("user_bob")


async def take(container: AsyncContainer, owner: UserId, seconds: float = 0) -> float | None:
    async with container() as scope:
        wait = await (await scope.get(RateLimiter)).take(owner, T0 + timedelta(seconds=seconds))
        await (await scope.get(UnitOfWork)).commit()
        return wait


async def test_a_full_bucket_gives_its_burst_then_says_how_long_to_wait(
    container: AsyncContainer,
) -> None:
    taken = [await take(container, ALICE) for _ in range(100)]

    refused = await take(container, ALICE)

    assert taken == [None] * 100
    assert refused is not None
    assert 0 < refused <= 1 / 20


async def test_the_bucket_refills_at_its_rate_and_each_user_has_their_own(
    container: AsyncContainer,
) -> None:
    for _ in range(100):
        await take(container, ALICE)

    after_a_second = [await take(container, ALICE, 1) for _ in range(21)]
    bob = await take(container, BOB)

    assert after_a_second[:20] == [None] * 20
    assert after_a_second[20] is not None
    assert bob is None


async def test_concurrent_first_requests_of_a_new_user_all_take_a_token(
    container: AsyncContainer,
) -> None:
    results = await asyncio.gather(*(take(container, UserId("user_new")) for _ in range(10)))

    assert results == [None] * 10


async def test_a_clock_that_steps_back_never_refills_the_same_time_twice(
    container: AsyncContainer,
) -> None:
    for _ in range(99):
        await take(container, ALICE, 10)
    last_token = await take(container, ALICE, 5)  # another replica's clock, a little behind

    again = await take(container, ALICE, 10)

    assert last_token is None
    assert again is not None


async def test_a_hooks_bucket_is_its_own_apart_from_a_users_of_the_same_name(
    container: AsyncContainer, adapter_name: str
) -> None:
    """The per-hook limiter (WEBHOOK_RATE_*: 50 a second, 100 at once by default) keys its
    buckets apart from the users'."""
    if adapter_name == CUSTOM:
        pytest.skip("a library Storage carries no webhook ports")
    name = UserId("same-name")
    for _ in range(100):
        await take(container, name)

    async with container() as scope:
        hooks = await scope.get(HookRateLimiter)
        taken = [await hooks.take(name, T0) for _ in range(100)]
        refused = await hooks.take(name, T0)
        await (await scope.get(UnitOfWork)).commit()

    assert taken == [None] * 100
    assert refused is not None
    assert 0 < refused <= 1 / 50
