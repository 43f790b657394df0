"""A node's error policy at run time: which failures are tried again, how long to wait, and
what later nodes see of a failure the run goes on from."""

from __future__ import annotations

from typing import Final

from flowbuilder_core.executions.model import ExecutionError, Json
from flowbuilder_core.workflows.model import RetryPolicy

NOT_RETRIED: Final = frozenset(
    {
        "invalid_parameters",
        "expression_error",
        "expression_timeout",
        "output_too_large",
        "unknown_node_type",
        "subworkflow_depth",
        "too_many_items",
    }
)
"""Failures that another attempt would repeat exactly (the node's own definition or data is
at fault), so a retry policy does not wait for them."""


def retried(policy: RetryPolicy | None, error: ExecutionError, attempts: int) -> bool:
    """Whether a node that failed with `error` on attempt `attempts` is tried again."""
    return policy is not None and attempts < policy.max_attempts and error.code not in NOT_RETRIED


def backoff_s(policy: RetryPolicy, attempts: int, jitter: float) -> float:
    """The wait after failed attempt `attempts` (1, 2, ...): `backoff_s` doubling with each
    attempt, capped at `max_backoff_s`, of which a random half (`jitter` in [0, 1)) is waited:
    "equal jitter", so that nodes retrying together spread out yet always wait a while."""
    ceiling: float = min(policy.max_backoff_s, policy.backoff_s * 2.0 ** (attempts - 1))
    return ceiling / 2 + ceiling / 2 * jitter


def error_output(error: ExecutionError) -> Json:
    """What later nodes see as the output of a node that failed under `on_error` continue or
    branch."""
    return {"error": {"code": error.code, "message": error.message}}
