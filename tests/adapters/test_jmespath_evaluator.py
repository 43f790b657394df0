"""The JMESPath expression evaluator."""

from __future__ import annotations

import functools
import json
import random
import re
from typing import Any

import jmespath
import pytest

from flowbuilder_adapters.nodes import expressions
from flowbuilder_adapters.nodes.expressions import JmesPathEvaluator
from flowbuilder_core.executions.bounds import Budget
from flowbuilder_core.executions.errors import ExpressionError, NodeFailedError


def roomy() -> Budget:
    """A budget no expression of these tests comes near."""
    return Budget(seconds=60, build_limit=10**9)


DATA = {"input": {"order": {"id": 7, "items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 0}]}}}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("input.order.id", 7),
        ("input.order.items[].sku", ["a", "b"]),
        ("input.order.items[?qty > `0`].sku", ["a"]),
        ("length(input.order.items)", 2),
        (
            "{count: length(input.order.items), first: input.order.items[0].sku}",
            {
                "count": 2,
                "first": "a",
            },
        ),
        ("`true`", True),
    ],
)
def test_it_evaluates_jmespath_over_json_data(expression: str, expected: Any) -> None:
    assert JmesPathEvaluator().evaluate(expression, DATA, roomy()) == expected


def test_an_unknown_path_is_null() -> None:
    assert JmesPathEvaluator().evaluate("input.nothing.here", DATA, roomy()) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("input.[", "Invalid jmespath expression"),
        ("", "cannot be empty"),
        ("nope(input)", "Unknown function: nope()"),
        ("length(input, input)", "Expected 1 argument for function length()"),
    ],
)
def test_a_bad_expression_raises_an_expression_error_with_jmespaths_message(
    expression: str, message: str
) -> None:
    with pytest.raises(ExpressionError, match=re.escape(message)):
        JmesPathEvaluator().evaluate(expression, DATA, roomy())


def test_a_type_error_names_the_types_but_never_the_value() -> None:
    data = {"token": 918273645}

    with pytest.raises(ExpressionError) as caught:
        JmesPathEvaluator().evaluate("length(token)", data, roomy())

    message = str(caught.value)
    assert "length()" in message
    assert "number" in message
    assert "918273645" not in message
    assert caught.value.__cause__ is None


def test_comparing_a_string_with_a_number_is_an_expression_error_without_the_value() -> None:
    with pytest.raises(ExpressionError) as caught:
        JmesPathEvaluator().evaluate("secret > `1`", {"secret": "hunter2"}, roomy())

    assert "hunter2" not in str(caught.value)


def test_an_absurdly_nested_expression_is_an_expression_error() -> None:
    expression = "(" * 5_000 + "a" + ")" * 5_000

    with pytest.raises(ExpressionError, match="nested too deeply"):
        JmesPathEvaluator().evaluate(expression, {"a": 1}, roomy())


def test_compiled_expressions_are_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    real_compile = jmespath.compile

    def counting_compile(expression: str) -> Any:
        compiled.append(expression)
        return real_compile(expression)

    monkeypatch.setattr(jmespath, "compile", counting_compile)
    evaluator = JmesPathEvaluator()

    for _ in range(3):
        evaluator.evaluate("input.order.id", DATA, roomy())
    evaluator.evaluate("input.order", DATA, roomy())

    assert compiled == ["input.order.id", "input.order"]


def test_the_cache_evicts_the_least_recently_used_expression(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled: list[str] = []
    real_compile = jmespath.compile

    def counting_compile(expression: str) -> Any:
        compiled.append(expression)
        return real_compile(expression)

    monkeypatch.setattr(jmespath, "compile", counting_compile)
    evaluator = JmesPathEvaluator(cache_size=2)

    for expression in ("a", "b", "a", "c", "a", "b"):
        evaluator.evaluate(expression, {}, roomy())

    assert compiled == ["a", "b", "c", "b"]


# --- the budget: deadline and build allowance ------------------------------------------------


def expired() -> Budget:
    """A budget whose deadline has passed: the first check fails."""
    return Budget(seconds=-1, build_limit=10**9)


def doubling(stages: int, start: str = "input") -> str:
    """A value of a few hundred bytes whose JSON doubles at every stage."""
    return start + " | {a: @, b: @}" * stages


def expect_failure(code: str, expression: str, data: Any, budget: Budget) -> None:
    with pytest.raises(NodeFailedError) as caught:
        JmesPathEvaluator().evaluate(expression, data, budget)
    assert caught.value.code == code


def test_a_long_loop_that_builds_nothing_ends_at_its_deadline() -> None:
    expression = "length([" + ", ".join(["input.xs"] * 200) + "][*][?@ < `0`][])"
    data = {"input": {"xs": list(range(10_000))}}  # 2 million comparisons: seconds of work

    expect_failure("expression_timeout", expression, data, Budget(seconds=0.05, build_limit=10**9))


def test_an_expression_that_doubles_a_real_list_stops_when_its_allowance_is_spent() -> None:
    expression = "input" + " | [@, @][]" * 20  # a list of 2**20 items

    expect_failure(
        "output_too_large", expression, {"input": [1]}, Budget(seconds=60, build_limit=10_000)
    )


def test_values_that_share_references_are_never_serialized_over_the_allowance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serialized: list[object] = []
    real_dumps = json.dumps

    def spying_dumps(value: object, **options: Any) -> str:
        serialized.append(value)
        return real_dumps(value, **options)

    monkeypatch.setattr(expressions.json, "dumps", spying_dumps)
    expression = f"to_string({doubling(20)})"  # 2**20 times `{}`: 13 MB of JSON

    expect_failure(
        "output_too_large", expression, {"input": {}}, Budget(seconds=60, build_limit=100_000)
    )
    assert serialized == []


def test_join_refuses_to_build_a_string_over_the_allowance_and_charges_it_once() -> None:
    data = {"parts": ["x" * 1000] * 100}  # 100,000 characters once joined

    expect_failure(
        "output_too_large", "join('', parts)", data, Budget(seconds=60, build_limit=99_999)
    )
    joined = JmesPathEvaluator().evaluate(
        "length(join('', parts))", data, Budget(seconds=60, build_limit=100_000)
    )

    assert joined == 100_000


@pytest.mark.parametrize(
    "expression",
    [
        f"{{x: ({doubling(24)}), y: ({doubling(24)})}} | x == y",
        f"{{x: ({doubling(24)}), y: ({doubling(24)})}} | x != y",
        f"{{x: ({doubling(24)}), y: ({doubling(24)})}} | contains([x], y)",
    ],
    ids=["==", "!=", "contains"],
)
def test_comparing_values_that_share_references_ends_at_the_deadline(expression: str) -> None:
    # x and y are built apart, so no part of one is the same object as a part of the other:
    # a comparison looks at all 2**24 pairs, as many as their JSON has values.
    expect_failure(
        "expression_timeout", expression, {"input": {}}, Budget(seconds=0.05, build_limit=10**9)
    )


LONG = {
    "xs": list(range(100_000)),
    "strs": [str(i) for i in range(100_000)],
    "objs": [{"k": i % 7} for i in range(100_000)],
}


@pytest.mark.parametrize(
    "expression",
    [
        "sort(xs)",
        "sort_by(objs, &k)",
        "max(xs)",
        "min(strs)",
        "sum(xs)",
        "avg(xs)",
        "join(',', strs)",
        'contains(objs, `{"k": 9}`)',
        "to_string(objs)",
    ],
)
def test_functions_over_long_arrays_check_the_deadline_as_they_go(expression: str) -> None:
    expect_failure("expression_timeout", expression, LONG, expired())


@functools.cache
def varied_data() -> dict[str, Any]:
    """Read only: shared by the tests below."""
    generator = random.Random(7)
    count = 3 * (1 << 14) + 5  # more than two of the slices the functions work in
    floats = [generator.uniform(-1e6, 1e6) for _ in range(count)]
    return {
        "floats": floats,
        "ints": [generator.randrange(-1000, 1000) for _ in range(count)],
        "strs": [f"s{generator.randrange(10_000)}" for _ in range(count)],
        "objs": [{"k": generator.randrange(5), "i": i} for i in range(count)],
        "pair": [{"a": [1, {"b": "é"}]}, {"a": [1, {"b": "é"}]}],
        "mixed": {"one": 1, "t": True, "zero": 0, "f": False, "list1": [1], "listt": [True]},
        "ones": [1.0, 1, 1] * count,  # equal, yet written differently in JSON
    }


@pytest.mark.parametrize(
    "expression",
    [
        "sort(floats)",
        "sort(strs)",
        "sort_by(objs, &k)",  # ties keep their order
        "sort_by(objs[:20000], &to_string(k))",
        "max(ints)",
        "min(ints)",
        "max(strs)",
        "sum(floats)",  # the rounding depends on the order of the additions
        "avg(floats)",
        "join('-', strs[:100])",
        'contains(objs, `{"k": 3, "i": 17}`)',
        'contains(objs, `{"k": 3, "i": -1}`)',
        "contains(strs, 's42')",
        "pair[0] == pair[1]",
        "pair[0] != pair[1]",
        "pair[0] == objs[0]",
        "mixed.one == mixed.t",
        "mixed.zero == mixed.f",
        "mixed.list1 == mixed.listt",
        "contains(`[1]`, mixed.t)",
        "to_string(pair)",
        "to_string(objs[:3])",
        "to_string(objs)",  # large enough to be written by the Python encoder
        "to_string(strs)",
        "sort(`[]`)",
        "max(`[]`)",
        "avg(`[]`)",
        "sort_by(`[]`, &a)",
    ],
)
def test_the_bounded_functions_and_comparisons_answer_as_jmespath_does(expression: str) -> None:
    data = varied_data()

    assert JmesPathEvaluator().evaluate(expression, data, roomy()) == jmespath.search(
        expression, data
    )


def test_sorting_keeps_equal_numbers_in_their_order_across_slices() -> None:
    data = varied_data()

    answer = JmesPathEvaluator().evaluate("sort(ones)", data, roomy())

    assert json.dumps(answer) == json.dumps(jmespath.search("sort(ones)", data))


def test_sort_by_still_requires_keys_of_one_type() -> None:
    with pytest.raises(ExpressionError, match="sort_by"):
        JmesPathEvaluator().evaluate('sort_by(`[{"k": 1}, {"k": "a"}]`, &k)', {}, roomy())


def test_to_string_of_an_expression_reference_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="to_string"):
        JmesPathEvaluator().evaluate("to_string(&a)", {}, roomy())
