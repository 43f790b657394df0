"""The token bucket's formula, which every RateLimiter adapter takes tokens by."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flowbuilder_core.executions.rate import Bucket, RateLimit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIMIT = RateLimit(per_second=2, burst=10)


def test_a_bucket_never_used_is_full_and_gives_one_token() -> None:
    taken = LIMIT.take(None, T0)

    assert taken == Bucket(9, T0)


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    half_empty = Bucket(5, T0)

    after_a_second = LIMIT.take(half_empty, T0 + timedelta(seconds=1))
    after_an_hour = LIMIT.take(half_empty, T0 + timedelta(hours=1))

    assert after_a_second == Bucket(6, T0 + timedelta(seconds=1))
    assert after_an_hour == Bucket(9, T0 + timedelta(hours=1))


def test_an_empty_bucket_says_how_long_until_its_next_token() -> None:
    empty = Bucket(0.5, T0)

    wait = LIMIT.take(empty, T0)

    assert wait == 0.25


def test_a_take_at_an_earlier_time_keeps_the_later_time() -> None:
    bucket = Bucket(3, T0)

    taken = LIMIT.take(bucket, T0 - timedelta(seconds=5))

    assert taken == Bucket(2, T0)
