"""JMESPath expressions for templates, `logic.if` and `data.transform`."""

from __future__ import annotations

import functools
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError, JMESPathTypeError

from flowbuilder_core.executions.errors import ExpressionError
from flowbuilder_core.executions.model import Json
from flowbuilder_core.executions.ports import ExpressionEvaluator


def _parse(expression: str) -> Any:
    return jmespath.compile(expression)


class JmesPathEvaluator(ExpressionEvaluator):
    """Evaluates JMESPath with a per-instance LRU cache of compiled expressions.

    Every failure is an ExpressionError whose message comes from jmespath but never holds a
    value of the data: a type error names the function and the types only, and an unexpected
    failure gets a generic message. The expression itself (workflow code) may be quoted.
    """

    def __init__(self, cache_size: int = 1024) -> None:
        self._compile = functools.lru_cache(maxsize=cache_size)(_parse)

    def evaluate(self, expression: str, data: Json) -> Json:
        try:
            return self._compile(expression).search(data)
        except JMESPathTypeError as exc:
            # Its own message quotes the offending value, which may be anyone's data.
            raise ExpressionError(
                f"In function {exc.function_name}(), expected one of: "
                f"{', '.join(exc.expected_types)}; received: {exc.actual_type}"
            ) from None
        except JMESPathError as exc:
            raise ExpressionError(str(exc)) from None
        except TypeError:
            # jmespath lets Python compare a string with a number (`a > `1``) and fail.
            raise ExpressionError("The expression compares values of incompatible types.") from None
        except RecursionError:
            raise ExpressionError("The expression is nested too deeply.") from None
        except Exception:
            raise ExpressionError("The expression cannot be evaluated.") from None
