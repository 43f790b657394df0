"""JMESPath expressions for templates, `logic.if` and `data.transform`, within a budget.

The engine runs an evaluation in a worker thread and hands it the node's `Budget` (a deadline
and an allowance of values to build; see `flowbuilder_core.executions.bounds`). A thread cannot
be stopped from outside, so the evaluation stops itself:

- Every step of jmespath's tree interpreter goes through `visit`, which checks the deadline
  every 512 steps, and charges every array, object or string a step builds by its length.
  So an expression that loops for long (nested filters over a list) ends at the deadline, and
  one that grows real data (`[@, @][]` doubles a list at every stage) ends when the allowance
  is spent, long before memory is.
- jmespath also does some work in single C calls, which hold the GIL (so the event loop waits
  for them) and cannot check anything, and some of that work has no bound: comparing or
  serializing a value that shares references (`{a: @, b: @}`, stage after stage) costs as
  much as its JSON, which doubles at every stage. Those are replaced here: `==`, `!=` and
  `contains()` compare by an iterative walk, `to_string()` measures before it serializes (and
  writes a large value with the Python encoder),
  `join()` counts before it joins, and `sort()`, `sort_by()`, `max()`, `min()`, `sum()` and
  `avg()` work in slices of `_SLICE` items (a merge of sorted slices for the sorts), each a few
  milliseconds at most, checking between them. What is left in C is linear in a value the
  allowance bounds (a slice, a flatten, `reverse()`, `merge()`).

Results are what jmespath itself answers, sort stability and float summation order included.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final

import jmespath
from jmespath import exceptions
from jmespath.functions import Functions, signature
from jmespath.visitor import Options, TreeInterpreter, _is_special_number_case

from flowbuilder_core.executions.bounds import Budget
from flowbuilder_core.executions.errors import ExpressionError, NodeFailedError
from flowbuilder_core.executions.model import Json
from flowbuilder_core.executions.ports import ExpressionEvaluator

_SLICE: Final = 1 << 14
"""Items one C call may work on at a time (sorting 16,384 numbers takes about 2 ms)."""

_SMALL_JSON: Final = 64 * 1024
"""JSON this small is written by the C encoder (well under a millisecond)."""

_TO_STRING: Final = json.JSONEncoder(separators=(",", ":"), default=str)
"""What jmespath's to_string() writes with json.dumps."""

_TICK_EVERY: Final = 511
"""Interpreter steps between two deadline checks (a mask: a check every 512 steps)."""

_BUILDERS: Final = frozenset(
    {
        "projection",
        "filter_projection",
        "value_projection",
        "flatten",
        "multi_select_list",
        "multi_select_dict",
        "slice",
        "function_expression",
    }
)
"""The steps that can answer a new array, object or string (the others pass on a value that
exists already). A function may answer one of its arguments: it is charged all the same."""


def _parse(expression: str) -> Any:
    return jmespath.compile(expression)


class JmesPathEvaluator(ExpressionEvaluator):
    """Evaluates JMESPath within a budget, with a per-instance LRU cache of compiled
    expressions (parsing is bounded by the expression's length, 10,000 characters).

    Every failure is an ExpressionError whose message comes from jmespath but never holds a
    value of the data: a type error names the function and the types only, and an unexpected
    failure gets a generic message. The expression itself (workflow code) may be quoted. The
    budget's NodeFailedError (`expression_timeout`, `output_too_large`) goes through as it is.
    """

    def __init__(self, cache_size: int = 1024) -> None:
        self._compile = functools.lru_cache(maxsize=cache_size)(_parse)

    def evaluate(self, expression: str, data: Json, budget: Budget) -> Json:
        try:
            parsed = self._compile(expression).parsed
            return _BoundedInterpreter(budget).visit(parsed, data)
        except NodeFailedError:
            raise
        except exceptions.JMESPathTypeError as exc:
            # Its own message quotes the offending value, which may be anyone's data.
            raise ExpressionError(
                f"In function {exc.function_name}(), expected one of: "
                f"{', '.join(exc.expected_types)}; received: {exc.actual_type}"
            ) from None
        except exceptions.JMESPathError as exc:
            raise ExpressionError(str(exc)) from None
        except TypeError:
            # jmespath lets Python compare a string with a number (`a > `1``) and fail.
            raise ExpressionError("The expression compares values of incompatible types.") from None
        except RecursionError:
            raise ExpressionError("The expression is nested too deeply.") from None
        except Exception:
            raise ExpressionError("The expression cannot be evaluated.") from None


class _BoundedInterpreter(TreeInterpreter):  # type: ignore[misc]
    """jmespath's interpreter, checking the budget at every step (see the module docstring)."""

    def __init__(self, budget: Budget) -> None:
        super().__init__(Options(custom_functions=_BoundedFunctions(budget)))
        self._budget = budget
        self._steps = 0

    def visit(self, node: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self._steps += 1
        if not self._steps & _TICK_EVERY:
            self._budget.tick()
        result = super().visit(node, *args, **kwargs)
        if node["type"] in _BUILDERS and isinstance(result, list | dict | str):
            self._budget.charge(len(result))
        return result

    def visit_comparator(self, node: dict[str, Any], value: Any) -> Any:
        if node["value"] not in self._EQUALITY_OPS:
            return super().visit_comparator(node, value)  # numbers and strings only
        left = self.visit(node["children"][0], value)
        right = self.visit(node["children"][1], value)
        # jmespath's own rule first: 0 and 1 never equal false and true.
        same = not _is_special_number_case(left, right) and _equal(left, right, self._budget)
        return same if node["value"] == "eq" else not same


class _BoundedFunctions(Functions):  # type: ignore[misc]
    """jmespath's functions, but those whose single C call has no bound (module docstring).
    Signatures are jmespath's: the arguments arrive type-checked."""

    def __init__(self, budget: Budget) -> None:
        self._budget = budget

    @signature({"types": []})  # type: ignore[untyped-decorator]
    def _func_to_string(self, arg: Any) -> str:
        if isinstance(arg, str):
            return arg
        # Measured first, stopping at the first byte over what is left to build.
        try:
            size = self._budget.check_buildable(arg)
        except TypeError:  # an expression reference (`&a`): jmespath would print its repr
            raise exceptions.JMESPathTypeError("to_string", arg, "expref", ["JSON"]) from None
        if size <= _SMALL_JSON:
            return json.dumps(arg, separators=(",", ":"), default=str)
        # The same text from the standard library's Python encoder, piece by piece: the C one
        # would hold the GIL for all of it.
        return "".join(_TO_STRING.iterencode(arg))

    @signature({"types": ["string"]}, {"types": ["array-string"]})  # type: ignore[untyped-decorator]
    def _func_join(self, separator: str, array: list[str]) -> str:
        length = len(separator) * max(len(array) - 1, 0)
        for index, item in enumerate(array):
            length += len(item)
            if not index & _TICK_EVERY:
                self._budget.tick()
        self._budget.check_room(length)  # the interpreter charges the string once built
        return separator.join(array)

    @signature({"types": ["array", "string"]}, {"types": []})  # type: ignore[untyped-decorator]
    def _func_contains(self, subject: Any, search: Any) -> bool:
        if isinstance(subject, str):
            return search in subject
        # Python's `in`: identity, else equality (no 0/1 versus boolean rule here).
        for index, item in enumerate(subject):
            if not index & _TICK_EVERY:
                self._budget.tick()
            if item is search or _equal(item, search, self._budget):
                return True
        return False

    @signature({"types": ["array-string", "array-number"]})  # type: ignore[untyped-decorator]
    def _func_sort(self, arg: list[Any]) -> list[Any]:
        return _sorted(arg, self._budget)

    @signature({"types": ["array"]}, {"types": ["expref"]})  # type: ignore[untyped-decorator]
    def _func_sort_by(self, array: list[Any], expref: Any) -> list[Any]:
        if not array:
            return array
        # As jmespath: the first item's key fixes the type every other key must have.
        first = expref.visit(expref.expression, array[0])
        required = self._convert_to_jmespath_type(type(first).__name__)
        if required not in ("number", "string"):
            raise exceptions.JMESPathTypeError("sort_by", array[0], required, ["string", "number"])
        key = self._create_key_func(expref, [required], "sort_by")
        # Keys first (the interpreter checks the budget there), then items sorted by (key,
        # position): positions are distinct, so items are never compared and ties keep order.
        keyed = [(key(item), position) for position, item in enumerate(array)]
        return [array[position] for _, position in _sorted(keyed, self._budget)]

    @signature({"types": ["array-number", "array-string"]})  # type: ignore[untyped-decorator]
    def _func_max(self, arg: list[Any]) -> Any:
        return max(_slices(arg, self._budget, max), default=None) if arg else None

    @signature({"types": ["array-number", "array-string"]})  # type: ignore[untyped-decorator]
    def _func_min(self, arg: list[Any]) -> Any:
        return min(_slices(arg, self._budget, min), default=None) if arg else None

    @signature({"types": ["array-number"]})  # type: ignore[untyped-decorator]
    def _func_sum(self, arg: list[Any]) -> Any:
        return _sum(arg, self._budget)

    @signature({"types": ["array-number"]})  # type: ignore[untyped-decorator]
    def _func_avg(self, arg: list[Any]) -> Any:
        return _sum(arg, self._budget) / len(arg) if arg else None


def _slices(items: Sequence[Any], budget: Budget, reduce: Callable[[Any], Any]) -> Iterator[Any]:
    """`reduce` of each slice of `items`, checking the budget between slices. The first of
    equal maxima stays first, so max() and min() of these answer what they would of all."""
    for start in range(0, len(items), _SLICE):
        budget.tick()
        yield reduce(items[start : start + _SLICE])


def _sum(items: Sequence[Any], budget: Budget) -> Any:
    # Each slice's sum starts from the total so far: the additions, and so the rounding of
    # floats, happen in the same order as one sum() over everything.
    total: Any = 0
    for start in range(0, len(items), _SLICE):
        budget.tick()
        total = sum(items[start : start + _SLICE], total)
    return total


def _sorted(items: Sequence[Any], budget: Budget) -> list[Any]:
    """sorted(items), in slices sorted in C and merged in Python, checking the budget. The
    merge is stable (an item of an earlier slice first), so the result is sorted()'s."""
    if len(items) <= _SLICE:
        return sorted(items)
    runs = [sorted(items[start : start + _SLICE]) for start in _ticking_range(items, budget)]
    merged: list[Any] = []
    for batch in _batches(heapq.merge(*runs), _SLICE):
        budget.tick()
        merged.extend(batch)
    return merged


def _ticking_range(items: Sequence[Any], budget: Budget) -> Iterator[int]:
    for start in range(0, len(items), _SLICE):
        budget.tick()
        yield start


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _equal(left: Any, right: Any, budget: Budget) -> bool:
    """`left == right` as Python answers it for JSON values, by an iterative walk that checks
    the budget: Python's own comparison runs in C and, on values that share references, can
    take as long as their JSON is large. Items identical to each other are equal without a
    look inside, as Python's comparison of containers assumes."""
    pairs = [(left, right)]
    steps = 0
    while pairs:
        a, b = pairs.pop()
        steps += 1
        if not steps & _TICK_EVERY:
            budget.tick()
        if isinstance(a, dict) and isinstance(b, dict):
            if len(a) != len(b):
                return False
            for key, item in a.items():
                if key not in b:
                    return False
                other = b[key]
                if item is not other:
                    pairs.append((item, other))
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                return False
            pairs.extend((x, y) for x, y in zip(a, b, strict=True) if x is not y)
        elif isinstance(a, list | dict) or isinstance(b, list | dict) or a != b:
            return False
    return True
