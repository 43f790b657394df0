"""The size of JSON measured without building it, and the budget of one node's expressions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowbuilder_core.executions.bounds import Budget, EngineLimits, json_size
from flowbuilder_core.executions.errors import NodeFailedError


def compact_utf8_size(value: Any) -> int:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


def doubled(stages: int) -> dict[str, Any]:
    """`{a: x, b: x}` around `{}`, `stages` times: tiny in memory, 2**stages `{}` in JSON."""
    value: dict[str, Any] = {}
    for _ in range(stages):
        value = {"a": value, "b": value}
    return value


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -17,
        10**30,
        1.5,
        -0.0,
        1e300,
        2.5e-8,
        "",
        "plain",
        'quote " backslash \\ slash /',
        "\n\r\t\b\f\x00\x01\x1f\x7f",
        "é ü 中文 😀",
        "\ud800 lone surrogate",
        [],
        {},
        [1, "two", [3, [4, {}]], {"k": None}],
        {"é": {"\n": [True, False]}, "": ""},
        {1: "int key", 2.5: "float key", None: "null key"},
        {False: "bool key"},
        (1, 2, ("tuple", "as", "list")),
        doubled(6),
    ],
)
def test_json_size_is_the_length_of_the_compact_utf8_json(value: Any) -> None:
    assert json_size(value, 10**9) == compact_utf8_size(value)


def test_json_size_at_the_limit_is_the_size_and_one_byte_over_is_none() -> None:
    value = {"text": "x" * 100, "list": [1, 2, 3]}
    size = compact_utf8_size(value)

    assert json_size(value, size) == size
    assert json_size(value, size - 1) is None


def test_json_size_gives_up_early_on_a_value_that_shares_references() -> None:
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1

    # 2**60 copies of `{}` in JSON; walking them would never end.
    size = json_size(doubled(60), 1024 * 1024, tick)

    assert size is None
    assert ticks < 200  # at most about one value per byte of the limit, a tick every 1,024


def test_json_size_refuses_a_long_list_by_its_commas_before_looking_at_its_items() -> None:
    class Unmeasurable:
        """Would fail the walk if it were ever looked at."""

    assert json_size([Unmeasurable()] * 1000, 500) is None


def test_json_size_refuses_what_is_not_json() -> None:
    with pytest.raises(TypeError):
        json_size({"when": object()}, 1000)
    with pytest.raises(TypeError):
        json_size({("a", "b"): 1}, 1000)


def test_json_size_calls_tick_as_it_walks() -> None:
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1

    json_size(list(range(10_000)), 10**9, tick)

    assert ticks == 10_001 // 1024


def test_a_budget_ticks_until_its_deadline_and_then_fails_with_expression_timeout() -> None:
    clock = FakeMonotonic()
    budget = Budget(seconds=2, build_limit=100, monotonic=clock)
    clock.now += 2
    budget.tick()

    clock.now += 0.001
    with pytest.raises(NodeFailedError) as caught:
        budget.tick()

    assert caught.value.code == "expression_timeout"
    assert caught.value.message == "The node's expressions did not finish within 2 s."


def test_a_stopped_budget_fails_its_next_tick_before_the_deadline() -> None:
    budget = Budget(seconds=60, build_limit=100, monotonic=FakeMonotonic())

    budget.stop()

    with pytest.raises(NodeFailedError, match="did not finish") as caught:
        budget.tick()
    assert caught.value.code == "expression_timeout"


def test_a_budget_allows_building_its_limit_and_not_one_more() -> None:
    budget = Budget(seconds=60, build_limit=100, monotonic=FakeMonotonic())
    budget.charge(60)
    budget.charge(40)

    with pytest.raises(NodeFailedError) as caught:
        budget.charge(1)

    assert caught.value.code == "output_too_large"
    assert "more than 100 array items" in caught.value.message


def test_a_budget_says_whether_so_much_can_still_be_built_without_charging_it() -> None:
    budget = Budget(seconds=60, build_limit=100, monotonic=FakeMonotonic())
    budget.check_room(100)
    budget.charge(100)

    with pytest.raises(NodeFailedError) as caught:
        budget.check_room(1)

    assert caught.value.code == "output_too_large"


def test_a_budget_says_whether_a_value_can_still_be_serialized() -> None:
    budget = Budget(seconds=60, build_limit=100, monotonic=FakeMonotonic())
    budget.charge(90)
    budget.check_buildable("x" * 8)  # 10 bytes with its quotes

    with pytest.raises(NodeFailedError) as caught:
        budget.check_buildable(doubled(20))

    assert caught.value.code == "output_too_large"


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_node_output_bytes": 0},
        {"max_run_context_bytes": -1},
        {"expression_timeout_s": 0},
        {"expression_timeout_s": float("nan")},
    ],
)
def test_engine_limits_must_be_positive(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        EngineLimits(**overrides)


def test_the_default_limits_are_the_documented_ones() -> None:
    assert EngineLimits() == EngineLimits(
        max_node_output_bytes=1024 * 1024,
        max_run_context_bytes=8 * 1024 * 1024,
        expression_timeout_s=2.0,
    )
