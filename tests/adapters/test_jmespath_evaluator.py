"""The JMESPath expression evaluator."""

from __future__ import annotations

import re
from typing import Any

import jmespath
import pytest

from flowbuilder_adapters.nodes.expressions import JmesPathEvaluator
from flowbuilder_core.executions.errors import ExpressionError

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
    assert JmesPathEvaluator().evaluate(expression, DATA) == expected


def test_an_unknown_path_is_null() -> None:
    assert JmesPathEvaluator().evaluate("input.nothing.here", DATA) is None


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
        JmesPathEvaluator().evaluate(expression, DATA)


def test_a_type_error_names_the_types_but_never_the_value() -> None:
    data = {"token": 918273645}

    with pytest.raises(ExpressionError) as caught:
        JmesPathEvaluator().evaluate("length(token)", data)

    message = str(caught.value)
    assert "length()" in message
    assert "number" in message
    assert "918273645" not in message
    assert caught.value.__cause__ is None


def test_comparing_a_string_with_a_number_is_an_expression_error_without_the_value() -> None:
    with pytest.raises(ExpressionError) as caught:
        JmesPathEvaluator().evaluate("secret > `1`", {"secret": "hunter2"})

    assert "hunter2" not in str(caught.value)


def test_an_absurdly_nested_expression_is_an_expression_error() -> None:
    expression = "(" * 5_000 + "a" + ")" * 5_000

    with pytest.raises(ExpressionError, match="nested too deeply"):
        JmesPathEvaluator().evaluate(expression, {"a": 1})


def test_compiled_expressions_are_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    real_compile = jmespath.compile

    def counting_compile(expression: str) -> Any:
        compiled.append(expression)
        return real_compile(expression)

    monkeypatch.setattr(jmespath, "compile", counting_compile)
    evaluator = JmesPathEvaluator()

    for _ in range(3):
        evaluator.evaluate("input.order.id", DATA)
    evaluator.evaluate("input.order", DATA)

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
        evaluator.evaluate(expression, {})

    assert compiled == ["a", "b", "c", "b"]
