"""Save-time rules of a node's error policy (`retry`, `on_error`) and of the outputs its
edges may name (`source_output`), each problem with a JSON pointer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, TypeGuard

from flowbuilder_core.nodes.catalogue import BRANCH_OUTPUTS, NODE_TYPES
from flowbuilder_core.nodes.schema import pointer_join
from flowbuilder_core.shared.errors import FieldError
from flowbuilder_core.workflows.model import OnError, RetryPolicy

MAX_ATTEMPTS: Final = 10
BACKOFF_S: Final = (0.1, 60.0)
MAX_BACKOFF_S: Final = 300.0
ERROR_OUTPUT: Final = "error"
"""The `source_output` of the edges an `on_error: branch` node follows when it fails."""
DEFAULT_OUTPUT: Final = "default"
"""The `source_output` of the edges a `logic.switch` follows when no case matched."""
SELF_ROUTED: Final = frozenset({"logic.if", "logic.switch"})
"""Node types whose edges choose by their own outputs, so `on_error: branch` cannot."""
_RETRY_KEYS: Final = frozenset({"max_attempts", "backoff_s", "max_backoff_s"})


def parse_retry(raw: object, at: str, errors: list[FieldError]) -> RetryPolicy | None:
    """The retry policy in `raw` (None when absent); its problems go to `errors`."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors.append(FieldError(at, "must be an object with max_attempts, backoff_s, ..."))
        return None
    before = len(errors)
    errors.extend(
        FieldError(pointer_join(at, key), "is not a known field")
        for key in raw
        if key not in _RETRY_KEYS
    )
    default = RetryPolicy()
    attempts = raw.get("max_attempts", default.max_attempts)
    if not _is_int(attempts) or not 1 <= attempts <= MAX_ATTEMPTS:
        message = f"must be an integer from 1 to {MAX_ATTEMPTS}"
        errors.append(FieldError(pointer_join(at, "max_attempts"), message))
    backoff = raw.get("backoff_s", default.backoff_s)
    low, high = BACKOFF_S
    if not _is_number(backoff) or not low <= backoff <= high:
        errors.append(FieldError(pointer_join(at, "backoff_s"), f"must be from {low} to {high:g}"))
    ceiling = raw.get(
        "max_backoff_s", max(default.max_backoff_s, backoff if _is_number(backoff) else 0)
    )
    if not _is_number(ceiling) or not low <= ceiling <= MAX_BACKOFF_S:
        message = f"must be from {low} to {MAX_BACKOFF_S:g}"
        errors.append(FieldError(pointer_join(at, "max_backoff_s"), message))
    elif _is_number(backoff) and ceiling < backoff:
        errors.append(FieldError(pointer_join(at, "max_backoff_s"), "must be at least backoff_s"))
    if len(errors) > before:
        return None
    assert isinstance(attempts, int)
    assert isinstance(backoff, int | float)
    assert isinstance(ceiling, int | float)
    return RetryPolicy(attempts, float(backoff), float(ceiling))


def parse_on_error(raw: object, node_type: object, at: str, errors: list[FieldError]) -> OnError:
    """The node's `on_error` (fail when absent); its problems go to `errors`."""
    if raw is None:
        return OnError.FAIL
    try:
        on_error = OnError(raw) if isinstance(raw, str) else None
    except ValueError:
        on_error = None
    if on_error is None:
        errors.append(FieldError(at, "must be one of: " + ", ".join(p.value for p in OnError)))
        return OnError.FAIL
    if on_error is OnError.BRANCH and node_type in SELF_ROUTED:
        errors.append(
            FieldError(at, f"cannot be branch on {node_type}: its edges choose by its result")
        )
    return on_error


def policy_problems(raw: Mapping[str, object], node_type: object, at: str) -> list[FieldError]:
    """A trigger takes no error policy: nothing runs before it that could fail."""
    node = NODE_TYPES.get(node_type) if isinstance(node_type, str) else None
    if node is None or not node.is_trigger:
        return []
    return [
        FieldError(pointer_join(at, key), "a trigger node takes no error policy")
        for key in ("retry", "on_error")
        if key in raw
    ]


def edge_outputs(raw_node: object) -> frozenset[str] | None:
    """The `source_output` values the edges leaving this (raw) node may carry; None: none."""
    if not isinstance(raw_node, dict):
        return None
    node_type = raw_node.get("type")
    if node_type == "logic.if":
        return frozenset(BRANCH_OUTPUTS)
    if node_type == "logic.switch":
        return frozenset(case_names(raw_node.get("parameters"))) | {DEFAULT_OUTPUT}
    if raw_node.get("on_error") == OnError.BRANCH.value:
        return frozenset({ERROR_OUTPUT})
    return None


def output_required(raw_node: object) -> bool:
    """Whether every edge leaving this node must name an output (a branch node's success edges
    name none)."""
    return isinstance(raw_node, dict) and raw_node.get("type") in SELF_ROUTED


def case_names(parameters: object) -> list[str]:
    """The names of a switch's cases, as far as they are strings."""
    if not isinstance(parameters, dict) or not isinstance(parameters.get("cases"), list):
        return []
    return [
        case["name"]
        for case in parameters["cases"]
        if isinstance(case, dict) and isinstance(case.get("name"), str)
    ]


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
